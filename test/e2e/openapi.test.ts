import { join } from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir, writeTree } from "../helpers/archive.js";
import { local, type RunningGateway, startGateway } from "../helpers/gateway.js";
import { freshPrefix, s3Server } from "../helpers/s3.js";

type Doc = { paths: Record<string, Record<string, { responses: Record<string, ResponseDoc> }>> };
type ResponseDoc = { headers?: Record<string, { $ref?: string; schema?: Record<string, unknown> }>; content?: Record<string, unknown> };

const METHODS = ["get", "head", "post", "delete", "put", "patch"];

/** JSON pointer escaping of one segment. */
const esc = (s: string): string => s.replaceAll("~", "~0").replaceAll("/", "~1");

describe("the OpenAPI document, checked against real responses", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let gw: RunningGateway;
  let doc: Doc;
  let ajv: Ajv2020;
  /** `METHOD path status` of every checked response. */
  const seen = new Set<string>();

  beforeAll(async () => {
    dir = await tempDir();
    const root = join(dir.path, "store");
    await writeTree(root, { "docs/a.txt": "alpha\n".repeat(100), "docs/b.txt": "beta\n", "docs/sub/c.txt": "gamma\n" });
    const s3 = s3Server();
    gw = await startGateway({
      root,
      env: {
        ZIPGATE_DESTINATIONS: JSON.stringify([
          {
            bucket: s3.bucket,
            endpoint: s3.endpoint,
            region: s3.region,
            access_key_id: s3.admin.accessKeyId,
            secret_access_key: s3.admin.secretAccessKey,
            force_path_style: true,
            prefix: `${freshPrefix("openapi")}{key_id}/`,
          },
        ]),
      },
    });
    const res = await fetch(`${gw.url}/openapi.json`);
    expect(res.status).toBe(200);
    doc = (await res.json()) as Doc;
    ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats.default(ajv);
    ajv.addSchema(doc as object, "openapi.json");
  });
  afterAll(async () => {
    await gw?.close();
    await dir?.cleanup();
  });

  /** Checks a real response against the documented operation `method path`: status, headers, body. */
  async function check(method: string, path: string, res: Response): Promise<unknown> {
    const op = doc.paths[path]?.[method.toLowerCase()];
    expect(op, `${method} ${path} is documented`).toBeDefined();
    const status = String(res.status);
    const documented = op?.responses[status];
    const text = method === "HEAD" ? "" : await res.text();
    expect(documented, `${method} ${path} documents ${status} (got ${text.slice(0, 200)})`).toBeDefined();
    seen.add(`${method} ${path} ${status}`);
    expect(res.headers.get("x-request-id")).toBeTruthy();
    for (const [name, h] of Object.entries(documented?.headers ?? {})) {
      const value = res.headers.get(name);
      if (value === null) continue;
      const schemaPath = h.$ref
        ? `openapi.json${h.$ref}/schema`
        : `openapi.json#/paths/${esc(path)}/${method.toLowerCase()}/responses/${status}/headers/${esc(name)}/schema`;
      const validate = ajv.compile({ $ref: schemaPath });
      expect(validate(value), `${method} ${path} ${status} header ${name}: ${value} ${ajv.errorsText(validate.errors)}`).toBe(true);
    }
    const type = res.headers.get("content-type") ?? "";
    const content = documented?.content ?? {};
    if (method === "HEAD" || res.status === 304 || res.status === 412 || res.status === 416) return undefined;
    if (type.startsWith("application/json")) {
      expect(Object.keys(content), `${method} ${path} ${status} is JSON`).toContain("application/json");
      const body = JSON.parse(text) as unknown;
      const validate = ajv.compile({ $ref: `openapi.json#/paths/${esc(path)}/${method.toLowerCase()}/responses/${status}/content/application~1json/schema` });
      expect(validate(body), `${method} ${path} ${status}: ${ajv.errorsText(validate.errors)}\n${text}`).toBe(true);
      return body;
    }
    expect(
      Object.keys(content).some((t) => type.startsWith(t)),
      `${method} ${path} ${status} content type ${type}`,
    ).toBe(true);
    return text;
  }

  const send = (method: string, url: string, body?: unknown, headers: Record<string, string> = {}, key: string | null = "default"): Promise<Response> =>
    fetch(url.startsWith("http") ? url : gw.url + url, {
      method,
      headers: {
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...(key === null ? {} : { authorization: `Bearer ${key === "default" ? gw.key : key}` }),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });

  it("is a valid OpenAPI 3.1 document", async () => {
    const result = await new Validator().validate(doc as unknown as Parameters<Validator["validate"]>[0]);
    expect(result.errors ?? [], JSON.stringify(result.errors, null, 2)).toEqual([]);
    expect(result.valid).toBe(true);
    expect((doc as unknown as { openapi: string }).openapi).toBe("3.1.0");
  });

  it("describes every BitPaket answer: creation, errors, downloads with ranges and validators, revocation, object ids", async () => {
    const P = "/v2/zipball";
    const created = (await check(
      "POST",
      P,
      await send("POST", P, { name: "docs", objects: [{ folder: "/docs" }, { path: "/docs/a.txt", name: "top.txt" }] }),
    )) as {
      data: { ball_id: string; urls: { url: string } };
    };
    await check("POST", P, await send("POST", P, { objects: [] }));
    await check("POST", P, await send("POST", P, { objects: [{ path: "/docs/a.txt", extra: 1 }] }));
    await check("POST", P, await send("POST", P, { objects: [{ path: "/docs/a.txt" }] }, {}, null));
    await check("POST", P, await send("POST", P, { objects: [{ path: "/nope.txt" }] }));
    await check("POST", P, await send("POST", P, `{"objects": "${"x".repeat(4 * 1024 * 1024 + 10)}"}`));

    const D = "/{ball_id}.zip";
    const url = local(gw, created.data.urls.url);
    const whole = await send("GET", url);
    const etag = whole.headers.get("etag") as string;
    await check("GET", D, whole);
    await check("HEAD", D, await send("HEAD", url));
    await check("GET", D, await send("GET", url, undefined, { range: "bytes=10-99" }));
    await check("GET", D, await send("GET", url, undefined, { "if-none-match": etag }));
    await check("GET", D, await send("GET", url, undefined, { "if-match": '"other"' }));
    await check("GET", D, await send("GET", url, undefined, { range: "bytes=999999-" }));
    await check("GET", D, await send("GET", `/${"0".repeat(8)}-0000-4000-8000-000000000000.zip?zipball`));

    const R = "/v2/zipball/{ball_id}";
    const other = (await (await send("POST", P, { objects: [{ path: "/docs/b.txt" }] })).json()) as { data: { ball_id: string; urls: { url: string } } };
    await check("DELETE", R, await send("DELETE", `/v2/zipball/${other.data.ball_id}`));
    await check("DELETE", R, await send("DELETE", `/v2/zipball/${other.data.ball_id}`));
    await check("DELETE", R, await send("DELETE", `/v2/zipball/${other.data.ball_id}`, undefined, {}, null));

    const O = "/v2/objects";
    const obj = (await check("POST", O, await send("POST", O, { path: "/docs/a.txt" }))) as { data: { id: string } };
    await check("POST", O, await send("POST", O, { path: "/docs/a.txt" }));
    await check("POST", O, await send("POST", O, { path: "/docs/none.txt" }));
    await check("POST", O, await send("POST", O, { path: 5 }));
    await check("GET", "/v2/objects/{id}", await send("GET", `/v2/objects/${obj.data.id}`));
    await check("GET", "/v2/objects/{id}", await send("GET", "/v2/objects/00000000-0000-4000-8000-000000000000"));
    await check("GET", "/v2/objects/{id}", await send("GET", `/v2/objects/${obj.data.id}`, undefined, {}, "not-a-valid-key-at-all"));
  });

  it("describes every Box answer: creation, content once, status, errors", async () => {
    const C = "/2.0/zip_downloads";
    const created = (await check(
      "POST",
      C,
      await send("POST", C, {
        download_file_name: "box",
        items: [
          { type: "folder", id: "/docs" },
          { type: "file", id: "/docs/a.txt" },
        ],
      }),
    )) as {
      download_url: string;
      status_url: string;
    };
    await check("POST", C, await send("POST", C, { items: [{ type: "folder", id: "0" }] }));
    await check("POST", C, await send("POST", C, { items: [{ type: "file", id: "/docs/a.txt" }] }, {}, null));
    await check("POST", C, await send("POST", C, { items: [{ type: "file", id: "/docs/missing.txt" }] }));
    const S = "/2.0/zip_downloads/{id}/status";
    await check("GET", S, await send("GET", local(gw, created.status_url)));
    const K = "/2.0/zip_downloads/{id}/content";
    await check("HEAD", K, await send("HEAD", local(gw, created.download_url), undefined, {}, null));
    await check("GET", K, await send("GET", local(gw, created.download_url), undefined, {}, null));
    await check("GET", K, await send("GET", local(gw, created.download_url), undefined, {}, null));
    await check("GET", S, await send("GET", local(gw, created.status_url)));
    await check("GET", S, await send("GET", local(gw, created.status_url), undefined, {}, null));
  });

  it("describes every ZipKit answer: a job, its view, the list, errors", async () => {
    const Z = "/api/v1/zips";
    const bucket = s3Server().bucket;
    const job = (await check(
      "POST",
      Z,
      await send("POST", Z, { objects: [{ path: "/docs/a.txt" }], bucket_name: bucket, key: "out/a.zip", metadata: { n: 1 } }),
    )) as {
      uuid: string;
    };
    await check("POST", Z, await send("POST", Z, { objects: [{ path: "/docs/a.txt" }], bucket_name: "unknown-bucket", key: "x.zip" }));
    await check("POST", Z, await send("POST", Z, { urls: [], bucket_name: bucket, key: "x.zip" }, {}, null));
    const J = "/api/v1/zips/{uuid}";
    await check("GET", J, await send("GET", `/api/v1/zips/${job.uuid}`));
    // Once it has run, its result (or error) is described too.
    for (let i = 0; i < 100; i++) {
      const view = (await (await send("GET", `/api/v1/zips/${job.uuid}`)).json()) as { status: string };
      if (view.status === "succeeded" || view.status === "failed") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const done = (await check("GET", J, await send("GET", `/api/v1/zips/${job.uuid}`))) as { status: string };
    expect(done.status).toBe("succeeded");
    await check("GET", J, await send("GET", "/api/v1/zips/00000000-0000-7000-8000-000000000000"));
    await check("GET", Z, await send("GET", "/api/v1/zips?limit=5"));
    await check("GET", Z, await send("GET", "/api/v1/zips?cursor=00000000-0000-7000-8000-000000000000"));
    await check("GET", Z, await send("GET", "/api/v1/zips", undefined, {}, null));
  });

  it("describes the operator endpoints", async () => {
    for (const p of ["/livez", "/healthz", "/readyz", "/metrics", "/openapi.json"]) await check("GET", p, await send("GET", p, undefined, {}, null));
  });

  it("documents exactly the app's routes, and every documented operation was exercised", () => {
    const routes = new Set<string>();
    for (const r of gw.app.routes) {
      if (r.method === "ALL" || r.path === "/*") continue;
      const path = r.path.replace(/^\/:file\{.*\}$/, "/{ball_id}.zip").replace(/:(\w+)/g, "{$1}");
      routes.add(`${r.method} ${path}`);
    }
    const documented = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths))
      for (const m of Object.keys(ops)) if (METHODS.includes(m)) documented.add(`${m.toUpperCase()} ${path}`);
    // Routes name their parameters as the flavours do; the document uses its own names.
    const normal = (s: string): string => s.replace(/\{\w+\}/g, "{}");
    expect([...routes].map(normal).sort()).toEqual([...documented].map(normal).sort());
    const exercised = new Set([...seen].map((s) => s.split(" ").slice(0, 2).join(" ")));
    expect([...documented].filter((op) => !exercised.has(op))).toEqual([]);
  });
});
