import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createS3Storage } from "../../src/storage/s3.js";
import { type Freezer, startBlackHole, startFreezer } from "../helpers/freezer.js";
import { type RunningGateway, startGateway, zipballUrl } from "../helpers/gateway.js";
import { adminClient, freshPrefix, putObjects, s3Server } from "../helpers/s3.js";

/** The store's deadline in these tests: every wait below is bounded by it, not by minutes. */
const TIMEOUT_MS = 1500;

function s3Behind(endpoint: string, prefix: string) {
  const s3 = s3Server();
  return createS3Storage({
    bucket: s3.bucket,
    prefix,
    endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: s3.admin,
    connectTimeoutMs: TIMEOUT_MS,
    timeoutMs: TIMEOUT_MS,
  });
}

async function expectTimeout(res: Response): Promise<void> {
  const text = await res.text();
  expect(res.status, text).toBe(504);
  expect((JSON.parse(text) as { error: { code: string } }).error.code).toBe("storage_timeout");
  expect(res.headers.get("retry-after")).toBeTruthy();
}

describe("a store that stops answering (real S3 server behind a frozen link)", () => {
  const prefix = freshPrefix("frozen");
  const big = randomBytes(24 * 1024 * 1024);
  let freezer: Freezer;
  let gw: RunningGateway;

  beforeAll(async () => {
    const client = adminClient();
    await putObjects(client, prefix, { "t/a.txt": "alpha", "t/b.txt": "beta", "big/blob.bin": big, "big/second.bin": big.subarray(0, 4 * 1024 * 1024) });
    client.destroy();
    freezer = await startFreezer(s3Server().endpoint);
    gw = await startGateway({ storage: s3Behind(freezer.url, prefix), env: { ZIPGATE_STORE_TIMEOUT: "2s" } });
  });
  afterAll(async () => {
    freezer?.thaw();
    await gw?.close();
    await freezer?.close();
  });

  it("answers a download 504 storage_timeout before the first byte, then serves again once the store is back", async () => {
    const url = await zipballUrl(gw, { objects: [{ path: "/t/a.txt" }, { path: "/t/b.txt" }] });
    freezer.freeze();
    try {
      // A fresh gateway state read and the objects' GETs all wait on the frozen link.
      await expectTimeout(await fetch(url, { headers: { range: "bytes=0-10" } }));
    } finally {
      freezer.thaw();
    }
    const again = await fetch(url);
    expect(again.status).toBe(200);
    await again.arrayBuffer();
  });

  it("answers a creation 504 storage_timeout in the flavour's shape (Box too)", async () => {
    freezer.freeze();
    try {
      await expectTimeout(await gw.post("/v2/zipball", { objects: [{ folder: "/t" }] }));
      const box = await gw.post("/2.0/zip_downloads", { items: [{ type: "file", id: "/t/a.txt" }] });
      const body = (await box.json()) as { type: string; status: number; code: string };
      expect(box.status).toBe(504);
      expect(body).toMatchObject({ type: "error", status: 504, code: "storage_timeout" });
    } finally {
      freezer.thaw();
    }
  });

  it("aborts the connection when the store goes silent in the middle of a body", async () => {
    const url = await zipballUrl(gw, { objects: [{ path: "/big/blob.bin" }] });
    const res = await fetch(url);
    expect(res.status).toBe(200);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let got = 0;
    const first = await reader.read();
    got += first.value?.length ?? 0;
    freezer.freeze();
    let failed = false;
    try {
      for (;;) {
        const step = await reader.read();
        if (step.done) break;
        got += step.value.length;
      }
    } catch {
      failed = true;
    } finally {
      freezer.thaw();
    }
    // Never a complete-looking archive: the transfer fails short of its length.
    expect(failed).toBe(true);
    expect(got).toBeLessThan(Number(res.headers.get("content-length")));
  });

  it("aborts a deflate-mode download too when the store goes silent in the middle of a body", async () => {
    const url = await zipballUrl(gw, { objects: [{ path: "/big/blob.bin" }], compression: "deflate" });
    const res = await fetch(url);
    expect(res.status).toBe(200);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    freezer.freeze();
    let failed = false;
    try {
      for (;;) if ((await reader.read()).done) break;
    } catch {
      failed = true;
    } finally {
      freezer.thaw();
    }
    expect(failed).toBe(true);
    // Cut by the store's idle timeout (2 s here), not by the client giving up.
    expect(gw.logs.some((l) => l.includes("stopped sending") || l.includes("storage_timeout") || l.includes("StorageTimeout"))).toBe(true);
  });
});

describe("a slow client of a healthy store", () => {
  it("gets every object whole, however long bodies opened ahead wait for their turn", async () => {
    const prefix = freshPrefix("patient");
    const client = adminClient();
    const first = randomBytes(8 * 1024 * 1024);
    const second = randomBytes(1024 * 1024);
    await putObjects(client, prefix, { "p/first.bin": first, "p/second.bin": second });
    client.destroy();
    const s3 = s3Server();
    const gw = await startGateway({ storage: s3Behind(s3.endpoint, prefix), env: { ZIPGATE_STORE_TIMEOUT: "1s" } });
    try {
      const url = await zipballUrl(gw, { objects: [{ path: "/p/first.bin" }, { path: "/p/second.bin" }] });
      const download = await fetch(url);
      const reader = (download.body as ReadableStream<Uint8Array>).getReader();
      let got = (await reader.read()).value?.length ?? 0;
      // Three times the store timeout without reading: the second object, opened ahead, waits.
      await new Promise((r) => setTimeout(r, 3000));
      for (;;) {
        const step = await reader.read();
        if (step.done) break;
        got += step.value.length;
      }
      expect(got).toBe(Number(download.headers.get("content-length")));
    } finally {
      await gw.close();
    }
  });
});

describe("a store endpoint that accepts connections and never answers", () => {
  it("makes creation fail with 504 storage_timeout instead of hanging", async () => {
    const hole = await startBlackHole();
    const gw = await startGateway({ storage: s3Behind(hole.url, freshPrefix("hole")) });
    try {
      await expectTimeout(await gw.post("/v2/zipball", { objects: [{ path: "/a.txt" }] }));
      const ready = await fetch(`${gw.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ ready: false, reason: "storage_timeout" });
    } finally {
      await gw.close();
      await hole.close();
    }
  });
});
