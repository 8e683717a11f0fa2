#!/usr/bin/env node
// Classic vs descriptor form: for each archive shape, how many entries come out classic,
// the time to first byte, the creation time, and (for "prepare") its cost.
//
//   npm run build && node bench/classic.mjs                       # this checkout's dist/
//   node bench/classic.mjs --main=/path/to/other/dist/main.js     # another build (before/after)
//   node bench/classic.mjs --only=small,mix --reps=9
//
// Data is generated in a temp folder (real bytes; the zip64-by-size file is sparse) and
// removed at the end; the gateway runs as its own process (`node dist/main.js`) on the
// folder store, with MALLOC_MMAP_THRESHOLD_ as `npm start` sets it.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, "").split("=");
    return [k, v ?? "true"];
  }),
);
const here = dirname(fileURLToPath(import.meta.url));
const MAIN = resolve(args.main ?? join(here, "..", "dist", "main.js"));
const REPS = Number(args.reps ?? 7);
const ONLY = args.only ? new Set(args.only.split(",")) : undefined;
const KEY = "bench-key-0123456789abcdef";

/** Lets the CRC records written after a measurement's reads settle before the next one. */
const settle = () => new Promise((r) => setTimeout(r, 1000));

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function startGateway(root) {
  const child = spawn(process.execPath, [MAIN], {
    env: {
      ...process.env,
      MALLOC_MMAP_THRESHOLD_: "131072",
      ZIPGATE_STORAGE: root,
      ZIPGATE_API_KEYS: KEY,
      ZIPGATE_SIGNING_SECRET: "bench-signing-secret-0123456789abcdef",
      ZIPGATE_MAX_FILES: "100000",
      ZIPGATE_MAX_BYTES: "10 GiB",
      PORT: "0",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const port = await new Promise((res, rej) => {
    let out = "";
    const onData = (c) => {
      out += c.toString();
      const m = /listening on [^:]+:(\d+)/.exec(out);
      if (m) res(Number(m[1]));
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => rej(new Error(`gateway exited ${code}: ${out}`)));
  });
  return { url: `http://127.0.0.1:${port}`, stop: () => child.kill("SIGKILL") };
}

async function create(gw, body) {
  const t0 = performance.now();
  const res = await fetch(`${gw.url}/v2/zipball`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  const ms = performance.now() - t0;
  if (res.status !== 201) throw new Error(`create ${res.status}: ${text}`);
  const u = new URL(JSON.parse(text).data.urls.url);
  return { url: gw.url + u.pathname + u.search, ms };
}

/** Time to the first body byte of a GET (the request is cut there), in ms. */
function ttfb(url) {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const req = request(url, (r) => {
      r.once("data", () => {
        res(performance.now() - t0);
        req.destroy();
      });
      r.on("error", () => {});
    });
    req.on("error", (e) => (e.code === "ECONNRESET" ? undefined : rej(e)));
    req.end();
  });
}

/** The whole archive, in one Buffer (only for archives small enough). */
async function fetchAll(url) {
  const res = await fetch(url);
  return Buffer.from(await res.arrayBuffer());
}

/** Reads just the central directory via ranges and counts the forms (bit 3 of each record's flags). */
async function forms(url) {
  const head = await fetch(url, { method: "HEAD" });
  const total = Number(head.headers.get("content-length"));
  const range = async (a, b) => Buffer.from(await (await fetch(url, { headers: { range: `bytes=${a}-${b - 1}` } })).arrayBuffer());
  const tail = await range(Math.max(0, total - 98), total);
  const e = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  let count = tail.readUInt16LE(e + 10);
  let size = tail.readUInt32LE(e + 12);
  let offset = tail.readUInt32LE(e + 16);
  const z = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x06, 0x06]));
  if (z >= 0) {
    count = Number(tail.readBigUInt64LE(z + 32));
    size = Number(tail.readBigUInt64LE(z + 40));
    offset = Number(tail.readBigUInt64LE(z + 48));
  }
  const cd = await range(offset, offset + size);
  let classic = 0;
  let descriptor = 0;
  let at = 0;
  for (let i = 0; i < count; i++) {
    const flags = cd.readUInt16LE(at + 8);
    const name = cd.subarray(at + 46, at + 46 + cd.readUInt16LE(at + 28)).toString();
    if (!name.endsWith("/")) {
      if (flags & 8) descriptor++;
      else classic++;
    }
    at += 46 + cd.readUInt16LE(at + 28) + cd.readUInt16LE(at + 30) + cd.readUInt16LE(at + 32);
  }
  return { classic, descriptor, total };
}

async function writeFiles(root, folder, files) {
  await mkdir(join(root, folder), { recursive: true });
  for (const [name, body] of Object.entries(files)) await writeFile(join(root, folder, name), body);
}

const shapes = {
  small: {
    what: "1,000 files of 4 KiB",
    async make(root, tag) {
      const files = {};
      for (let i = 0; i < 1000; i++) files[`f${i}.bin`] = randomBytes(4096);
      await writeFiles(root, `small${tag}`, files);
      return { objects: [{ folder: `/small${tag}` }] };
    },
  },
  mix: {
    what: "20 × 4 KiB + 5 × 8 MiB",
    async make(root, tag) {
      const files = {};
      for (let i = 0; i < 20; i++) files[`s${i}.bin`] = randomBytes(4096);
      for (let i = 0; i < 5; i++) files[`l${i}.bin`] = randomBytes(8 * 1024 * 1024);
      await writeFiles(root, `mix${tag}`, files);
      return { objects: [{ folder: `/mix${tag}` }] };
    },
  },
  "first-large": {
    what: "1 × 64 MiB then 10 × 4 KiB",
    async make(root, tag) {
      const files = { "a-large.bin": randomBytes(64 * 1024 * 1024) };
      for (let i = 0; i < 10; i++) files[`s${i}.bin`] = randomBytes(4096);
      await writeFiles(root, `firstlarge${tag}`, files);
      return { objects: [{ folder: `/firstlarge${tag}` }] };
    },
  },
  nested: {
    what: "a stored 200 KiB zip, a file holding PK\\x07\\x08, one after",
    async make(root, tag) {
      const inner = Buffer.concat([Buffer.from("PK\x03\x04"), randomBytes(200 * 1024), Buffer.from("PK\x07\x08"), randomBytes(16)]);
      await writeFiles(root, `nested${tag}`, { "inner.zip": inner, "sig.bin": Buffer.from("x PK\x07\x08 y"), "next.txt": "next" });
      return { objects: [{ folder: `/nested${tag}` }] };
    },
  },
  "10k": {
    what: "10,000 files of 1 KiB",
    async make(root, tag) {
      const files = {};
      for (let i = 0; i < 10_000; i++) files[`f${i}.bin`] = randomBytes(1024);
      await writeFiles(root, `tenk${tag}`, files);
      return { objects: [{ folder: `/tenk${tag}` }] };
    },
  },
  "zip64-count": {
    what: "70,000 files of 0–16 bytes",
    async make(root, tag) {
      const files = {};
      for (let i = 0; i < 70_000; i++) files[`f${i}`] = i % 100 === 0 ? `f${i}` : "";
      await writeFiles(root, `many${tag}`, files);
      return { objects: [{ folder: `/many${tag}` }] };
    },
  },
  "zip64-size": {
    what: "one sparse 4 GiB + 4 KiB file, then 2 small",
    async make(root, tag) {
      await mkdir(join(root, `big${tag}`), { recursive: true });
      const fh = await open(join(root, `big${tag}`, "huge.bin"), "w");
      await fh.write(Buffer.from("end"), 0, 3, 2 ** 32 + 4093);
      await fh.close();
      await writeFiles(root, `big${tag}`, { "a.txt": "a", "b.txt": "b" });
      return { objects: [{ path: `/big${tag}/huge.bin` }, { path: `/big${tag}/a.txt` }, { path: `/big${tag}/b.txt` }] };
    },
  },
};

const work = await mkdtemp(join(tmpdir(), "zipgate-classic-bench-"));
const root = join(work, "store");
await mkdir(root, { recursive: true });
const results = [];
const gw = await startGateway(root);
try {
  for (const [name, shape] of Object.entries(shapes)) {
    if (ONLY && !ONLY.has(name)) continue;
    const request = await shape.make(root, "");
    const row = { shape: name, what: shape.what };
    // Creation, five times: nothing is recorded of these objects yet.
    let first;
    const c1 = [];
    for (let i = 0; i < 5; i++) {
      first = await create(gw, request);
      c1.push(first.ms);
    }
    row.create_ms = Math.round(median(c1));
    const f = await forms(first.url);
    await settle();
    row.first = { classic: f.classic, descriptor: f.descriptor, bytes: f.total };
    const t = [];
    for (let i = 0; i < REPS; i++) t.push(await ttfb(first.url));
    row.first.ttfb_ms = +median(t).toFixed(2);
    // "prepare" on a fresh copy of the objects, so it has every CRC to compute.
    if (args.prepare !== "false") {
      const prepared = await create(gw, { ...(await shape.make(root, "-fresh")), prepare: true }).catch((e) => ({ error: String(e).slice(0, 120) }));
      if (prepared.url) {
        const p = await forms(prepared.url);
        await settle();
        const t3 = [];
        for (let i = 0; i < REPS; i++) t3.push(await ttfb(prepared.url));
        row.prepared = { create_ms: Math.round(prepared.ms), classic: p.classic, descriptor: p.descriptor, ttfb_ms: +median(t3).toFixed(2) };
      } else row.prepared = prepared;
    }
    // A whole download (which records CRCs; so did the ranges that read the central
    // directory above), then a new zipball of the same objects.
    if (name !== "zip64-size") {
      await fetchAll(first.url);
      await settle();
      let again;
      const c2 = [];
      for (let i = 0; i < 5; i++) {
        again = await create(gw, request);
        c2.push(again.ms);
      }
      row.again_create_ms = Math.round(median(c2));
      const g = await forms(again.url);
      await settle();
      const t2 = [];
      for (let i = 0; i < REPS; i++) t2.push(await ttfb(again.url));
      row.again = { classic: g.classic, descriptor: g.descriptor, bytes: g.total, ttfb_ms: +median(t2).toFixed(2) };
    }
    results.push(row);
    console.log(JSON.stringify(row));
  }
} finally {
  gw.stop();
  await rm(work, { recursive: true, force: true });
}
