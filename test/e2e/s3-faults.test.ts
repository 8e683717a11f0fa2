import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createS3Storage, fullObjectCrc32 } from "../../src/storage/s3.js";
import { local, type RunningGateway, startGateway } from "../helpers/gateway.js";
import { adminClient, freshPrefix, putObjects, s3Server } from "../helpers/s3.js";

/**
 * A real HTTP proxy in front of the S3 server that answers the first
 * `failures` object GETs with 503 SlowDown, the way a throttling store does.
 */
async function throttlingProxy(target: string, failures: () => number): Promise<{ server: Server; url: string; gets: () => number }> {
  const upstream = new URL(target);
  let gets = 0;
  const server = createServer((req, res) => {
    // Only reads of the object itself, not listings or the gateway's own state.
    const isObjectGet = req.method === "GET" && (req.url ?? "").split("?")[0]?.endsWith("/t/a.txt") === true;
    if (isObjectGet) {
      gets += 1;
      if (gets <= failures()) {
        res.writeHead(503, { "content-type": "application/xml" });
        res.end('<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>');
        return;
      }
    }
    const forward = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, gets: () => gets };
}

describe("S3 faults", () => {
  const prefix = freshPrefix("faults");
  let failing = 0;
  let proxy: Awaited<ReturnType<typeof throttlingProxy>>;
  let gw: RunningGateway;

  beforeAll(async () => {
    const client = adminClient();
    await putObjects(client, prefix, { "t/a.txt": "throttled but fine" });
    client.destroy();
    proxy = await throttlingProxy(s3Server().endpoint, () => failing);
    const s3 = s3Server();
    const storage = createS3Storage({ bucket: s3.bucket, prefix, endpoint: proxy.url, region: s3.region, forcePathStyle: true, credentials: s3.admin });
    gw = await startGateway({ storage });
  });
  afterAll(async () => {
    await gw?.close();
    proxy?.server.close();
  });

  it("retries throttling before the first byte, then serves the archive", async () => {
    const res = await gw.post("/v2/zipball", { objects: [{ path: "/t/a.txt" }] });
    const url = local(gw, ((await res.json()) as { data: { urls: { url: string } } }).data.urls.url);
    const before = proxy.gets();
    failing = before + 2;
    const download = await fetch(url);
    expect(download.status).toBe(200);
    expect(Buffer.from(await download.arrayBuffer()).includes(Buffer.from("throttled but fine"))).toBe(true);
    expect(proxy.gets() - before).toBe(3);
  });

  it("gives up after a bounded number of attempts with a clean 502, before the first byte", async () => {
    const res = await gw.post("/v2/zipball", { objects: [{ path: "/t/a.txt" }] });
    const url = local(gw, ((await res.json()) as { data: { urls: { url: string } } }).data.urls.url);
    const before = proxy.gets();
    failing = Number.POSITIVE_INFINITY;
    const download = await fetch(url);
    expect(download.status).toBe(502);
    expect(((await download.json()) as { error: { code: string } }).error.code).toBe("storage_unavailable");
    expect(proxy.gets() - before).toBe(4);
    failing = 0;
  });
});

describe("full-object CRC32 from the store", () => {
  it("is used when the store keeps a full-object CRC32, and ignored when composite", () => {
    expect(fullObjectCrc32("NhCmhg==", "FULL_OBJECT")).toBe(0x3610a686);
    expect(fullObjectCrc32("NhCmhg==", undefined)).toBe(0x3610a686);
    expect(fullObjectCrc32("NhCmhg==-3", "COMPOSITE")).toBeUndefined();
    expect(fullObjectCrc32("NhCmhg==", "COMPOSITE")).toBeUndefined();
    expect(fullObjectCrc32(undefined, "FULL_OBJECT")).toBeUndefined();
  });
});
