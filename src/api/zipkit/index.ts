import { Hono } from "hono";
import { safeSegments } from "../../archive/names.js";
import { checkScopes } from "../../auth.js";
import { GatewayError } from "../../errors.js";
import type { JobRunner } from "../../jobs/runner.js";
import { jobView } from "../../jobs/runner.js";
import type { JobStore } from "../../jobs/store.js";
import type { JobRecord } from "../../jobs/types.js";
import type { UrlFetcher } from "../../sources/url.js";
import { keyFromPath } from "../../storage/keys.js";
import { mapInSlices } from "../../util/breather.js";
import { isUuidV7, uuidv7 } from "../../util/uuid.js";
import { jsonObject, onlyFields, optionalString } from "../body.js";
import type { ApiDeps, AppEnv } from "../deps.js";

export interface ZipkitDeps {
  jobs: JobStore;
  runner: JobRunner;
  urls: UrlFetcher;
}

const MAX_PAGE = 100;

/**
 * ZipKit-style jobs: `POST /api/v1/zips` zips URLs (and stored objects) into
 * a configured bucket in the background; `GET /api/v1/zips[/{uuid}]`.
 */
export function zipkitRoutes(deps: ApiDeps & ZipkitDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post("/api/v1/zips", async (c) => {
    const caller = deps.keys.authenticate(c.req.header("authorization"));
    const body = await jsonObject(c);
    onlyFields(body, ["urls", "objects", "bucket_name", "key", "service", "metadata"], "the request");
    const urls = Array.isArray(body.urls) ? body.urls : body.urls === undefined ? [] : null;
    const objects = Array.isArray(body.objects) ? body.objects : body.objects === undefined ? [] : null;
    if (urls === null || objects === null || urls.length + objects.length === 0) {
      throw new GatewayError(400, "invalid_request", `"urls" (and "objects", when given) must be arrays, with at least one entry between them`);
    }
    if (urls.length + objects.length > deps.maxItems) throw new GatewayError(400, "too_many_files", `at most ${deps.maxItems} entries per job`);
    const bucket = optionalString(body.bucket_name, "bucket_name", 255);
    const dest = bucket === undefined ? undefined : deps.runner.destination(bucket);
    if (!dest) throw new GatewayError(400, "unknown_bucket", `"bucket_name" must name a configured destination`);
    const service = body.service ?? "s3";
    if (service !== "s3" && service !== "r2") throw new GatewayError(400, "invalid_field", `"service" must be "s3" or "r2"`);
    if (service !== dest.service) throw new GatewayError(400, "invalid_field", `bucket ${dest.bucket} is an ${dest.service} destination`);
    const given = optionalString(body.key, "key", 1024);
    if (given === undefined || given.startsWith("/") || given.split("/").some((seg) => seg === "." || seg === "..")) {
      throw new GatewayError(400, "invalid_field", `"key" must be an object key (no leading "/", no "." or ".." segments)`);
    }
    // Confined to the caller's own prefix in the bucket: another key's outputs are out of reach.
    const key = dest.prefix.replaceAll("{key_id}", caller.keyId) + given;
    const metadata = parseMetadata(body.metadata);

    const parsedUrls = [];
    for (const [i, u] of urls.entries()) {
      if (typeof u !== "object" || u === null) throw new GatewayError(400, "invalid_request", `urls[${i}] must be an object`);
      onlyFields(u as Record<string, unknown>, ["url", "filename"], `urls[${i}]`);
      const { url, filename } = u as { url?: unknown; filename?: unknown };
      const parsed = deps.urls.parse(url);
      // Refused at creation, and again at fetch time.
      await deps.urls.check(parsed);
      parsedUrls.push({ url: parsed.href, filename: safeName(optionalString(filename, `urls[${i}].filename`)) });
    }
    const parsedObjects = await mapInSlices(objects, (o, i) => {
      if (typeof o !== "object" || o === null) throw new GatewayError(400, "invalid_request", `objects[${i}] must be an object`);
      onlyFields(o as Record<string, unknown>, ["path", "filename"], `objects[${i}]`);
      const { path, filename } = o as { path?: unknown; filename?: unknown };
      const objectKey = keyFromPath(path, "path", `objects[${i}].path`);
      return { path: `/${objectKey}`, filename: safeName(optionalString(filename, `objects[${i}].filename`)) };
    });
    checkScopes(
      caller.scopes,
      parsedObjects.map((o) => o.path.slice(1)),
    );

    const job: JobRecord = {
      uuid: uuidv7(),
      status: "none",
      created_at: new Date().toISOString(),
      attempts: 0,
      owner: caller.keyId,
      request: { urls: parsedUrls, objects: parsedObjects.length > 0 ? parsedObjects : undefined, bucket_name: dest.bucket, key, service, metadata },
    };
    await deps.jobs.create(job);
    deps.runner.enqueue(job.uuid, job.owner);
    return c.json(jobView(job), 201);
  });

  app.get("/api/v1/zips/:uuid", async (c) => {
    const caller = deps.keys.authenticate(c.req.header("authorization"));
    const job = await deps.jobs.get(c.req.param("uuid"));
    if (!job || job.owner !== caller.keyId) throw new GatewayError(404, "not_found", "no such job");
    return c.json(jobView(job));
  });

  app.get("/api/v1/zips", async (c) => {
    const caller = deps.keys.authenticate(c.req.header("authorization"));
    const limit = Math.min(Number(c.req.query("limit") ?? "20") || 20, MAX_PAGE);
    const after = c.req.query("cursor");
    // A cursor is a position in time (a job's UUIDv7), not a lookup: any well-formed one
    // pages through the caller's own jobs older than it, and tells nothing of other keys'.
    if (after !== undefined && !isUuidV7(after)) throw new GatewayError(400, "invalid_cursor", "the cursor is not one this API returned");
    const ids = (await deps.jobs.idsOf(caller.keyId)).filter((id) => after === undefined || id < after);
    const data: Record<string, unknown>[] = [];
    let next: string | null = null;
    for (const id of ids) {
      const job = await deps.jobs.get(id);
      if (!job || job.owner !== caller.keyId) continue;
      if (data.length === limit) {
        next = data.at(-1)?.uuid as string;
        break;
      }
      data.push(jobView(job));
    }
    return c.json({ data, next_cursor: next });
  });

  return app;
}

function safeName(name: string | undefined): string | undefined {
  if (name === undefined) return undefined;
  const segments = safeSegments(name, true);
  return segments.length === 0 ? undefined : segments.join("/");
}

function parseMetadata(value: unknown): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new GatewayError(400, "invalid_field", `"metadata" must be an object of strings`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (!/^[a-z0-9-]{1,64}$/i.test(k) || (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean")) {
      throw new GatewayError(400, "invalid_field", `"metadata" keys must be letters, digits and "-", values strings`);
    }
    out[k.toLowerCase()] = String(v);
  }
  return out;
}
