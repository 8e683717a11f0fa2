// @ts-check
// The folder store's metadata half, on its own thread: open + fstat (+ the whole read of a
// small object) and folder walks, done with blocking calls. On the main thread each of
// those is a thread-pool round trip costing more than the system call itself; here a batch
// of them costs one message each way, and the event loop stays free for the sockets.
// Plain JavaScript because worker threads load it as it is (also from the sources in tests).
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readSync } from "node:fs";
import { join } from "node:path";
import { parentPort } from "node:worker_threads";

/**
 * @typedef {{ id: number, op: "open", path: string, start: number, end: number | null, limit: number }} OpenRequest
 * @typedef {{ id: number, op: "lstat", path: string }} LstatRequest
 * @typedef {{ id: number, op: "list", path: string, prefix: string }} ListRequest
 * @typedef {OpenRequest | LstatRequest | ListRequest} Request
 * @typedef {{ kind: "file" | "dir" | "other", size: number, mtimeMs: number, etag: string }} Stat
 */

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
 * @param {string} path
 * @param {string} prefix
 */
function list(path, prefix) {
  if (!lstatSync(path).isDirectory()) {
    throw Object.assign(new Error(`not a folder: ${prefix}`), { code: "ENOTDIR" });
  }
  /** @type {Array<{ key: string, stat: Stat }>} */
  const items = [];
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
      const key = keyPrefix + d.name;
      if (stat.kind === "file") items.push({ key, stat });
      else if (stat.kind === "dir") {
        items.push({ key: `${key}/`, stat });
        dirs.push([join(dir, d.name), `${key}/`]);
      }
    }
  }
  const sortKeys = new Map(items.map((item) => [item, Buffer.from(item.key)]));
  items.sort((a, b) => Buffer.compare(/** @type {Buffer} */ (sortKeys.get(a)), /** @type {Buffer} */ (sortKeys.get(b))));
  // Columns, not 100,000 small objects: one string and three arrays cross the thread boundary.
  const sizes = new Float64Array(items.length);
  const mtimes = new Float64Array(items.length);
  const kinds = new Uint8Array(items.length);
  for (const [i, { stat }] of items.entries()) {
    sizes[i] = stat.size;
    mtimes[i] = stat.mtimeMs;
    kinds[i] = stat.kind === "file" ? 1 : 0;
  }
  return {
    keys: items.map((item) => item.key).join("\0"),
    etags: items.map((item) => (item.stat.kind === "file" ? item.stat.etag : "")).join("\0"),
    sizes,
    mtimes,
    kinds,
  };
}
