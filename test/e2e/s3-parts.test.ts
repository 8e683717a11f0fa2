import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { get } from "node:http";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../helpers/archive.js";
import { type Freezer, startFreezer } from "../helpers/freezer.js";
import { TEST_KEY } from "../helpers/gateway.js";
import { type GatewayProcess, startGatewayProcess } from "../helpers/process.js";
import { adminClient, freshPrefix, putObjects, s3Env, s3Server } from "../helpers/s3.js";
import { sha256, verifyWithUnzippers } from "../helpers/unzippers.js";

/**
 * Large S3 objects read as ranged parts by a real gateway process, its store reached through a
 * relay that paces each connection (as a distant store does) and counts ranged requests: the
 * bytes are right, parts are used for a client that waits on the store and not for one that
 * the store outruns, a change mid-object aborts the download, and a spent part pool still
 * serves every download whole.
 */
const BIG = randomBytes(12 * 1024 * 1024 + 777);
const OTHER = randomBytes(6 * 1024 * 1024);

describe("large S3 objects in ranged parts (Swift, through a relay)", () => {
  const prefix = freshPrefix("parts");
  const client = adminClient();
  let relay: Freezer;
  let gw: GatewayProcess;
  let tight: GatewayProcess;
  let dir: Awaited<ReturnType<typeof tempDir>>;

  beforeAll(async () => {
    dir = await tempDir();
    await putObjects(client, prefix, { "big/one.bin": BIG, "big/two.bin": OTHER, "small/a.txt": "alpha" });
    relay = await startFreezer(s3Server().endpoint, { downRate: 16e6 });
    const env = { ...s3Env(prefix), AWS_ENDPOINT_URL_S3: relay.url, ZIPGATE_S3_PART_SIZE: "1 MiB", ZIPGATE_S3_PARTS: "4" };
    [gw, tight] = await Promise.all([startGatewayProcess(env), startGatewayProcess({ ...env, ZIPGATE_S3_PART_MEMORY: "2 MiB" })]);
  });
  afterAll(async () => {
    await Promise.all([gw?.stop(), tight?.stop()]);
    await relay?.close();
    client.destroy();
    await dir?.cleanup();
  });

  async function zipball(on: GatewayProcess, objects: unknown[]): Promise<string> {
    const res = await fetch(`${on.url}/v2/zipball`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${TEST_KEY}` },
      body: JSON.stringify({ objects }),
    });
    expect(res.status).toBe(201);
    const u = new URL(((await res.json()) as { data: { urls: { url: string } } }).data.urls.url);
    return on.url + u.pathname + u.search;
  }

  it("serves the right bytes, whole and in a range, reading the object in parts", async () => {
    const url = await zipball(gw, [{ path: "/big/one.bin" }, { path: "/small/a.txt" }]);
    const before = relay.rangedRequests();
    const res = await fetch(url);
    expect(res.status).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.length).toBe(Number(res.headers.get("content-length")));
    // Thirteen parts of 1 MiB (and a few ranged reads besides), not one GET.
    expect(relay.rangedRequests() - before).toBeGreaterThanOrEqual(13);
    const file = join(dir.path, "parts.zip");
    await writeFile(file, body);
    await verifyWithUnzippers(file, [
      { name: "one.bin", size: BIG.length, sha256: sha256(BIG) },
      { name: "a.txt", size: 5, sha256: sha256("alpha") },
    ]);
    // A range across part boundaries, as a resuming client asks.
    const start = 3 * 1024 * 1024 - 5;
    const end = 7 * 1024 * 1024 + 11;
    const ranged = await fetch(url, { headers: { range: `bytes=${start}-${end - 1}` } });
    expect(ranged.status).toBe(206);
    expect(Buffer.from(await ranged.arrayBuffer()).equals(body.subarray(start, end))).toBe(true);
  });

  it("stops reading ahead for a client slower than one connection", async () => {
    // Larger than the socket buffers between gateway and client (several MiB on loopback), which
    // take the first bytes at any pace.
    const large = randomBytes(40 * 1024 * 1024 + 123);
    await putObjects(client, prefix, { "big/large.bin": large });
    const url = await zipball(gw, [{ path: "/big/large.bin" }]);
    await fetch(url).then((r) => r.arrayBuffer()); // the first download records the CRC
    const before = relay.rangedRequests();
    // About 8 MB/s, a chunk of at most 64 KiB every 8 ms, against 16 MB/s per store connection.
    const { status, length, body } = await new Promise<{ status: number; length: number; body: Buffer }>((resolve, reject) => {
      get(url, (res) => {
        const chunks: Buffer[] = [];
        const slow = new Writable({
          highWaterMark: 64 * 1024,
          write(chunk: Buffer, _enc, done) {
            chunks.push(chunk);
            setTimeout(done, 8);
          },
        });
        pipeline(res, slow).then(
          () => resolve({ status: res.statusCode ?? 0, length: Number(res.headers["content-length"]), body: Buffer.concat(chunks) }),
          reject,
        );
      }).on("error", reject);
    });
    expect(status).toBe(200);
    expect(body.length).toBe(length);
    const ranged = relay.rangedRequests() - before;
    // 41 parts of 1 MiB for a client that keeps up; this one gets a few, then the rest in one GET.
    expect(ranged).toBeLessThanOrEqual(20);
    const file = join(dir.path, "slow.zip");
    await writeFile(file, body);
    await verifyWithUnzippers(file, [{ name: "large.bin", size: large.length, sha256: sha256(large) }]);
  }, 90_000);

  it("aborts the download when the object is replaced while its parts are read", async () => {
    await putObjects(client, prefix, { "big/changing.bin": BIG });
    const url = await zipball(gw, [{ path: "/big/changing.bin" }]);
    await fetch(url).then((r) => r.arrayBuffer()); // CRC recorded: the next GET streams without reading ahead for it
    const res = await fetch(url);
    expect(res.status).toBe(200);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let got = 0;
    while (got < 512 * 1024) {
      const { value, done } = await reader.read();
      if (done) break;
      got += value.length;
    }
    await client.send(new PutObjectCommand({ Bucket: s3Server().bucket, Key: `${prefix}big/changing.bin`, Body: randomBytes(BIG.length) }));
    const outcome = await (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return "complete";
          got += value.length;
        }
      } catch {
        return "aborted";
      }
    })();
    // Never a complete archive of two versions: the connection is cut.
    expect(outcome).toBe("aborted");
    expect(got).toBeLessThan(Number(res.headers.get("content-length")));
  });

  it("serves concurrent downloads whole when the part pool (2 MiB) is spent", async () => {
    const url = await zipball(tight, [{ path: "/big/one.bin" }, { path: "/big/two.bin" }]);
    const bodies = await Promise.all(Array.from({ length: 4 }, () => fetch(url).then(async (r) => Buffer.from(await r.arrayBuffer()))));
    for (const b of bodies) {
      expect(b.equals(bodies[0] as Buffer)).toBe(true);
      expect(b.includes(BIG.subarray(BIG.length - 4096))).toBe(true);
      expect(b.includes(OTHER.subarray(0, 4096))).toBe(true);
    }
    expect(tight.stdout()).not.toContain('"level":"error"');
  });
});
