import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFsStorage } from "../../src/storage/fs.js";
import type { Storage } from "../../src/storage/types.js";
import { ObjectCrcIndex } from "../../src/zipball/object-crcs.js";
import { tempDir } from "../helpers/archive.js";

// CRCs recorded by object identity (key + ETag), sharded by folder under .zipgate/crc/.
describe("object CRC index", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let storage: Storage;
  let gets: string[];
  let puts: string[];

  beforeAll(async () => {
    dir = await tempDir();
    const inner = await createFsStorage({ root: dir.path });
    gets = [];
    puts = [];
    storage = {
      ...inner,
      get(key, options) {
        gets.push(key);
        return inner.get(key, options);
      },
      put(key, body, options) {
        puts.push(key);
        return inner.put(key, body, options);
      },
    };
  });
  afterAll(async () => {
    await dir.cleanup();
  });

  it("finds a CRC by key and ETag, on another instance too, and nothing for another version", async () => {
    const one = new ObjectCrcIndex({ storage, secret: "s1" });
    await one.record([
      { key: "docs/a.txt", etag: "e1", crc: 0x11111111 },
      { key: "docs/b.txt", etag: "e1", crc: 0xfedcba98 },
      { key: "other/c.txt", etag: "e1", crc: 3 },
    ]);
    const two = new ObjectCrcIndex({ storage, secret: "s1" });
    expect(
      await two.lookup([
        { key: "docs/a.txt", etag: "e1" },
        { key: "docs/a.txt", etag: "e2" },
        { key: "docs/b.txt", etag: "e1" },
        { key: "other/c.txt", etag: "e1" },
        { key: "missing/d.txt", etag: "e1" },
      ]),
    ).toEqual([0x11111111, undefined, 0xfedcba98, 3, undefined]);
    // One record per folder, named by a hash: no key or folder name in the store's state.
    expect(new Set(puts).size).toBe(2);
    for (const key of puts) expect(key).toMatch(/^\.zipgate\/crc\/[0-9a-f]{32}$/);
  });

  it("ignores records altered in the store or written with another secret", async () => {
    const index = new ObjectCrcIndex({ storage, secret: "s1" });
    await index.record([{ key: "tamper/a.txt", etag: "e", crc: 42 }]);
    const key = puts.at(-1) as string;
    const body = (await storage.get(key))?.toString() as string;
    await storage.put(key, body.replace(":42", ":43"));
    expect(await new ObjectCrcIndex({ storage, secret: "s1" }).lookup([{ key: "tamper/a.txt", etag: "e" }])).toEqual([undefined]);
    await storage.put(key, body);
    expect(await new ObjectCrcIndex({ storage, secret: "other" }).lookup([{ key: "tamper/a.txt", etag: "e" }])).toEqual([undefined]);
    expect(await new ObjectCrcIndex({ storage, secret: "s1" }).lookup([{ key: "tamper/a.txt", etag: "e" }])).toEqual([42]);
  });

  it("reads at most maxShards folders for one lookup, the fullest first", async () => {
    const index = new ObjectCrcIndex({ storage, secret: "s1", maxShards: 2 });
    const refs = [
      ...Array.from({ length: 5 }, (_, i) => ({ key: `big/f${i}`, etag: "e" })),
      ...Array.from({ length: 3 }, (_, i) => ({ key: `mid/f${i}`, etag: "e" })),
      ...Array.from({ length: 20 }, (_, i) => ({ key: `tiny${i}/f`, etag: "e" })),
    ];
    await index.record(refs.map((r, i) => ({ ...r, crc: i })));
    gets.length = 0;
    const found = await new ObjectCrcIndex({ storage, secret: "s1", maxShards: 2 }).lookup(refs);
    expect(gets.length).toBe(2);
    expect(found.slice(0, 8)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(found.slice(8).every((c) => c === undefined)).toBe(true);
  });

  it("skips rewriting a folder's record for CRCs it already holds", async () => {
    const index = new ObjectCrcIndex({ storage, secret: "s1" });
    await index.record([{ key: "again/a", etag: "e", crc: 1 }]);
    puts.length = 0;
    await index.record([{ key: "again/a", etag: "e", crc: 1 }]);
    expect(puts).toEqual([]);
  });
});
