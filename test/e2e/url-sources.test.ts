import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UrlFetcher } from "../../src/sources/url.js";
import { tempDir, writeTree } from "../helpers/archive.js";
import { local, type RunningGateway, startGateway } from "../helpers/gateway.js";
import { type Origin, startOrigin } from "../helpers/origin.js";
import { sha256, verifyWithUnzippers } from "../helpers/unzippers.js";

const run = promisify(execFile);

describe("URL objects in zipballs", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  let gw: RunningGateway;
  let strict: RunningGateway;

  beforeAll(async () => {
    dir = await tempDir();
    const root = join(dir.path, "store");
    await writeTree(root, { "local/stored.txt": "from the store" });
    origin = await startOrigin();
    origin.files.set("a.txt", Buffer.from("alpha from the origin"));
    origin.files.set("b c.bin", Buffer.alloc(300_000, 9));
    // The tests open loopback explicitly; the default refuses it.
    gw = await startGateway({ root, env: { ZIPGATE_URL_ALLOW: "127.0.0.1" } });
    strict = await startGateway({ root });
  });
  afterAll(async () => {
    await gw?.close();
    await strict?.close();
    await origin?.close();
    await dir.cleanup();
  });

  const create = async (objects: unknown[], on = gw) => {
    const res = await on.post("/v2/zipball", { objects });
    return {
      status: res.status,
      body: (await res.json()) as { data: { urls: { url: string }; exact_length: boolean; notice?: string }; error: Record<string, unknown> },
    };
  };

  it("streams URLs next to stored objects with an exact Content-Length, following redirects", async () => {
    const { status, body } = await create([
      { url: `${origin.url}/files/a.txt`, name: "web/a.txt" },
      { url: `${origin.url}/files/b%20c.bin` },
      { url: `${origin.url}/redirect/3`, name: "redirected.txt" },
      { path: "/local/stored.txt" },
    ]);
    expect(status).toBe(201);
    expect(body.data.exact_length).toBe(true);
    const url = local(gw, body.data.urls.url);
    const zip = join(dir.path, "urls.zip");
    await run("curl", ["-sS", "--fail", "-o", zip, url]);
    const head = await fetch(url, { method: "HEAD" });
    const { size } = await import("node:fs/promises").then((fs) => fs.stat(zip));
    expect(size).toBe(Number(head.headers.get("content-length")));
    await verifyWithUnzippers(zip, [
      { name: "web/a.txt", sha256: sha256("alpha from the origin"), mtime: 1_700_000_000 },
      { name: "b c.bin", sha256: sha256(Buffer.alloc(300_000, 9)) },
      { name: "redirected.txt", sha256: sha256("alpha from the origin") },
      { name: "stored.txt", sha256: sha256("from the store") },
    ]);
    // A range of a URL object is read with a ranged GET.
    const full = Buffer.from(await (await fetch(url)).arrayBuffer());
    const part = await fetch(url, { headers: { range: "bytes=200-150000" } });
    expect(Buffer.from(await part.arrayBuffer()).equals(full.subarray(200, 150_001))).toBe(true);
  });

  it("falls back to a chunked archive without Range when an origin gives no length, and says so", async () => {
    const { status, body } = await create([{ url: `${origin.url}/no-length`, name: "streamed.txt" }, { path: "/local/stored.txt" }]);
    expect(status).toBe(201);
    expect(body.data.exact_length).toBe(false);
    expect(body.data.notice).toMatch(/chunked/);
    const res = await fetch(local(gw, body.data.urls.url));
    expect(res.headers.get("content-length")).toBeNull();
    expect(res.headers.get("accept-ranges")).toBe("none");
    const zip = join(dir.path, "chunked.zip");
    await writeFile(zip, Buffer.from(await res.arrayBuffer()));
    await verifyWithUnzippers(zip, [
      { name: "streamed.txt", sha256: sha256("streamed without a length") },
      { name: "stored.txt", sha256: sha256("from the store") },
    ]);
  });

  it("reports an origin's 404 at creation, listing the URL", async () => {
    const { status, body } = await create([{ url: `${origin.url}/missing` }]);
    expect(status).toBe(404);
    expect(body.error.missing).toEqual([`${origin.url}/missing`]);
  });

  it("aborts the download when an origin lies about its length or resets mid-body", async () => {
    for (const path of ["/liar", "/reset"]) {
      const { status, body } = await create([{ url: `${origin.url}${path}`, name: "x.bin" }]);
      expect(status, path).toBe(201);
      // Found before the first byte: the error's own status; after it: a cut. Never a whole 200.
      const outcome = await (async () => {
        try {
          const res = await fetch(local(gw, body.data.urls.url));
          if (!res.ok) return `status ${res.status} ${((await res.json()) as { error: { code: string } }).error.code}`;
          await res.arrayBuffer();
          return "complete";
        } catch {
          return "aborted";
        }
      })();
      expect(outcome, path).toMatch(/^aborted$|^status 50\d url_/);
    }
  });

  it("refuses loopback, names resolving to loopback, IPv6 and mapped forms, and redirects to private addresses", async () => {
    for (const url of [
      `${origin.url}/files/a.txt`,
      `${origin.url.replace("127.0.0.1", "localhost")}/files/a.txt`,
      "http://[::1]/x",
      "http://[::ffff:127.0.0.1]/x",
      "http://169.254.169.254/latest/meta-data/",
      "http://10.0.0.1/",
    ]) {
      const { status, body } = await create([{ url }], strict);
      expect(status, url).toBe(400);
      expect(body.error.code, url).toBe("url_not_allowed");
    }
    const redirect = await create([{ url: `${origin.url}/to-private` }]);
    expect(redirect.status).toBe(400);
    expect(redirect.body.error.code).toBe("url_not_allowed");
    for (const url of ["ftp://example.com/x", "file:///etc/passwd", "not a url", "http://user:pw@example.com/"]) {
      const { status, body } = await create([{ url }], strict);
      expect(status, url).toBe(400);
      expect(body.error.code, url).toBe("invalid_url");
    }
  });
});

describe("the SSRF guard's address rules", () => {
  it("refuses every non-public range and allows public addresses and allowlisted ones", () => {
    const guard = new UrlFetcher({ allow: ["10.9.0.0/16", "fd00::1"] });
    for (const ip of [
      "127.0.0.1",
      "10.0.0.1",
      "172.16.5.4",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "0.0.0.0",
      "224.0.0.1",
      "255.255.255.255",
      "::1",
      "::",
      "fe80::1",
      "fc00::1",
      "ff02::1",
      "::ffff:10.0.0.1",
      "64:ff9b::7f00:1",
    ]) {
      expect(guard.addressAllowed(ip), ip).toBe(false);
    }
    for (const ip of ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "10.9.1.2", "fd00::1"]) expect(guard.addressAllowed(ip), ip).toBe(true);
  });
});
