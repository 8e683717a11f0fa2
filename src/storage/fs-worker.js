// @ts-check
// The folder store's metadata half, on worker threads: open + fstat (+ the whole read of a
// small object) and folder walks, done with blocking calls. On the main thread each of
// those is a thread-pool round trip costing more than the system call itself; here a batch
// of them costs one message each way, and the event loop stays free for the sockets.
// Messages are columns (one string, a few typed arrays, one data buffer per batch), not an
// object per request: structured cloning of per-file objects cost more than the calls.
// Plain JavaScript because worker threads load it as it is (also from the sources in tests);
// the main thread imports it only for the constants below.
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { crc32 } from "node:zlib";
import { fromRaw, toRaw } from "./fs-names.js";

/**
 * A batch of requests, as columns. Request i: `ops[i]` (OP_OPEN or OP_LSTAT), the i-th path
 * of `paths` (joined by NUL, which no path holds), and for an open `nums[3i..3i+2]`: start,
 * end (-1 for the end of the file) and the largest range read whole.
 * @typedef {{ ops: Uint8Array<ArrayBuffer>, paths: string, nums: Float64Array<ArrayBuffer> }} Batch
 *
 * The answers, in request order. Request i: `nums[6i..6i+5]`: kind (KIND_*), size, mtimeMs,
 * offset and length of its bytes in `data[nums[6i+5]]` (length -1 when the range was not
 * read); the i-th etag of `etags`; `errors[i]` when it failed (and then nothing else of it counts).
 * No descriptor crosses over: Node tracks the descriptors a worker opens as its own (it warns
 * when a number comes back, and closes them when the thread ends), so a file streamed in
 * chunks is opened again by the main thread.
 * @typedef {{ nums: Float64Array<ArrayBuffer>, etags: string, data: ArrayBuffer[] | null, errors: Array<{ code?: string, message: string } | null> | null }} Answers
 *
 * A folder walk, sorted by key in byte order, as columns (keys and etags joined by NUL).
 * @typedef {{ keys: string, etags: string, sizes: Float64Array<ArrayBuffer>, mtimes: Float64Array<ArrayBuffer>, kinds: Uint8Array<ArrayBuffer> }} Listing
 */

export const OP_OPEN = 0;
export const OP_LSTAT = 1;
export const KIND_FILE = 0;
export const KIND_DIR = 1;
export const KIND_OTHER = 2;
export const ANSWER_WIDTH = 6;
/**
 * The bytes of a batch cross over in pieces of at most this size (or one read's own): one
 * slice still held by one download pins only its piece, not the bytes of the whole batch.
 */
const PIECE = 256 * 1024;

/** Code units from which UTF-16 order and UTF-8 byte order may differ. */
const WIDE = /[\uD800-\uFFFF]/;

/**
 * A walk asked of a walker thread: the folder, its key, the most files worth listing (the
 * walk stops past it), and a flag the main thread sets to 1 to cancel the walk.
 * @typedef {{ path: string, prefix: string, limit: number, cancel: Int32Array }} Walk
 *
 * A CRC asked of a walker thread (the other long task): the file, the version it must be
 * (etag), and the same cancel flag.
 * @typedef {{ crc: true, path: string, etag: string, cancel: Int32Array }} CrcJob
 */

/** Bytes read per call when hashing a whole file. */
const CRC_READ = 1024 * 1024;
/** @type {Buffer | undefined} */
let crcBuffer;

/** A walker that listed more than this many entries ends after answering, and its heap with it. */
export const RETIRE_AFTER = 20_000;

if (!isMainThread) {
  const port = /** @type {import("node:worker_threads").MessagePort} */ (parentPort);
  if (/** @type {{ walker?: boolean } | undefined} */ (workerData)?.walker) {
    port.on("message", (/** @type {Walk | CrcJob} */ walk) => {
      if ("crc" in walk) {
        try {
          port.postMessage({ crc: crcOfFile(walk.path, walk.etag, walk.cancel) });
        } catch (err) {
          port.postMessage({ error: describeError(err) });
        }
        return;
      }
      let size = 0;
      try {
        const listing = list(walk.path, walk.prefix, walk.limit, walk.cancel);
        size = listing.sizes.length;
        port.postMessage({ listing }, [listing.sizes.buffer, listing.mtimes.buffer, listing.kinds.buffer]);
      } catch (err) {
        port.postMessage({ error: describeError(err) });
      }
      // A walk of 100,000 files leaves tens of MiB on this thread's heap: let it go with the thread.
      if (size > RETIRE_AFTER) process.exit(0);
    });
  } else {
    port.on("message", (/** @type {Batch} */ batch) => {
      const answers = answer(batch);
      port.postMessage(answers, answers.data ?? []);
    });
  }
}

/**
 * @param {unknown} err
 * @returns {{ code?: string, message: string }}
 */
function describeError(err) {
  const e = /** @type {NodeJS.ErrnoException} */ (err);
  return e.code === undefined ? { message: String(e.message) } : { code: e.code, message: String(e.message) };
}

/**
 * Runs a batch in two passes: open + fstat everything, then read the small ranges into
 * pieces of at most PIECE bytes, which cross over as transfers (no copy).
 * @param {Batch} batch
 * @returns {Answers}
 */
function answer(batch) {
  const count = batch.ops.length;
  const paths = batch.paths.split("\0");
  const nums = new Float64Array(count * ANSWER_WIDTH);
  /** @type {string[]} */
  const etags = new Array(count).fill("");
  /** @type {Answers["errors"]} */
  let errors = null;
  /** @type {Array<[index: number, fd: number, start: number, length: number, piece: number, offset: number]>} */
  const reads = [];
  /** @type {number[]} bytes of each piece */
  const pieces = [];
  /** ctime of each open descriptor when it was opened */
  opened.clear();
  /** The folders of this batch's files, opened once each (see openInFolder). @type {Map<string, number>} */
  const folders = new Map();
  for (let i = 0; i < count; i++) {
    const path = /** @type {string} */ (paths[i]);
    const at = i * ANSWER_WIDTH;
    nums[at + 4] = -1;
    let fd = -1;
    try {
      // Never blocks: a FIFO or device put in place of a file opens at once, and is refused below.
      if (batch.ops[i] === OP_OPEN) {
        fd = openInFolder(path, folders);
      } else if (realPath(dirname(path)) !== dirname(path)) {
        throw throughLink(path);
      }
      const stat = fd === -1 ? lstatSync(toRaw(path), { bigint: true }) : fstatSync(fd, { bigint: true });
      const kind = stat.isFile() ? KIND_FILE : stat.isDirectory() ? KIND_DIR : KIND_OTHER;
      const size = Number(stat.size);
      nums[at] = kind;
      nums[at + 1] = size;
      nums[at + 2] = Number(stat.mtimeMs);
      etags[i] = etagOf(stat);
      if (fd === -1) continue;
      opened.set(fd, stat);
      const start = /** @type {number} */ (batch.nums[i * 3]);
      const wanted = /** @type {number} */ (batch.nums[i * 3 + 1]);
      const end = wanted < 0 ? size : wanted;
      if (kind === KIND_FILE && end <= size && start <= end && end - start <= /** @type {number} */ (batch.nums[i * 3 + 2])) {
        const length = end - start;
        if (pieces.length === 0 || /** @type {number} */ (pieces[pieces.length - 1]) + length > PIECE) pieces.push(0);
        const piece = pieces.length - 1;
        reads.push([i, fd, start, length, piece, /** @type {number} */ (pieces[piece])]);
        pieces[piece] = /** @type {number} */ (pieces[piece]) + length;
      } else {
        closeSync(fd);
      }
    } catch (err) {
      if (fd !== -1) closeSync(fd);
      errors ??= new Array(count).fill(null);
      errors[i] = describeError(err);
    }
  }
  // Their own memory (not the shared pool), so that they can be handed over without a copy.
  const buffers = pieces.map((bytes) => Buffer.allocUnsafeSlow(bytes));
  for (const [i, fd, start, length, piece, offset] of reads) {
    const data = /** @type {Buffer} */ (buffers[piece]);
    const at = i * ANSWER_WIDTH;
    try {
      let got = 0;
      while (got < length) {
        const n = readSync(fd, data, offset + got, length - got, start + got);
        if (n === 0) break; // shrunk meanwhile: the caller sees fewer bytes than it expects
        got += n;
      }
      // Written to while it was read (ctime moves even when the mtime is put back)?
      if (changedSince(fd)) throw Object.assign(new Error("the file changed while it was read"), { code: "ECHANGED" });
      nums[at + 3] = offset;
      nums[at + 4] = got;
      nums[at + 5] = piece;
    } catch (err) {
      errors ??= new Array(count).fill(null);
      errors[i] = describeError(err);
    } finally {
      closeSync(fd);
    }
  }
  for (const dirFd of folders.values()) if (dirFd >= 0) closeSync(dirFd);
  return { nums, etags: etags.join("\0"), data: buffers.length > 0 ? buffers.map((b) => /** @type {ArrayBuffer} */ (b.buffer)) : null, errors };
}

/**
 * The CRC-32 of the whole file at `path` (opened as for a read: no link, never blocking), which
 * must be the version `etag` and stay it while it is read: the bytes never leave this thread.
 * Checks `cancel` between reads (a deadline or a client gone stops it within one read).
 * @param {string} path
 * @param {string} etag
 * @param {Int32Array} cancel
 */
function crcOfFile(path, etag, cancel) {
  /** @type {Map<string, number>} */
  const folders = new Map();
  let fd = -1;
  try {
    fd = openInFolder(path, folders);
    const stat = fstatSync(fd, { bigint: true });
    if (!stat.isFile()) throw Object.assign(new Error(`not a file: ${path}`), { code: "ENOENT" });
    if (etagOf(stat) !== etag) throw Object.assign(new Error("the file changed"), { code: "ECHANGED" });
    opened.clear();
    opened.set(fd, stat);
    crcBuffer ??= Buffer.allocUnsafe(CRC_READ);
    const size = Number(stat.size);
    let crc = 0;
    let at = 0;
    while (at < size) {
      if (Atomics.load(cancel, 0) !== 0) throw Object.assign(new Error("cancelled"), { code: "ECANCELED" });
      const n = readSync(fd, crcBuffer, 0, Math.min(CRC_READ, size - at), at);
      if (n === 0) break;
      crc = crc32(crcBuffer.subarray(0, n), crc);
      at += n;
    }
    if (at !== size || changedSince(fd)) throw Object.assign(new Error("the file changed while it was read"), { code: "ECHANGED" });
    return crc >>> 0;
  } finally {
    if (fd !== -1) closeSync(fd);
    opened.clear();
    for (const dirFd of folders.values()) if (dirFd >= 0) closeSync(dirFd);
  }
}

/** Where this thread's open descriptors can be named as folders, when /proc has them. */
const OWN_FDS = (() => {
  try {
    readlinkSync("/proc/self/fd/0");
    return "/proc/self/fd/";
  } catch {
    return undefined;
  }
})();

/**
 * Opens the file at `path` (no link followed, at any depth) for reading, without blocking.
 * O_NOFOLLOW guards the last component only, so a link anywhere above it must be caught too.
 * Each folder is opened once per batch and checked to be reached through no link (the path
 * its descriptor names is the path asked for); its files are then opened through that
 * descriptor (`/proc/self/fd/<folder>/<name>`, which resolves from the folder opened, as
 * openat would), so no swap of a parent for a link after the check can redirect them. That
 * costs one open per file instead of an open and a readlink (10,000 small files: 2.6 instead
 * of 5.6 µs each; /proc/self, not /proc/<pid>: in a PID namespace whose /proc is another's,
 * <pid> names another process). Where the folder cannot be used so (no /proc, not openable, reached
 * through a link), the file is opened by its path and its descriptor checked instead, which
 * gives the same answer and the same error.
 * @param {string} path
 * @param {Map<string, number>} folders descriptors by folder path (-1: not usable), closed by the caller
 */
function openInFolder(path, folders) {
  const flags = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  const slash = path.lastIndexOf("/");
  if (OWN_FDS !== undefined && slash > 0) {
    const folder = path.slice(0, slash);
    let dirFd = folders.get(folder);
    if (dirFd === undefined) {
      dirFd = -1;
      try {
        dirFd = openSync(toRaw(folder), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
        if (openedPath(dirFd) !== folder) {
          closeSync(dirFd);
          dirFd = -1;
        }
      } catch {
        dirFd = -1;
      }
      folders.set(folder, dirFd);
    }
    if (dirFd >= 0) {
      const name = toRaw(path.slice(slash + 1));
      return openSync(typeof name === "string" ? `${OWN_FDS}${dirFd}/${name}` : Buffer.concat([Buffer.from(`${OWN_FDS}${dirFd}/`), name]), flags);
    }
  }
  const fd = openSync(toRaw(path), flags);
  if (openedPath(fd) !== path) {
    closeSync(fd);
    throw throughLink(path);
  }
  return fd;
}

/** The stat of each open descriptor when it was opened. @type {Map<number, import("node:fs").BigIntStats>} */
const opened = new Map();

/**
 * Whether the file open as `fd` is no longer the version it was at open: inode, size, mtime
 * or ctime differ (compared as numbers: an etag string per file cost more than the call).
 * @param {number} fd
 */
function changedSince(fd) {
  const now = fstatSync(fd, { bigint: true });
  const then = opened.get(fd);
  return then === undefined || now.ino !== then.ino || now.size !== then.size || now.mtimeNs !== then.mtimeNs || now.ctimeNs !== then.ctimeNs;
}

/**
 * The path an open descriptor really names (every link resolved), from /proc; where there
 * is no /proc, the resolved path it was opened by.
 * @param {number} fd
 * @param {string} [path]
 */
export function openedPath(fd, path) {
  try {
    return fromRaw(readlinkSync(`/proc/self/fd/${fd}`, { encoding: "buffer" }));
  } catch {
    return path === undefined ? "" : realPath(path);
  }
}

/** @param {string} path */
function realPath(path) {
  try {
    return fromRaw(realpathSync.native(toRaw(path), { encoding: "buffer" }));
  } catch {
    return "";
  }
}

/**
 * A path that reached its object through a symbolic link: reported as not found (ELOOP).
 * @param {string} path
 */
export function throughLink(path) {
  return Object.assign(new Error(`a component of the path is a symbolic link: ${path}`), { code: "ELOOP" });
}

/**
 * Identity of a version of a file: inode, size and mtime in nanoseconds.
 * @param {import("node:fs").BigIntStats} st
 */
export function etagOf(st) {
  return `${st.ino.toString(36)}-${st.size.toString(36)}-${st.mtimeNs.toString(36)}`;
}

/**
 * Everything below the folder `path` (whose key is `prefix`), breadth-first, without
 * following links, sorted by key in byte order. Folders that vanish meanwhile are skipped.
 * Kept as columns rather than an object per entry: one string and three arrays cross the
 * thread boundary. Stops early once more than `limit` files were found (the caller refuses
 * the folder then), and when `cancel[0]` turns 1 (the client went away).
 * @param {string} path
 * @param {string} prefix
 * @param {number} limit
 * @param {Int32Array} cancel
 * @returns {Listing}
 */
function list(path, prefix, limit, cancel) {
  // No component of the folder's own path may be a link either (the walk follows none below it).
  const bare = path.replace(/\/+$/, "");
  if (realPath(bare) !== bare && lstatSync(toRaw(bare), { throwIfNoEntry: false })) throw throughLink(path);
  if (!lstatSync(toRaw(path)).isDirectory()) {
    throw Object.assign(new Error(`not a folder: ${prefix}`), { code: "ENOTDIR" });
  }
  /** @type {string[]} */
  const keys = [];
  /** @type {string[]} */
  const etags = [];
  /** @type {number[]} */
  const sizes = [];
  /** @type {number[]} */
  const mtimes = [];
  /** @type {number[]} */
  const kinds = [];
  // UTF-16 order is UTF-8 byte order unless a key holds code units from U+D800 up.
  let wide = false;
  /** @type {Array<[string, string]>} */
  const dirs = [[path, prefix]];
  let files = 0;
  walk: for (let next = 0; next < dirs.length; next++) {
    if (Atomics.load(cancel, 0) === 1) throw Object.assign(new Error("the walk was cancelled"), { code: "ABORT_ERR" });
    const [dir, keyPrefix] = /** @type {[string, string]} */ (dirs[next]);
    /** @type {import("node:fs").Dirent<Buffer>[]} */
    let dirents;
    try {
      // As bytes: a name that is not UTF-8 is kept (escaped), never lost.
      dirents = readdirSync(toRaw(dir), { withFileTypes: true, encoding: "buffer" });
    } catch (err) {
      const code = /** @type {NodeJS.ErrnoException} */ (err).code;
      if (code === "ENOENT" || code === "ENOTDIR") continue;
      throw Object.assign(/** @type {Error} */ (err), { message: `${/** @type {Error} */ (err).message} (${keyPrefix})` });
    }
    for (const [n, d] of dirents.entries()) {
      if ((n & 1023) === 1023 && Atomics.load(cancel, 0) === 1) throw Object.assign(new Error("the walk was cancelled"), { code: "ABORT_ERR" });
      if (!d.isFile() && !d.isDirectory()) continue; // links, sockets, devices
      const name = fromRaw(d.name);
      let stat;
      try {
        stat = lstatSync(toRaw(join(dir, name)), { bigint: true });
      } catch (err) {
        // Removed since readdir; anything else (a path too long to name) fails the walk,
        // naming the entry, rather than leaving it out unsaid.
        if (/** @type {NodeJS.ErrnoException} */ (err).code === "ENOENT") continue;
        throw Object.assign(/** @type {Error} */ (err), { message: `cannot read ${keyPrefix}${name}: ${/** @type {Error} */ (err).message}` });
      }
      const isFile = stat.isFile();
      if (!isFile && !stat.isDirectory()) continue;
      const key = isFile ? keyPrefix + name : `${keyPrefix + name}/`;
      if (!wide && WIDE.test(key)) wide = true;
      keys.push(key);
      etags.push(isFile ? etagOf(stat) : "");
      sizes.push(Number(stat.size));
      mtimes.push(Number(stat.mtimeMs));
      kinds.push(isFile ? 1 : 0);
      if (!isFile) dirs.push([join(dir, name), key]);
      else if (++files > limit) break walk;
    }
  }
  const order = Uint32Array.from(keys.keys());
  if (wide) {
    const bytes = keys.map((k) => Buffer.from(k));
    order.sort((a, b) => Buffer.compare(/** @type {Buffer} */ (bytes[a]), /** @type {Buffer} */ (bytes[b])));
  } else {
    order.sort((a, b) => {
      const x = /** @type {string} */ (keys[a]);
      const y = /** @type {string} */ (keys[b]);
      return x < y ? -1 : x > y ? 1 : 0;
    });
  }
  const sorted = (/** @type {string[]} */ column) => Array.from(order, (i) => column[i]).join("\0");
  return {
    keys: sorted(keys),
    etags: sorted(etags),
    sizes: Float64Array.from(order, (i) => /** @type {number} */ (sizes[i])),
    mtimes: Float64Array.from(order, (i) => /** @type {number} */ (mtimes[i])),
    kinds: Uint8Array.from(order, (i) => /** @type {number} */ (kinds[i])),
  };
}
