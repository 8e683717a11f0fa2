// @ts-check
// The folder store's metadata half, on its own thread: open + fstat (+ the whole read of a
// small object) and folder walks, done with blocking calls. On the main thread each of
// those is a thread-pool round trip costing more than the system call itself; here a batch
// of them costs one message each way, and the event loop stays free for the sockets.
// Plain JavaScript because worker threads load it as it is (also from the sources in tests).
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readSync } from "node:fs";
import { join } from "node:path";
import { parentPort, workerData } from "node:worker_threads";

/**
 * @typedef {{ id: number, op: "open", path: string, start: number, end: number | null, limit: number }} OpenRequest
 * @typedef {{ id: number, op: "lstat", path: string }} LstatRequest
 * @typedef {{ id: number, op: "list", path: string, prefix: string }} ListRequest
 * @typedef {OpenRequest | LstatRequest | ListRequest} Request
 * @typedef {{ kind: "file" | "dir" | "other", size: number, mtimeMs: number, etag: string }} Stat
 */

/** Code units from which UTF-16 order and UTF-8 byte order may differ. */
const WIDE = /[\uD800-\uFFFF]/;

const port = /** @type {import("node:worker_threads").MessagePort} */ (parentPort);

port.on("message", (/** @type {Request[]} */ batch) => {
  /** @type {unknown[]} */
  const replies = [];
  /** @type {ArrayBuffer[]} */
  const transfer = [];
  for (const req of batch) {
    try {
      replies.push({ id: req.id, value: run(req, transfer) });
    } catch (err) {
      const e = /** @type {NodeJS.ErrnoException} */ (err);
      replies.push({ id: req.id, error: { code: e.code, message: e.message } });
    }
  }
  port.postMessage(replies, transfer);
  // A thread started for one batch (a folder walk) ends by itself once it has answered: its
  // heap goes with it, and nobody has to terminate it.
  if (workerData?.once) port.unref();
});

/**
 * @param {Request} req
 * @param {ArrayBuffer[]} transfer
 */
function run(req, transfer) {
  switch (req.op) {
    case "open":
      return open(req, transfer);
    case "lstat":
      return describe(lstatSync(req.path, { bigint: true }));
    case "list": {
      const columns = list(req.path, req.prefix);
      transfer.push(columns.sizes.buffer, columns.mtimes.buffer, columns.kinds.buffer);
      return columns;
    }
  }
}

/**
 * Identity of a version of a file: inode, size and mtime in nanoseconds.
 * @param {import("node:fs").BigIntStats} st
 * @returns {Stat}
 */
function describe(st) {
  return {
    kind: st.isFile() ? "file" : st.isDirectory() ? "dir" : "other",
    size: Number(st.size),
    mtimeMs: Number(st.mtimeMs),
    etag: `${st.ino.toString(36)}-${st.size.toString(36)}-${st.mtimeNs.toString(36)}`,
  };
}

/**
 * Opens a file without following a link. A plain file whose range fits in `limit` is read
 * whole and closed; anything else comes back as an open descriptor for the caller to stream
 * from or close.
 * @param {OpenRequest} req
 * @param {ArrayBuffer[]} transfer
 */
function open(req, transfer) {
  const fd = openSync(req.path, constants.O_RDONLY | constants.O_NOFOLLOW);
  let stat;
  try {
    stat = describe(fstatSync(fd, { bigint: true }));
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  const end = req.end ?? stat.size;
  if (stat.kind !== "file" || end > stat.size || req.start > end || end - req.start > req.limit) return { stat, fd };
  try {
    // Its own memory (not the shared pool), so that it can be handed over without a copy.
    const data = Buffer.allocUnsafeSlow(end - req.start);
    let got = 0;
    while (got < data.length) {
      const n = readSync(fd, data, got, data.length - got, req.start + got);
      if (n === 0) break; // shrunk meanwhile: the caller sees fewer bytes than it expects
      got += n;
    }
    transfer.push(/** @type {ArrayBuffer} */ (data.buffer));
    return { stat, data: data.subarray(0, got) };
  } finally {
    closeSync(fd);
  }
}

/**
 * Everything below the folder `path` (whose key is `prefix`), breadth-first, without
 * following links, sorted by key in byte order. Folders that vanish meanwhile are skipped.
 * Kept as columns rather than an object per entry: a walk of 100,000 files leaves little
 * behind on this thread, and one string and three arrays cross the thread boundary.
 * @param {string} path
 * @param {string} prefix
 */
function list(path, prefix) {
  if (!lstatSync(path).isDirectory()) {
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
  for (let next = 0; next < dirs.length; next++) {
    const [dir, keyPrefix] = /** @type {[string, string]} */ (dirs[next]);
    /** @type {import("node:fs").Dirent[]} */
    let dirents;
    try {
      dirents = readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      const code = /** @type {NodeJS.ErrnoException} */ (err).code;
      if (code === "ENOENT" || code === "ENOTDIR") continue;
      throw Object.assign(/** @type {Error} */ (err), { message: `${/** @type {Error} */ (err).message} (${keyPrefix})` });
    }
    for (const d of dirents) {
      if (!d.isFile() && !d.isDirectory()) continue; // links, sockets, devices
      let stat;
      try {
        stat = describe(lstatSync(join(dir, d.name), { bigint: true }));
      } catch {
        continue; // removed since readdir
      }
      if (stat.kind === "other") continue;
      const key = stat.kind === "dir" ? `${keyPrefix + d.name}/` : keyPrefix + d.name;
      if (!wide && WIDE.test(key)) wide = true;
      keys.push(key);
      etags.push(stat.kind === "file" ? stat.etag : "");
      sizes.push(stat.size);
      mtimes.push(stat.mtimeMs);
      kinds.push(stat.kind === "file" ? 1 : 0);
      if (stat.kind === "dir") dirs.push([join(dir, d.name), key]);
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
