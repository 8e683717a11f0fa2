import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Storage } from "../../src/storage/types.js";
import { createFsStorage, tempDir, writeTree } from "../helpers/archive.js";
import { local, type RunningGateway, startGateway } from "../helpers/gateway.js";
import { adminClient, freshPrefix, putObjects, s3Storage } from "../helpers/s3.js";

const BIG = randomBytes(16 * 1024 * 1024);

interface Store {
  name: string;
  /** A fresh store instance on the same objects, as a second replica would have. */
  open(): Promise<Storage>;
  cleanup(): Promise<void>;
}

async function folderStore(): Promise<Store> {
  const dir = await tempDir();
  const root = join(dir.path, "store");
  await writeTree(root, { "docs/a.txt": "alpha", "big/one.bin": BIG });
  return { name: "folder store", open: () => createFsStorage({ root }), cleanup: dir.cleanup };
}

async function swiftStore(): Promise<Store> {
  const prefix = freshPrefix("single");
  const client = adminClient();
  await putObjects(client, prefix, { "docs/a.txt": "alpha", "big/one.bin": BIG });
  client.destroy();
  return { name: "Swift", open: async () => s3Storage(prefix), cleanup: async () => {} };
}

for (const make of [folderStore, swiftStore]) {
  describe(`Box single-use URLs and per-key limits under concurrency (${make.name})`, () => {
    let store: Store;
    let a: RunningGateway;
    let b: RunningGateway;

    beforeAll(async () => {
      store = await make();
      a = await startGateway({ storage: await store.open() });
      b = await startGateway({ storage: await store.open() });
    });
    afterAll(async () => {
      await a?.close();
      await b?.close();
      await store?.cleanup();
    });

    async function boxUrl(gw: RunningGateway, path: string): Promise<string> {
      const res = await gw.post("/2.0/zip_downloads", { items: [{ type: "file", id: path }] });
      expect(res.status).toBe(202);
      return new URL(((await res.json()) as { download_url: string }).download_url).pathname;
    }

    it("serves one download of twenty concurrent GETs spread over two replicas, private and uncached", async () => {
      const path = await boxUrl(a, "/docs/a.txt");
      const results = await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          const gw = i % 2 === 0 ? a : b;
          const res = await fetch(local(gw, `http://x${path}`));
          const body = Buffer.from(await res.arrayBuffer());
          return { status: res.status, cache: res.headers.get("cache-control"), length: body.length, expected: Number(res.headers.get("content-length")) };
        }),
      );
      const served = results.filter((r) => r.status === 200);
      expect(served.length, JSON.stringify(results.map((r) => r.status))).toBe(1);
      expect(served[0]?.length).toBe(served[0]?.expected);
      expect(served[0]?.cache).toBe("private, no-store");
      for (const r of results.filter((r) => r.status !== 200)) expect([404, 429]).toContain(r.status);
    });

    it("lets a download manager probe with a 1-byte range and then fetch, and nobody else", async () => {
      const path = await boxUrl(a, "/docs/a.txt");
      const manager = { "user-agent": "DownloadManager/1.0" };
      const probe = await fetch(local(a, `http://x${path}`), { headers: { ...manager, range: "bytes=0-0" } });
      expect(probe.status).toBe(206);
      expect((await probe.arrayBuffer()).byteLength).toBe(1);
      // The real GET, on the other replica: the same download, within the claim window.
      const real = await fetch(local(b, `http://x${path}`), { headers: manager });
      expect(real.status).toBe(200);
      expect((await real.arrayBuffer()).byteLength).toBe(Number(real.headers.get("content-length")));
      const other = await fetch(local(a, `http://x${path}`), { headers: { "user-agent": "SomeoneElse/2.0" } });
      expect(other.status).toBe(404);
      await other.arrayBuffer();
    });

    it("runs at most ZIPGATE_BOX_MAX_DOWNLOADS (5) downloads of one key at once in a process, however many arrive together", async () => {
      const paths = await Promise.all(Array.from({ length: 20 }, () => boxUrl(a, "/big/one.bin")));
      const responses = await Promise.all(paths.map((p) => fetch(local(a, `http://x${p}`))));
      const statuses = responses.map((r) => r.status);
      expect(statuses.filter((s) => s === 200).length, JSON.stringify(statuses)).toBeLessThanOrEqual(5);
      expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(0);
      for (const s of statuses) expect([200, 429]).toContain(s);
      await Promise.all(responses.map((r) => r.body?.cancel()));
    });
  });
}
