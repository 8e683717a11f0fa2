import { randomUUID } from "node:crypto";
import { type BigIntStats, constants, close as fsClose, fstat as fsFstat, open as fsOpen, read as fsRead } from "node:fs";
import { type FileHandle, link, mkdir, open as openHandle, realpath, rename, rm, rmdir, statfs, writeFile } from "node:fs/promises";
import { join, resolve, sep } from "node:path";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import { GatewayError, ObjectAccessDenied, ObjectChanged, ObjectNotFound, StateUnwritable, StorageUnavailable } from "../errors.js";
import { largeReadBuffers, readBuffers } from "../util/buffer-pool.js";
import { toRaw } from "./fs-names.js";
import { etagOf, openedPath, throughLink } from "./fs-worker.js";
import { FsWorkers } from "./fs-workers.js";
import { isReserved } from "./keys.js";
import type { ObjectBody, ReadOptions, Storage, VersionedStream } from "./types.js";

export interface FsStorageOptions {
  /** Folder that holds the objects; created when missing. */
  root: string;
  /**
   * Read size for object data. Larger chunks cost fewer calls per byte; objects up to this
   * size are read whole in one call.
   * @default 262144
   */
  chunkSize?: number;
  /**
   * Worker threads for opening files and walking folders.
   * @default 2
   */
  workers?: number;
  /**
   * A read, stat or open the disk has not answered in this long fails (StorageTimeout), and
   * its worker thread is replaced; the store is unhealthy while a thread is stuck. None: no limit.
   */
  timeoutMs?: number | undefined;
}

const DEFAULT_CHUNK = 256 * 1024;
const DEFAULT_WORKERS = 2;
/** A key with an empty, "." or ".." segment (or none at all), or a NUL. */
const UNPLAIN_KEY = /(?:^|\/)\.{0,2}(?:\/|$)|\0/;

/**
 * A folder on the local disk as an object store. Symbolic links are never
 * followed (a link is neither an object nor a folder), so nothing outside the
 * folder, and nothing in the reserved prefix, can be reached through one.
 *
 * Opening, stat and folder walks run as blocking calls on worker threads
 * (fs-worker.js), which also read small objects whole: for many small files
 * that costs a fraction of a thread-pool round trip per call. Larger objects
 * stream from the opened descriptor on the main thread.
 */
export async function createFsStorage(options: FsStorageOptions): Promise<Storage> {
  await mkdir(options.root, { recursive: true });
  const root = await realpath(resolve(options.root));
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK;
  const workers = new FsWorkers(options.workers ?? DEFAULT_WORKERS, 2, options.timeoutMs);

  const pathOf = (key: string): string => {
    // Most keys are plain (no empty, "." or ".." segment, no NUL): the path is the root joined with the key.
    if (sep === "/" && !UNPLAIN_KEY.test(key)) return `${root}/${key}`;
    const segments = key.split("/").filter((s) => s !== "");
    if (segments.some((s) => s === "." || s === ".." || s.includes("\0"))) throw new ObjectNotFound(key);
    const full = join(root, ...segments);
    if (full !== root && !full.startsWith(root + sep)) throw new ObjectNotFound(key);
    return full;
  };

  return {
    description: `folder ${root}`,
    health: () => (workers.stuck > 0 ? `${workers.stuck} of the folder store's threads wait for a disk that does not answer` : undefined),

    async stat(key) {
      const st = await workers.lstat(pathOf(key)).catch((err) => {
        throw mapFsError(err, key);
      });
      if (st.kind !== "file") throw new ObjectNotFound(key);
      return { key, size: st.size, mtimeMs: st.mtimeMs, etag: st.etag };
    },

    async *list(prefix, opts = {}) {
      const listing = await workers.list(pathOf(prefix), prefix, { limit: opts.limit, signal: opts.signal }).catch((err) => {
        if (opts.signal?.aborted) throw err;
        throw mapFsError(err, prefix);
      });
      const keys = listing.keys === "" ? [] : listing.keys.split("\0");
      const etags = listing.etags.split("\0");
      const hideReserved = !isReserved(prefix);
      for (const [i, key] of keys.entries()) {
        if (hideReserved && isReserved(key)) continue;
        const mtimeMs = listing.mtimes[i] as number;
        if (listing.kinds[i] === 1) yield { kind: "file", key, size: small(listing.sizes[i] as number), mtimeMs, etag: etags[i] as string };
        else yield { kind: "dir", key, mtimeMs };
      }
    },

    // Not an async function: for many small objects its own promise per call was measurable.
    read(key, opts: ReadOptions = {}): Promise<ObjectBody> {
      const start = opts.range?.start ?? 0;
      let path: string;
      try {
        opts.signal?.throwIfAborted();
        path = pathOf(key);
      } catch (err) {
        return Promise.reject(err);
      }
      return workers.open(path, start, opts.range?.end, chunkSize).then(
        (opened): ObjectBody | Promise<ObjectBody> => {
          if (opened.kind !== "file") throw new ObjectNotFound(key);
          if (opts.etag !== undefined && opened.etag !== opts.etag) throw new ObjectChanged(key);
          const end = opts.range?.end ?? opened.size;
          if (end > opened.size || start > end) throw new ObjectChanged(key);
          // The signal may have fired while the file was read.
          opts.signal?.throwIfAborted();
          if (opened.data) return opened.data;
          // Larger: streamed from a descriptor of the main thread's own, checked to be the same version.
          return openStream(path, key, start, end, opts.etag ?? opened.etag, chunkSize, opts.signal);
        },
        (err) => {
          throw mapFsError(err, key);
        },
      );
    },

    crc32(key, opts) {
      let path: string;
      try {
        opts.signal?.throwIfAborted();
        path = pathOf(key);
      } catch (err) {
        return Promise.reject(err);
      }
      return workers.crc(path, opts.etag, opts.signal).catch((err: unknown) => {
        if (opts.signal?.aborted) throw opts.signal.reason;
        throw mapFsError(err, key);
      });
    },

    async get(key) {
      let handle: FileHandle | undefined;
      try {
        // Not a link, never blocking on a FIFO, and only a plain file.
        const path = pathOf(key);
        handle = await openHandle(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
        // No link check here: state is the gateway's own (a read racing a rename of the
        // same state object would look like one), and no client path reaches it.
        if (!(await handle.stat()).isFile()) throw new ObjectNotFound(key);
        return await handle.readFile();
      } catch (err) {
        if (isCode(err, "ENOENT")) return null;
        // The gateway's own state (a manifest made a folder, unreadable): the store's
        // failure, a 5xx that names no internal path.
        const mapped = mapFsError(err, key);
        throw mapped.status < 500 ? new StorageUnavailable("the store's state could not be read", err) : mapped;
      } finally {
        await handle?.close();
      }
    },

    async put(key, body, opts = {}) {
      const path = pathOf(key);
      // Write then rename (or link, which refuses to replace), so a reader never sees half an object.
      const tmp = `${path}.${process.pid}.${randomUUID()}.tmp`;
      try {
        const dir = join(path, "..");
        // A recursive mkdir reports ENOENT on a read-only file system; a plain one says why.
        // State (manifests, secrets) is the owner's alone.
        // A sweep may remove the folder, found empty, between the two steps: then once more.
        for (let tries = 1; ; tries++) {
          await mkdir(dir, { recursive: true, mode: 0o700 }).catch(() => mkdir(dir, { mode: 0o700 }));
          try {
            await writeFile(tmp, body, { mode: 0o600 });
            break;
          } catch (err) {
            if (tries >= 3 || !isCode(err, "ENOENT")) throw err;
          }
        }
        if (!opts.ifAbsent) {
          await rename(tmp, path);
          return true;
        }
        await link(tmp, path);
        return true;
      } catch (err) {
        if (opts.ifAbsent && isCode(err, "EEXIST")) return false;
        throw mapWriteError(err, key);
      } finally {
        // Whatever happened, no temporary file stays behind (after a rename there is none).
        await rm(tmp, { force: true }).catch(() => {});
      }
    },

    async delete(key) {
      await rm(pathOf(key), { force: true });
      // The gateway's own state (`.zipgate/<area>/<id>/…`) leaves no empty folders behind;
      // the objects' folders are never touched.
      if (!isReserved(key)) return;
      const parts = key.split("/").slice(0, -1);
      while (parts.length > 2) {
        const removed = await rmdir(pathOf(parts.join("/"))).then(
          () => true,
          () => false, // not empty (or already gone): stop
        );
        if (!removed) break;
        parts.pop();
      }
    },

    async close() {
      await workers.close();
    },
  };
}

/** Opens `path` (no link followed) as the version `etag`, and streams [start, end) of it. */
async function openStream(
  path: string,
  key: string,
  start: number,
  end: number,
  etag: string,
  chunkSize: number,
  signal: AbortSignal | undefined,
): Promise<Readable> {
  // O_NONBLOCK: a FIFO put in place of the file must not block the open (it is refused below).
  const fd = await openFile(toRaw(path), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((err: unknown) => {
    throw mapFsError(err, key);
  });
  try {
    const st = await fstatFile(fd, { bigint: true }).catch((err: unknown) => {
      throw mapFsError(err, key);
    });
    if (!st.isFile()) throw new ObjectNotFound(key);
    if (openedPath(fd, path) !== path) throw new ObjectNotFound(key, throughLink(path));
    if (etagOf(st) !== etag) throw new ObjectChanged(key);
    // The signal may have fired meanwhile: a stream made with an aborted signal errors with nobody listening yet.
    signal?.throwIfAborted();
    const stream: VersionedStream = fdStream(fd, start, end, chunkSize, signal, key, st);
    // A ctime that settled on a file system whose ctime the kernel keeps: every later change
    // shows as a new ctime.
    if (BigInt(Date.now() - CTIME_SETTLED_MS) * 1_000_000n > st.ctimeNs && (await provesChanges(path, st.dev))) {
      stream.version = `${key}\0${etag}\0${st.ctimeNs}`;
    }
    return stream;
  } catch (err) {
    fsClose(fd, () => {});
    throw err;
  }
}

/**
 * How old a file's ctime must be at open for the file's identity to prove its content. A
 * change after the open then gets a later ctime, also where timestamps are coarse (jiffies,
 * whole seconds). And a write(2) stamps the ctime as it starts, not as its bytes land: one
 * slowed down by a slow disk can still be changing bytes seconds after its stamp, so the
 * margin is well past that. A file changed more recently is hashed whole on every download
 * until it has settled.
 */
const CTIME_SETTLED_MS = 10_000;

/**
 * Local file systems whose ctime the kernel sets on every change and no call can set back
 * (statfs f_type): ext2/3/4, XFS, Btrfs, tmpfs, F2FS, ZFS, overlayfs. Elsewhere (FUSE, SMB,
 * NFS, vfat, exFAT…) the ctime is the server's or a creation time, and nothing is proven:
 * every object sent whole is hashed.
 */
const CTIME_KEEPERS = new Set([0xef53, 0x58465342, 0x9123683e, 0x01021994, 0xf2f52010, 0x2fc12fc1, 0x794c7630]);
/** Whether each device's file system keeps ctimes (asked once per device). */
const deviceKeepsCtime = new Map<bigint, Promise<boolean>>();

function provesChanges(path: string, dev: bigint): Promise<boolean> {
  let known = deviceKeepsCtime.get(dev);
  if (known === undefined) {
    known = statfs(toRaw(path)).then(
      (fs) => CTIME_KEEPERS.has(fs.type),
      () => false,
    );
    deviceKeepsCtime.set(dev, known);
  }
  return known;
}

const openFile = promisify(fsOpen);
const fstatFile = promisify(fsFstat);

/**
 * Streams of the process that read in 1 MiB chunks (largeReadBuffers) rather than the store's
 * chunk size: a quarter of the calls and event-loop turns per byte, on both the read and the
 * socket write (measured: 4 × 128 MiB in 1.47 s instead of 2.04 s, a third less CPU on the
 * main thread). Each holds about three such chunks (one read, one buffered, one in the socket),
 * so the number is capped for the memory ceiling: 16 streams, about 48 MiB together; the
 * others read in the store's chunks.
 */
const LARGE_READ_STREAMS = 16;
let largeReadStreams = 0;

/**
 * Bytes [start, end) of an open file as a stream that owns (and closes) the descriptor.
 * Reads go into pooled buffers when they have the pool's size; the response writer gives
 * them back once sent. A file that shrank ends the stream early: the caller counts bytes.
 * The chunk size is chosen at the first read (a stream opened ahead holds no large slot).
 */
function fdStream(fd: number, start: number, end: number, chunkSize: number, signal: AbortSignal | undefined, key: string, opened: BigIntStats): Readable {
  let pos = start;
  let reading = false;
  let closeWhenRead: (() => void) | undefined;
  let pool = chunkSize === readBuffers.size ? readBuffers : undefined;
  let size = 0;
  let large = false;
  return new Readable({
    highWaterMark: chunkSize,
    signal,
    read() {
      if (size === 0) {
        size = chunkSize;
        if (end - pos > 2 * chunkSize && largeReadStreams < LARGE_READ_STREAMS && pool !== undefined) {
          large = true;
          largeReadStreams++;
          pool = largeReadBuffers;
          size = largeReadBuffers.size;
        }
      }
      const want = Math.min(size, end - pos);
      if (want <= 0) {
        // Read to its end: still the version opened? An in-place write shows in the ctime
        // even when the mtime was put back; the archive must not send a mix of versions.
        reading = true;
        fsFstat(fd, { bigint: true }, (err, now) => {
          reading = false;
          if (closeWhenRead) return closeWhenRead();
          if (err) return this.destroy(err);
          if (etagOf(now) !== etagOf(opened) || now.ctimeNs !== opened.ctimeNs) return this.destroy(new ObjectChanged(key));
          this.push(null);
        });
        return;
      }
      const buf = pool ? pool.take() : Buffer.allocUnsafe(size);
      reading = true;
      fsRead(fd, buf, 0, want, pos, (err, n) => {
        reading = false;
        if (closeWhenRead) {
          pool?.release(buf);
          closeWhenRead();
          return;
        }
        if (err) {
          pool?.release(buf);
          this.destroy(err);
          return;
        }
        if (n === 0) {
          pool?.release(buf);
          this.push(null);
          return;
        }
        pos += n;
        this.push(n === buf.length ? buf : buf.subarray(0, n));
      });
    },
    destroy(err, done) {
      if (large) {
        large = false;
        largeReadStreams--;
      }
      // Never close a descriptor a read is still using: the number could be reused meanwhile.
      const close = (): void => fsClose(fd, () => done(err));
      if (reading) closeWhenRead = close;
      else close();
    },
  });
}

/**
 * A size read from a Float64Array as a small integer when it is one: a number that stays a
 * double makes V8 keep every size (and offset computed from it) of an entry list boxed.
 */
function small(n: number): number {
  return n < 0x40000000 ? n | 0 : n;
}

function isCode(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === code;
}

/** A failed write of the gateway's state: read-only or full is the operator's to fix, a 503. */
function mapWriteError(err: unknown, key: string): GatewayError {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === "EROFS" || code === "EACCES" || code === "EPERM") return new StateUnwritable("read_only", err);
  if (code === "ENOSPC" || code === "EDQUOT" || code === "EFBIG") return new StateUnwritable("full", err);
  if (err instanceof GatewayError) return err;
  return mapFsError(err, key);
}

function mapFsError(err: unknown, key: string): GatewayError {
  if (err instanceof GatewayError) return err;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === "ENOENT" || code === "ENOTDIR" || code === "ELOOP" || code === "EISDIR") return new ObjectNotFound(key, err);
  if (code === "ECHANGED") return new ObjectChanged(key, err);
  // A name the file system cannot take (a segment over 255 bytes, a path over PATH_MAX) is the request's, not the store's failure.
  if (code === "ENAMETOOLONG") {
    return new GatewayError(400, "path_too_long", `a path is too long for the store: /${key.slice(0, 200)}`, {
      cause: err,
      details: { path: `/${key.slice(0, 200)}` },
    });
  }
  if (code === "EACCES" || code === "EPERM") return new ObjectAccessDenied(key, err);
  return new StorageUnavailable("the folder store failed", err);
}
