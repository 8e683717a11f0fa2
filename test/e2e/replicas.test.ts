import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir, writeTree } from "../helpers/archive.js";
import { TEST_KEY } from "../helpers/gateway.js";
import { type GatewayProcess, startGatewayProcess } from "../helpers/process.js";
import { adminClient, freshPrefix, putObjects, s3Env } from "../helpers/s3.js";

/**
 * Promises that must hold across replicas, checked with two gateway processes on one store:
 * a Box URL is used once, a key's Box downloads are limited in total, a revoked zipball stops
 * being served everywhere.
 */
const BIG = randomBytes(8 * 1024 * 1024);
const FILES = { "docs/a.txt": "alpha", "big/one.bin": BIG };
const REPLICA_ENV = { ZIPGATE_BOX_LEASE: "2s", ZIPGATE_CACHE_TTL: "1s", ZIPGATE_SWEEP_INTERVAL: "0" };

interface Store {
  name: string;
  env: Record<string, string>;
  cleanup(): Promise<void>;
}

async function folderStore(): Promise<Store> {
  const dir = await tempDir();
  const root = join(dir.path, "store");
  await writeTree(root, FILES);
  return { name: "folder store", env: { ZIPGATE_STORAGE: root }, cleanup: dir.cleanup };
}

async function swiftStore(): Promise<Store> {
  const prefix = freshPrefix("replicas");
  const client = adminClient();
  await putObjects(client, prefix, FILES);
  client.destroy();
  return { name: "Swift", env: s3Env(prefix), cleanup: async () => {} };
}

async function post(gw: GatewayProcess, path: string, body: unknown): Promise<Response> {
  return fetch(gw.url + path, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${TEST_KEY}` },
    body: JSON.stringify(body),
  });
}

/** The path of a Box download URL made on `gw`: any replica serves it. */
async function boxUrl(gw: GatewayProcess, path: string): Promise<string> {
  const res = await post(gw, "/2.0/zip_downloads", { items: [{ type: "file", id: path }] });
  expect(res.status).toBe(202);
  return new URL(((await res.json()) as { download_url: string }).download_url).pathname;
}

for (const make of [folderStore, swiftStore]) {
  describe(`two gateway processes on one store (${make.name})`, () => {
    let store: Store;
    let a: GatewayProcess;
    let b: GatewayProcess;

    beforeAll(async () => {
      store = await make();
      [a, b] = await Promise.all([startGatewayProcess({ ...store.env, ...REPLICA_ENV }), startGatewayProcess({ ...store.env, ...REPLICA_ENV })]);
    });
    afterAll(async () => {
      await Promise.all([a?.stop(), b?.stop()]);
      await store?.cleanup();
    });

    it("serve a Box URL once of twenty concurrent GETs spread over both", async () => {
      const path = await boxUrl(a, "/docs/a.txt");
      const results = await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          const res = await fetch((i % 2 === 0 ? a : b).url + path);
          const body = Buffer.from(await res.arrayBuffer());
          return { status: res.status, length: body.length, expected: Number(res.headers.get("content-length")), cache: res.headers.get("cache-control") };
        }),
      );
      const served = results.filter((r) => r.status === 200);
      expect(served.length, JSON.stringify(results.map((r) => r.status))).toBe(1);
      expect(served[0]?.length).toBe(served[0]?.expected);
      expect(served[0]?.cache).toBe("private, no-store");
      for (const r of results) expect([200, 404, 429]).toContain(r.status);
    });

    it("let a download manager probe on one and fetch on the other, and nobody else", async () => {
      const path = await boxUrl(b, "/docs/a.txt");
      const manager = { "user-agent": "DownloadManager/1.0" };
      const probe = await fetch(a.url + path, { headers: { ...manager, range: "bytes=0-0" } });
      expect(probe.status).toBe(206);
      expect((await probe.arrayBuffer()).byteLength).toBe(1);
      const real = await fetch(b.url + path, { headers: manager });
      expect(real.status).toBe(200);
      expect((await real.arrayBuffer()).byteLength).toBe(Number(real.headers.get("content-length")));
      const other = await fetch(a.url + path, { headers: { "user-agent": "SomeoneElse/2.0" } });
      expect(other.status).toBe(404);
      await other.arrayBuffer();
    });

    it("run at most ZIPGATE_BOX_MAX_DOWNLOADS (5) of one key's downloads at once in total, and free a dead replica's after its lease", async () => {
      const paths = await Promise.all(Array.from({ length: 16 }, () => boxUrl(a, "/big/one.bin")));
      // Each replica takes half of the arrivals, all at once; bodies are held open, not read.
      const responses = await Promise.all(paths.slice(0, 12).map((p, i) => fetch((i % 2 === 0 ? a : b).url + p)));
      const statuses = responses.map((r) => r.status);
      const running = statuses.filter((s) => s === 200).length;
      expect(running, JSON.stringify(statuses)).toBeLessThanOrEqual(5);
      expect(running).toBeGreaterThan(0);
      for (const s of statuses) expect([200, 429]).toContain(s);
      // Fill the key's five from replica a alone, then kill it with its downloads running.
      const onA = responses.filter((r, i) => r.status === 200 && i % 2 === 0);
      for (const [i, r] of responses.entries()) if (i % 2 === 1 || r.status !== 200) await r.body?.cancel();
      // b's downloads end when cancelled; wait until they no longer count, then top a up to five.
      const spare = paths.slice(12);
      let next = 0;
      const deadline = Date.now() + 20_000;
      while (onA.length < 5 && Date.now() < deadline) {
        const res = await fetch(a.url + (spare[next] as string));
        if (res.status === 200) {
          onA.push(res);
          next += 1;
        } else {
          await res.arrayBuffer();
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      expect(onA.length).toBe(5);
      const extra = await boxUrl(b, "/big/one.bin");
      const refused = await fetch(b.url + extra);
      expect(refused.status).toBe(429);
      expect(((await refused.json()) as { code: string }).code).toBe("user_too_many_concurrent_downloads");
      await a.stop("SIGKILL");
      for (const r of onA) await r.body?.cancel().catch(() => {});
      // The dead replica's downloads stop counting once their lease (2 s here) runs out.
      let admitted: Response | undefined;
      while (!admitted && Date.now() < deadline + 20_000) {
        const res = await fetch(b.url + extra);
        if (res.status === 200) admitted = res;
        else {
          expect(res.status).toBe(429);
          await res.arrayBuffer();
          await new Promise((r) => setTimeout(r, 250));
        }
      }
      expect(admitted?.status).toBe(200);
      expect((await admitted?.arrayBuffer())?.byteLength).toBe(Number(admitted?.headers.get("content-length")));
      a = await startGatewayProcess({ ...store.env, ...REPLICA_ENV });
    });

    it("stop serving a zipball on the other replica once its owner revoked it, within the cache time", async () => {
      const res = await post(a, "/v2/zipball", { objects: [{ path: "/docs/a.txt" }] });
      const { ball_id: id, urls } = ((await res.json()) as { data: { ball_id: string; urls: { url: string } } }).data;
      const path = new URL(urls.url).pathname + new URL(urls.url).search;
      // b has it verified and in memory.
      const before = await fetch(b.url + path);
      expect(before.status).toBe(200);
      await before.arrayBuffer();
      const revoked = await fetch(`${a.url}/v2/zipball/${id}`, { method: "DELETE", headers: { authorization: `Bearer ${TEST_KEY}` } });
      expect(revoked.status).toBe(200);
      expect((await fetch(a.url + path)).status).toBe(404);
      let status = 200;
      const deadline = Date.now() + 15_000;
      while (status === 200 && Date.now() < deadline) {
        const again = await fetch(b.url + path);
        status = again.status;
        await again.arrayBuffer();
        if (status === 200) await new Promise((r) => setTimeout(r, 200));
      }
      expect(status).toBe(404);
    });
  });
}
