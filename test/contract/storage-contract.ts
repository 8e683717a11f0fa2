import { afterAll, describe, expect, it } from "vitest";
import { ObjectChanged, ObjectNotFound } from "../../src/errors.js";
import { chunksOf, type ListItem, type ObjectBody, type Storage } from "../../src/storage/types.js";

/** A store under test, with a way to place objects in it as a user of that store would. */
export interface ContractSubject {
  storage: Storage;
  /** Puts an object (or, for a key ending in `/`, a folder / directory marker). */
  put(key: string, body: Buffer | string): Promise<void>;
  remove(key: string): Promise<void>;
}

async function text(body: ObjectBody): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of chunksOf(body)) chunks.push(c);
  return Buffer.concat(chunks).toString("utf8");
}

async function listAll(storage: Storage, prefix: string): Promise<ListItem[]> {
  const out: ListItem[] = [];
  for await (const item of storage.list(prefix)) out.push(item);
  return out;
}

/**
 * The storage contract: every adapter passes it against a real backend.
 * `setup` gives a fresh, empty subject for the suite.
 */
export function describeStorageContract(
  name: string,
  setup: () => Promise<ContractSubject & { teardown(): Promise<void> }>,
  options: { manyObjects?: number } = {},
): void {
  describe(`storage contract: ${name}`, () => {
    let subject: Awaited<ReturnType<typeof setup>> | undefined;
    const use = async (): Promise<ContractSubject> => {
      subject ??= await setup();
      return subject;
    };
    afterAll(async () => {
      await subject?.storage.close();
      await subject?.teardown();
    });

    // Optional in the seam: a store without crc32 has its objects read and hashed by the caller.
    it("computes the CRC-32 of a whole object where it reads it (crc32), refusing another version or a missing object", async (ctx) => {
      const { storage, put } = await use();
      if (storage.crc32 === undefined) {
        ctx.skip("this store has no crc32: callers read and hash its objects (tested with the forms at creation)");
        return;
      }
      const { crc32 } = await import("node:zlib");
      const body = Buffer.alloc(3 * 1024 * 1024 + 17);
      for (let i = 0; i + 4 <= body.length; i += 4) body.writeUInt32LE((i * 2654435761) >>> 0, i);
      await put("crc/big.bin", body);
      const { etag } = await storage.stat("crc/big.bin");
      expect(await storage.crc32("crc/big.bin", { etag })).toBe(crc32(body));
      await put("crc/empty.bin", "");
      expect(await storage.crc32("crc/empty.bin", { etag: (await storage.stat("crc/empty.bin")).etag })).toBe(0);
      await expect(storage.crc32("crc/missing.bin", { etag })).rejects.toBeInstanceOf(ObjectNotFound);
      const aborted = AbortSignal.abort(new Error("gone"));
      await expect(storage.crc32("crc/big.bin", { etag, signal: aborted })).rejects.toThrow("gone");
      await new Promise((r) => setTimeout(r, 20));
      await put("crc/big.bin", Buffer.concat([body, Buffer.from("x")]));
      await expect(storage.crc32("crc/big.bin", { etag })).rejects.toBeInstanceOf(ObjectChanged);
    });

    it("stats an object: size, mtime and an identity", async () => {
      const { storage, put } = await use();
      await put("stat/a.txt", "hello");
      const info = await storage.stat("stat/a.txt");
      expect(info.key).toBe("stat/a.txt");
      expect(info.size).toBe(5);
      expect(info.mtimeMs).toBeGreaterThan(Date.UTC(2000, 0, 1));
      expect(info.etag.length).toBeGreaterThan(0);
    });

    it("reports a missing object as ObjectNotFound, and a folder is not an object", async () => {
      const { storage, put } = await use();
      await put("missing/there.txt", "x");
      await expect(storage.stat("missing/not-there.txt")).rejects.toBeInstanceOf(ObjectNotFound);
      await expect(storage.stat("missing")).rejects.toBeInstanceOf(ObjectNotFound);
      await expect(storage.read("missing/not-there.txt")).rejects.toBeInstanceOf(ObjectNotFound);
    });

    it("keeps keys with spaces, &, +, % and unicode intact", async () => {
      const { storage, put } = await use();
      // "😀" (U+1F600) sorts before "Ａ" (U+FF21) in UTF-16 but after it in UTF-8 byte order.
      const keys = ["odd/a b&c+d.txt", "odd/100% ü€.txt", "odd/日本/ファイル.txt", "odd/😀.txt", "odd/Ａ.txt"];
      for (const k of keys) await put(k, k);
      for (const k of keys) expect(await text(await storage.read(k))).toBe(k);
      expect((await listAll(storage, "odd/")).filter((i) => i.kind === "file").map((i) => i.key)).toEqual(
        [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
      );
    });

    it("reads a whole object and byte ranges of it", async () => {
      const { storage, put } = await use();
      await put("range/r.txt", "0123456789");
      expect(await text(await storage.read("range/r.txt"))).toBe("0123456789");
      expect(await text(await storage.read("range/r.txt", { range: { start: 2, end: 5 } }))).toBe("234");
      expect(await text(await storage.read("range/r.txt", { range: { start: 7, end: 10 } }))).toBe("789");
      expect(await text(await storage.read("range/r.txt", { range: { start: 4, end: 4 } }))).toBe("");
    });

    it("refuses to read an object whose identity changed (ObjectChanged)", async () => {
      const { storage, put } = await use();
      await put("changed/c.txt", "version one");
      const { etag } = await storage.stat("changed/c.txt");
      expect(await text(await storage.read("changed/c.txt", { etag }))).toBe("version one");
      await new Promise((r) => setTimeout(r, 20));
      await put("changed/c.txt", "version two!");
      await expect(storage.read("changed/c.txt", { etag })).rejects.toBeInstanceOf(ObjectChanged);
    });

    it("streams an object larger than one read, whole and in ranges, and refuses it once changed", async () => {
      const { storage, put } = await use();
      const one = Buffer.alloc(1024 * 1024 + 123, "a");
      for (let i = 0; i < one.length; i += 4096) one.writeUInt32LE(i, i);
      await put("large/l.bin", one);
      const { etag, size } = await storage.stat("large/l.bin");
      expect(size).toBe(one.length);
      const bytes = async (body: ObjectBody): Promise<Buffer> => {
        const chunks: Buffer[] = [];
        for await (const c of chunksOf(body)) chunks.push(c);
        return Buffer.concat(chunks);
      };
      expect((await bytes(await storage.read("large/l.bin", { etag }))).equals(one)).toBe(true);
      const range = { start: 200_000, end: 900_001 };
      expect((await bytes(await storage.read("large/l.bin", { etag, range }))).equals(one.subarray(range.start, range.end))).toBe(true);
      await new Promise((r) => setTimeout(r, 20));
      await put("large/l.bin", Buffer.alloc(one.length, "b"));
      await expect(storage.read("large/l.bin", { etag })).rejects.toBeInstanceOf(ObjectChanged);
      await expect(storage.read("large/l.bin", { etag, range })).rejects.toBeInstanceOf(ObjectChanged);
    });

    it("reads a large object of a known size (in ranged parts where the store does that), whole and in ranges, never mixing versions", async () => {
      const { storage, put } = await use();
      const one = Buffer.alloc(5 * 1024 * 1024 + 123);
      for (let i = 0; i + 4 <= one.length; i += 4) one.writeUInt32LE(i, i);
      await put("parts/p.bin", one);
      const { etag, size } = await storage.stat("parts/p.bin");
      const bytes = async (body: ObjectBody): Promise<Buffer> => {
        const chunks: Buffer[] = [];
        for await (const c of chunksOf(body)) chunks.push(c);
        return Buffer.concat(chunks);
      };
      expect((await bytes(await storage.read("parts/p.bin", { etag, size }))).equals(one)).toBe(true);
      for (const range of [
        { start: 1, end: size - 1 },
        { start: 3 * 1024 * 1024 - 7, end: 4 * 1024 * 1024 + 9 },
      ]) {
        expect((await bytes(await storage.read("parts/p.bin", { etag, size, range }))).equals(one.subarray(range.start, range.end))).toBe(true);
      }
      // Replaced while being read: the old version whole, or ObjectChanged; never a mix.
      const body = await storage.read("parts/p.bin", { etag, size });
      await new Promise((r) => setTimeout(r, 20));
      await put("parts/p.bin", Buffer.alloc(one.length, "b"));
      const outcome = await bytes(body).then(
        (b) => (b.equals(one) ? "old version" : "mixed"),
        (err: unknown) => (err instanceof ObjectChanged ? "ObjectChanged" : String(err)),
      );
      expect(["old version", "ObjectChanged"]).toContain(outcome);
    });

    it("lists a folder recursively in byte order with sizes, mtimes and identities, directories included", async () => {
      const { storage, put } = await use();
      await put("tree/b.txt", "bb");
      await put("tree/a/x.txt", "x");
      await put("tree/a-b.txt", "ab");
      await put("tree/empty/", "");
      const items = await listAll(storage, "tree/");
      const files = items.filter((i) => i.kind === "file");
      expect(files.map((i) => i.key)).toEqual(["tree/a-b.txt", "tree/a/x.txt", "tree/b.txt"]);
      expect(files.map((i) => (i.kind === "file" ? i.size : -1))).toEqual([2, 1, 2]);
      for (const f of files) if (f.kind === "file") expect(f.etag).toBe((await storage.stat(f.key)).etag);
      expect(items.filter((i) => i.kind === "dir").map((i) => i.key)).toContain("tree/empty/");
      const keys = items.map((i) => i.key);
      expect(keys).toEqual([...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    });

    it("reports a folder that does not exist as ObjectNotFound", async () => {
      const { storage } = await use();
      await expect(listAll(storage, "no-such-folder/")).rejects.toBeInstanceOf(ObjectNotFound);
    });

    it("gets, puts (replacing, or only if absent) and deletes small state objects", async () => {
      const { storage } = await use();
      expect(await storage.get(".zipgate/contract/none")).toBeNull();
      expect(await storage.put(".zipgate/contract/one", "first")).toBe(true);
      expect(await storage.put(".zipgate/contract/one", "second", { ifAbsent: true })).toBe(false);
      expect((await storage.get(".zipgate/contract/one"))?.toString()).toBe("first");
      expect(await storage.put(".zipgate/contract/one", "third")).toBe(true);
      expect((await storage.get(".zipgate/contract/one"))?.toString()).toBe("third");
      await storage.delete(".zipgate/contract/one");
      await storage.delete(".zipgate/contract/one");
      expect(await storage.get(".zipgate/contract/one")).toBeNull();
    });

    it("stops a read when its signal aborts", async () => {
      const { storage, put } = await use();
      await put("abort/big.bin", Buffer.alloc(8 * 1024 * 1024, 1));
      const controller = new AbortController();
      const stream = await storage.read("abort/big.bin", { signal: controller.signal });
      let got = 0;
      const done = (async () => {
        for await (const c of chunksOf(stream)) {
          got += c.length;
          if (got > 0) controller.abort();
        }
      })();
      await expect(done).rejects.toThrow();
      expect(got).toBeLessThan(8 * 1024 * 1024);
    });

    if (options.manyObjects) {
      const count = options.manyObjects;
      it(`lists a folder of ${count} objects completely`, async () => {
        const { storage, put } = await use();
        const keys = Array.from({ length: count }, (_, i) => `many/obj-${String(i).padStart(5, "0")}`);
        for (let i = 0; i < keys.length; i += 32) await Promise.all(keys.slice(i, i + 32).map((k) => put(k, "m")));
        const items = (await listAll(storage, "many/")).filter((i) => i.kind === "file");
        expect(items.map((i) => i.key)).toEqual(keys);
      });
    }
  });
}
