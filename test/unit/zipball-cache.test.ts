import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PinnedEntry } from "../../src/manifest/schema.js";
import { ZipballStore } from "../../src/manifest/store.js";
import { ManifestSigner } from "../../src/manifest/token.js";
import { createFsStorage } from "../../src/storage/fs.js";
import type { Storage } from "../../src/storage/types.js";
import { tempDir } from "../helpers/archive.js";

// Verified zipballs are cached within a memory budget estimated from their entry counts:
// a zipball pushed out of it is read from the store (and verified) again.
describe("zipball cache", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let storage: Storage;
  let gets: string[];

  beforeAll(async () => {
    dir = await tempDir();
    const inner = await createFsStorage({ root: dir.path });
    gets = [];
    storage = {
      ...inner,
      get(key) {
        gets.push(key);
        return inner.get(key);
      },
    };
  });
  afterAll(async () => {
    await storage.close?.();
    await dir.cleanup();
  });

  const entries = (n: number): PinnedEntry[] =>
    Array.from({ length: n }, (_, i) => ({ name: `f${i}`, kind: "file", size: 1, mtimeMs: 1_700_000_000_000, item: 0, key: `f${i}`, etag: `e${i}` }));

  const save = (store: ZipballStore, n: number) => {
    const now = Math.floor(Date.now() / 1000);
    return store.save(
      { id: randomUUID(), flavour: "bitpaket", items: [], filename: "a.zip", compression: "store", owner: "test", iat: now, exp: now + 3600 },
      entries(n),
    );
  };

  it("keeps recent zipballs within its budget and reads older ones from the store again", async () => {
    // 100 entries are estimated at about 33 KB: two do not fit in 50 KB, one does.
    const store = new ZipballStore({ storage, signer: new ManifestSigner("s".repeat(40)), cacheBytes: 50_000 });
    const a = await save(store, 100);
    const b = await save(store, 100);
    gets.length = 0;
    expect((await store.load(b.manifest.id)).entries).toHaveLength(100);
    expect(gets).toEqual([]);
    expect((await store.load(a.manifest.id)).entries).toHaveLength(100);
    expect(gets).toHaveLength(1);
    // Loading `a` put it back in, in place of `b`.
    expect((await store.load(a.manifest.id)).entries).toHaveLength(100);
    expect(gets).toHaveLength(1);
    await store.load(b.manifest.id);
    expect(gets).toHaveLength(2);
  });

  it("does not keep a zipball estimated above the whole budget", async () => {
    const store = new ZipballStore({ storage, signer: new ManifestSigner("s".repeat(40)), cacheBytes: 10_000 });
    const big = await save(store, 100);
    gets.length = 0;
    await store.load(big.manifest.id);
    await store.load(big.manifest.id);
    expect(gets).toHaveLength(2);
  });
});
