import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { zipballKey } from "../../src/manifest/store.js";
import { createFsStorage } from "../../src/storage/fs.js";
import { tempDir, writeTree } from "../helpers/archive.js";
import { countingStorage } from "../helpers/counting-storage.js";
import { local, type RunningGateway, startGateway } from "../helpers/gateway.js";

const FILES = 40;
const SIZE = 256 * 1024;

async function waitFor(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("condition not met");
}

describe("ranges, resumes and conditional requests", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let root: string;
  let storage: ReturnType<typeof countingStorage>;
  let gw: RunningGateway;
  let url: string;
  let id: string;
  let full: Buffer;

  beforeAll(async () => {
    dir = await tempDir();
    root = join(dir.path, "store");
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < FILES; i++) files[`set/f${String(i).padStart(2, "0")}.bin`] = randomBytes(SIZE);
    await writeTree(root, files);
    storage = countingStorage(await createFsStorage({ root }));
    gw = await startGateway({ storage });
    const res = await gw.post("/v2/zipball", { objects: [{ folder: "/set" }] });
    const data = ((await res.json()) as { data: { ball_id: string; urls: { url: string } } }).data;
    url = local(gw, data.urls.url);
    id = data.ball_id;
  });
  afterAll(async () => {
    await gw.close();
    await dir.cleanup();
  });

  it("resumes at 90 % before any CRC is known by reading the skipped objects, and after a download without reading them", async () => {
    const start = Math.floor(FILES * SIZE * 0.9);
    const before = storage.bytes();
    const cold = await fetch(url, { headers: { range: `bytes=${start}-` } });
    expect(cold.status).toBe(206);
    const coldBytes = Buffer.from(await cold.arrayBuffer());
    const coldRead = storage.bytes() - before;
    // Every object is read once: skipped ones for their CRCs, the tail for its data.
    expect(coldRead).toBeGreaterThanOrEqual(FILES * SIZE * 0.9);

    full = Buffer.from(await (await fetch(url)).arrayBuffer());
    expect(coldBytes.equals(full.subarray(start))).toBe(true);
    await waitFor(async () => (await storage.get(zipballKey(id, "crcs"))) !== null);

    const warmBefore = storage.bytes();
    const warm = await fetch(url, { headers: { range: `bytes=${start}-` } });
    const warmBytes = Buffer.from(await warm.arrayBuffer());
    const warmRead = storage.bytes() - warmBefore;
    expect(warmBytes.equals(full.subarray(start))).toBe(true);
    // Only the data inside the range is read now.
    expect(warmRead).toBeLessThanOrEqual(FILES * SIZE * 0.1 + SIZE);
  });

  it("uses CRCs recorded by another replica, and ignores recorded CRCs altered in the store", async () => {
    const start = Math.floor(full.length * 0.95);
    const other = countingStorage(await createFsStorage({ root }));
    const replica = await startGateway({ storage: other });
    try {
      const res = await fetch(`${replica.url}/${id}.zip?zipball`, { headers: { range: `bytes=${start}-` } });
      expect(Buffer.from(await res.arrayBuffer()).equals(full.subarray(start))).toBe(true);
      expect(other.bytes()).toBeLessThanOrEqual(FILES * SIZE * 0.1);
    } finally {
      await replica.close();
    }

    const path = join(root, zipballKey(id, "crcs"));
    const recorded = await readFile(path, "utf8");
    const body = JSON.parse(recorded.slice(recorded.indexOf("\n") + 1)) as Record<string, number>;
    body["0"] = (body["0"] as number) ^ 1;
    await writeFile(path, `${recorded.slice(0, recorded.indexOf("\n"))}\n${JSON.stringify(body)}`);
    const fresh = countingStorage(await createFsStorage({ root }));
    const third = await startGateway({ storage: fresh });
    try {
      const res = await fetch(`${third.url}/${id}.zip?zipball`, { headers: { range: `bytes=${start}-` } });
      expect(Buffer.from(await res.arrayBuffer()).equals(full.subarray(start))).toBe(true);
      expect(fresh.bytes()).toBeGreaterThan(FILES * SIZE * 0.5);
    } finally {
      await third.close();
    }
  });

  it("answers HEAD with a range as GET would, without a body", async () => {
    const res = await fetch(url, { method: "HEAD", headers: { range: "bytes=10-19" } });
    expect(res.status).toBe(206);
    expect(res.headers.get("content-range")).toBe(`bytes 10-19/${full.length}`);
    expect(res.headers.get("content-length")).toBe("10");
    expect((await res.arrayBuffer()).byteLength).toBe(0);
  });

  it("serves several ranges as the whole archive (200), which RFC 9110 allows", async () => {
    const res = await fetch(url, { headers: { range: "bytes=0-9,100-199" } });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(full)).toBe(true);
  });

  it("ignores a range in another unit or malformed", async () => {
    for (const range of ["items=0-9", "bytes=abc", "bytes=9-1"]) {
      const res = await fetch(url, { method: "HEAD", headers: { range } });
      expect(res.status, range).toBe(200);
    }
  });

  it("honours If-Range: a current validator gets the range, a stale one the whole archive", async () => {
    const head = await fetch(url, { method: "HEAD" });
    const etag = head.headers.get("etag") as string;
    const lastModified = head.headers.get("last-modified") as string;
    const current = await fetch(url, { headers: { range: "bytes=0-9", "if-range": etag } });
    expect(current.status).toBe(206);
    expect(Buffer.from(await current.arrayBuffer()).equals(full.subarray(0, 10))).toBe(true);
    const byDate = await fetch(url, { method: "HEAD", headers: { range: "bytes=0-9", "if-range": lastModified } });
    expect(byDate.status).toBe(206);
    const stale = await fetch(url, { method: "HEAD", headers: { range: "bytes=0-9", "if-range": '"stale-etag"' } });
    expect(stale.status).toBe(200);
    expect(stale.headers.get("content-length")).toBe(String(full.length));
    const weak = await fetch(url, { method: "HEAD", headers: { range: "bytes=0-9", "if-range": `W/${etag}` } });
    expect(weak.status).toBe(200);
  });

  it("answers 304 to If-None-Match and If-Modified-Since, and 412 to a failed If-Match or If-Unmodified-Since", async () => {
    const head = await fetch(url, { method: "HEAD" });
    const etag = head.headers.get("etag") as string;
    const lastModified = head.headers.get("last-modified") as string;
    const inm = await fetch(url, { headers: { "if-none-match": `"other", ${etag}` } });
    expect(inm.status).toBe(304);
    expect(inm.headers.get("etag")).toBe(etag);
    expect((await fetch(url, { method: "HEAD", headers: { "if-none-match": `W/${etag}` } })).status).toBe(304);
    expect((await fetch(url, { method: "HEAD", headers: { "if-modified-since": lastModified } })).status).toBe(304);
    expect((await fetch(url, { method: "HEAD", headers: { "if-modified-since": "Thu, 01 Jan 2015 00:00:00 GMT" } })).status).toBe(200);
    expect((await fetch(url, { method: "HEAD", headers: { "if-match": '"other"' } })).status).toBe(412);
    expect((await fetch(url, { method: "HEAD", headers: { "if-match": etag } })).status).toBe(200);
    expect((await fetch(url, { method: "HEAD", headers: { "if-match": "*" } })).status).toBe(200);
    expect((await fetch(url, { method: "HEAD", headers: { "if-unmodified-since": "Thu, 01 Jan 2015 00:00:00 GMT" } })).status).toBe(412);
  });
});
