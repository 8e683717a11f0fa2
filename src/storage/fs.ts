import { randomUUID } from "node:crypto";
import { type BigIntStats, constants, createReadStream, close as fsClose, open as fsOpen, read as fsRead, fstat } from "node:fs";
import { link, lstat, mkdir, readdir, readFile, realpath, rename, rm, writeFile } from "node:fs/promises";
import { join, resolve, sep } from "node:path";
import { Readable } from "node:stream";
import { GatewayError, ObjectAccessDenied, ObjectChanged, ObjectNotFound, StorageUnavailable } from "../errors.js";
import { mapLimit } from "../util/concurrency.js";
import { isReserved } from "./keys.js";
import type { ListItem, ObjectInfo, ReadOptions, Storage } from "./types.js";

export interface FsStorageOptions {
  /** Folder that holds the objects; created when missing. */
  root: string;
  /**
   * Read size for object data. Larger chunks cost fewer calls per byte.
   * @default 262144
   */
  chunkSize?: number;
}

const DEFAULT_CHUNK = 256 * 1024;
const LIST_CONCURRENCY = 32;

/**
 * A folder on the local disk as an object store. Symbolic links are never
 * followed (a link is neither an object nor a folder), so nothing outside the
 * folder, and nothing in the reserved prefix, can be reached through one.
 */
export async function createFsStorage(options: FsStorageOptions): Promise<Storage> {
  await mkdir(options.root, { recursive: true });
  const root = await realpath(resolve(options.root));
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK;

  const pathOf = (key: string): string => {
    const segments = key.split("/").filter((s) => s !== "");
    if (segments.some((s) => s === "." || s === ".." || s.includes("\0"))) throw new ObjectNotFound(key);
    const full = join(root, ...segments);
    if (full !== root && !full.startsWith(root + sep)) throw new ObjectNotFound(key);
    return full;
  };

  const info = (key: string, st: { size: bigint; mtimeMs: bigint; mtimeNs: bigint; ino: bigint }): ObjectInfo => ({
    key,
    size: Number(st.size),
    mtimeMs: Number(st.mtimeMs),
    etag: `${st.ino.toString(36)}-${st.size.toString(36)}-${st.mtimeNs.toString(36)}`,
  });

  return {
    description: `folder ${root}`,

    async stat(key) {
      const st = await lstat(pathOf(key), { bigint: true }).catch((err) => {
        throw mapFsError(err, key);
      });
      if (!st.isFile()) throw new ObjectNotFound(key);
      return info(key, st);
    },

    async *list(prefix) {
      const base = pathOf(prefix);
      const top = await lstat(base).catch(() => null);
      if (!top?.isDirectory()) throw new ObjectNotFound(prefix);
      const items: Array<{ sortKey: Buffer; item: ListItem }> = [];
      const add = (item: ListItem): void => {
        items.push({ sortKey: Buffer.from(item.key), item });
      };
      // Breadth-first, with a bounded number of stats in flight: a folder of
      // 100,000 files must not mean 100,000 pending promises.
      const dirs: Array<[string, string]> = [[base, prefix]];
      while (dirs.length > 0) {
        const [dir, keyPrefix] = dirs.shift() as [string, string];
        let dirents: import("node:fs").Dirent[];
        try {
          dirents = await readdir(dir, { withFileTypes: true });
        } catch (err) {
          if (isCode(err, "ENOENT") || isCode(err, "ENOTDIR")) continue;
          throw mapFsError(err, keyPrefix);
        }
        await mapLimit(dirents, LIST_CONCURRENCY, async (d) => {
          const key = keyPrefix + d.name;
          if (!isReserved(prefix) && isReserved(key)) return;
          if (d.isFile()) {
            const st = await lstat(join(dir, d.name), { bigint: true }).catch(() => null);
            if (st?.isFile()) add({ kind: "file", ...info(key, st) });
          } else if (d.isDirectory()) {
            const st = await lstat(join(dir, d.name)).catch(() => null);
            if (!st?.isDirectory()) return;
            add({ kind: "dir", key: `${key}/`, mtimeMs: st.mtimeMs });
            dirs.push([join(dir, d.name), `${key}/`]);
          }
        });
      }
      items.sort((a, b) => Buffer.compare(a.sortKey, b.sortKey));
      for (const { item } of items) yield item;
    },

    async read(key, opts: ReadOptions = {}): Promise<Readable> {
      opts.signal?.throwIfAborted();
      // Callback fs with a plain fd: the promise API's FileHandle costs a lot per small object.
      const fd = await new Promise<number>((resolve, reject) =>
        fsOpen(pathOf(key), constants.O_RDONLY | constants.O_NOFOLLOW, (err, fd) => (err ? reject(mapFsError(err, key)) : resolve(fd))),
      );
      try {
        const st = await new Promise<BigIntStats>((resolve, reject) => fstat(fd, { bigint: true }, (err, st) => (err ? reject(err) : resolve(st))));
        if (!st.isFile()) throw new ObjectNotFound(key);
        if (opts.etag !== undefined && info(key, st).etag !== opts.etag) throw new ObjectChanged(key);
        const start = opts.range?.start ?? 0;
        const end = opts.range?.end ?? Number(st.size);
        if (end > Number(st.size) || start > end) throw new ObjectChanged(key);
        // The signal may have fired while the file was opened: a stream made
        // with an aborted signal errors with nobody listening yet.
        opts.signal?.throwIfAborted();
        if (end - start <= chunkSize) {
          // A small object is one read, not a stream.
          const buf = Buffer.allocUnsafe(end - start);
          const got =
            buf.length === 0
              ? 0
              : await new Promise<number>((resolve, reject) => fsRead(fd, buf, 0, buf.length, start, (err, n) => (err ? reject(err) : resolve(n))));
          fsClose(fd, () => {});
          return Readable.from(got === buf.length ? [buf] : [buf.subarray(0, got)]);
        }
        return createReadStream("", { fd, start, end: end - 1, highWaterMark: chunkSize, signal: opts.signal, autoClose: true });
      } catch (err) {
        fsClose(fd, () => {});
        throw err instanceof GatewayError ? err : mapFsError(err, key);
      }
    },

    async get(key) {
      try {
        return await readFile(pathOf(key));
      } catch (err) {
        if (isCode(err, "ENOENT")) return null;
        throw mapFsError(err, key);
      }
    },

    async put(key, body, opts = {}) {
      const path = pathOf(key);
      await mkdir(join(path, ".."), { recursive: true });
      // Write then rename (or link, which refuses to replace), so a reader never sees half an object.
      const tmp = `${path}.${process.pid}.${randomUUID()}.tmp`;
      await writeFile(tmp, body);
      if (!opts.ifAbsent) {
        await rename(tmp, path);
        return true;
      }
      try {
        await link(tmp, path);
        return true;
      } catch (err) {
        if (isCode(err, "EEXIST")) return false;
        throw mapFsError(err, key);
      } finally {
        await rm(tmp, { force: true });
      }
    },

    async delete(key) {
      await rm(pathOf(key), { force: true });
    },

    async close() {},
  };
}

function isCode(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === code;
}

function mapFsError(err: unknown, key: string): GatewayError {
  if (err instanceof GatewayError) return err;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === "ENOENT" || code === "ENOTDIR" || code === "ELOOP" || code === "EISDIR") return new ObjectNotFound(key, err);
  if (code === "EACCES" || code === "EPERM") return new ObjectAccessDenied(key, err);
  return new StorageUnavailable("the folder store failed", err);
}
