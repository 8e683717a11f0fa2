import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { DeleteObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createS3Storage } from "../../src/storage/s3.js";
import { tempDir } from "../helpers/archive.js";
import { local, type RunningGateway, startGateway } from "../helpers/gateway.js";
import { adminClient, freshPrefix, putObjects, s3Env, s3Server, s3Storage } from "../helpers/s3.js";
import { type ExpectedEntry, pythonEntries, sha256, verifyWithUnzippers } from "../helpers/unzippers.js";

const run = promisify(execFile);
const FIXTURES = fileURLToPath(new URL("../../fixtures/awkward names/", import.meta.url));

async function fixtureObjects(): Promise<Record<string, Buffer>> {
  const out: Record<string, Buffer> = {};
  const walk = async (dir: string): Promise<void> => {
    for (const d of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, d.name);
      if (d.isDirectory()) await walk(path);
      else if (d.name !== ".keep") out[`awkward names/${relative(FIXTURES, path)}`] = await readFile(path);
    }
  };
  await walk(FIXTURES);
  return out;
}

async function createBall(gw: RunningGateway, body: unknown): Promise<string> {
  const res = await gw.post("/v2/zipball", body);
  const text = await res.text();
  expect(res.status, text).toBe(201);
  return local(gw, (JSON.parse(text) as { data: { urls: { url: string } } }).data.urls.url);
}

async function errorOf(res: Response): Promise<{ status: number; code: string; message: string }> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  return { status: res.status, ...body.error };
}

describe("gateway on the S3 store (Swift s3api over HTTP)", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let client: S3Client;
  let prefix: string;
  let a: RunningGateway;
  let b: RunningGateway;
  const bucket = () => s3Server().bucket;

  beforeAll(async () => {
    dir = await tempDir();
    client = adminClient();
    prefix = freshPrefix("gateway");
    await putObjects(client, prefix, {
      ...(await fixtureObjects()),
      "awkward names/empty/": "",
      "docs/a.txt": "alpha",
      "docs/b.txt": "bravo",
      "swap/one.txt": "one",
      "swap/two.txt": "two",
    });
    // Two gateway processes on the same bucket and prefix: nothing shared but the store.
    a = await startGateway({ storage: s3Storage(prefix), env: s3Env(prefix) });
    b = await startGateway({ storage: s3Storage(prefix), env: s3Env(prefix) });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    client?.destroy();
    await dir.cleanup();
  });

  it("serves a zipball created on one process from another, with awkward keys and an empty folder marker", async () => {
    const url = await createBall(a, { objects: [{ folder: "/awkward names" }, { path: "/docs/a.txt" }] });
    const res = await fetch(url.replace(a.url, b.url));
    expect(res.status).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.length).toBe(Number(res.headers.get("content-length")));
    const zip = join(dir.path, "awkward.zip");
    await writeFile(zip, body);
    const fixtures = await fixtureObjects();
    const expected: ExpectedEntry[] = [
      { name: "awkward names/", dir: true },
      { name: "awkward names/empty/", dir: true },
      { name: "a.txt", sha256: sha256("alpha") },
      ...Object.entries(fixtures).map(([k, v]) => ({ name: k, sha256: sha256(v) })),
    ];
    await verifyWithUnzippers(zip, expected);
    // The state lives in the bucket, under the prefix.
    const stateKey = `${prefix}.zipgate/zipballs/${new URL(url).pathname.slice(1, -4)}/manifest`;
    expect((await s3Storage("").stat(stateKey)).size).toBeGreaterThan(0);
  });

  it("expands a folder of more than 1,000 objects (paged listing)", async () => {
    const objects: Record<string, string> = {};
    for (let i = 0; i < 1_005; i++) objects[`paged/o-${String(i).padStart(4, "0")}.txt`] = `object ${i}`;
    await putObjects(client, prefix, objects, 32);
    const url = await createBall(a, { objects: [{ folder: "/paged" }] });
    const zip = join(dir.path, "paged.zip");
    await writeFile(zip, Buffer.from(await (await fetch(url)).arrayBuffer()));
    const entries = await pythonEntries(zip);
    expect(entries.filter((e) => !e.dir)).toHaveLength(1_005);
    expect(entries.find((e) => e.name === "paged/o-1004.txt")?.sha256).toBe(sha256("object 1004"));
    await run("unzip", ["-tq", zip]);
  });

  it("serves ranges that equal slices of the whole archive", async () => {
    const url = await createBall(a, { objects: [{ folder: "/docs" }, { folder: "/awkward names" }] });
    const full = Buffer.from(await (await fetch(url)).arrayBuffer());
    for (const [start, end] of [
      [0, 40],
      [37, 200],
      [Math.floor(full.length / 2), full.length],
      [full.length - 30, full.length],
    ] as const) {
      const res = await fetch(url, { headers: { range: `bytes=${start}-${end - 1}` } });
      expect(res.status).toBe(206);
      expect(Buffer.from(await res.arrayBuffer()).equals(full.subarray(start, end))).toBe(true);
    }
  });

  it("fails loudly for an object deleted or overwritten between creation and download", async () => {
    const deleted = await createBall(a, { objects: [{ path: "/swap/one.txt" }] });
    const overwritten = await createBall(a, { objects: [{ path: "/swap/two.txt" }, { path: "/docs/a.txt" }] });
    await client.send(new DeleteObjectCommand({ Bucket: bucket(), Key: `${prefix}swap/one.txt` }));
    await client.send(new PutObjectCommand({ Bucket: bucket(), Key: `${prefix}swap/two.txt`, Body: "TWO, replaced" }));
    expect(await errorOf(await fetch(deleted))).toMatchObject({ status: 404, code: "not_found" });
    expect(await errorOf(await fetch(overwritten.replace(a.url, b.url)))).toMatchObject({ status: 409, code: "object_changed" });
  });

  it("aborts the connection when a later object was overwritten: never a mixed archive", async () => {
    const objects: Record<string, Buffer> = {};
    for (let i = 0; i < 12; i++) objects[`later/${i}.bin`] = randomBytes(2 * 1024 * 1024);
    await putObjects(client, prefix, objects);
    const url = await createBall(b, { objects: [{ folder: "/later" }] });
    await client.send(new PutObjectCommand({ Bucket: bucket(), Key: `${prefix}later/9.bin`, Body: randomBytes(2 * 1024 * 1024) }));
    const res = await fetch(url);
    expect(res.status).toBe(200);
    const outcome = await res.arrayBuffer().then(
      () => "complete",
      () => "aborted",
    );
    expect(outcome).toBe("aborted");
  });

  it("gives a clear 403 for a user without access, and a clear 502 for a wrong secret, at creation", async () => {
    const limited = s3Server().limited;
    const denied = await startGateway({ storage: s3Storage(prefix, limited), env: s3Env(prefix, limited) });
    const wrong = { accessKeyId: s3Server().admin.accessKeyId, secretAccessKey: "not-the-secret" };
    const badSecret = await startGateway({ storage: s3Storage(prefix, wrong), env: s3Env(prefix, wrong) });
    try {
      const e403 = await errorOf(await denied.post("/v2/zipball", { objects: [{ path: "/docs/a.txt" }] }));
      expect(e403).toMatchObject({ status: 403, code: "access_denied" });
      expect(e403.message).not.toContain(bucket());
      const e502 = await errorOf(await badSecret.post("/v2/zipball", { objects: [{ folder: "/docs" }] }));
      expect(e502).toMatchObject({ status: 502, code: "storage_credentials" });
      expect(e502.message).toMatch(/credentials/);
      expect(e502.message).not.toContain(bucket());
      // A path is stat'ed with HEAD, whose 403 says nothing: the same answer as for a folder.
      const path502 = await errorOf(await badSecret.post("/v2/zipball", { objects: [{ path: "/docs/a.txt" }] }));
      expect(path502).toMatchObject({ status: 502, code: "storage_credentials" });
    } finally {
      await denied.close();
      await badSecret.close();
    }
  });

  it("reports a missing bucket as the store's misconfiguration, never as a missing object", async () => {
    const s3 = s3Server();
    const storage = createS3Storage({
      bucket: "zipgate-no-such-bucket",
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: s3.admin,
    });
    const gw = await startGateway({ storage });
    try {
      for (const objects of [[{ path: "/docs/a.txt" }], [{ folder: "/docs" }]]) {
        const err = await errorOf(await gw.post("/v2/zipball", { objects }));
        expect(err).toMatchObject({ status: 502, code: "storage_bucket_missing" });
      }
      const ready = await fetch(`${gw.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ ready: false, reason: "storage_bucket_missing" });
    } finally {
      await gw.close();
    }
  });

  it("streams a 1 GiB object without memory growth", async () => {
    const size = 1024 * 1024 * 1024;
    const block = randomBytes(1024 * 1024);
    let sent = 0;
    const source = new Readable({
      read() {
        if (sent >= size) return this.push(null);
        const chunk = Buffer.from(block);
        chunk.writeUInt32LE(sent / block.length, 0);
        sent += chunk.length;
        this.push(chunk);
      },
    });
    await client.send(new PutObjectCommand({ Bucket: bucket(), Key: `${prefix}huge/one-gib.bin`, Body: source, ContentLength: size }));
    const url = await createBall(a, { objects: [{ path: "/huge/one-gib.bin" }] });
    global.gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 20);
    const zip = join(dir.path, "one-gib.zip");
    try {
      await run("curl", ["-sS", "--fail", "-o", zip, url]);
    } finally {
      clearInterval(sampler);
    }
    expect((await stat(zip)).size).toBeGreaterThan(size);
    // Streamed, not buffered: the process grows by far less than the object.
    expect(peak - baseline).toBeLessThan(160 * 1024 * 1024);
    await run("unzip", ["-tq", zip]);
  });
});
