#!/usr/bin/env node
// What the recorded-CRC lookup costs at creation: two builds side by side on one folder store,
// creations alternating, before and after a first download has recorded the objects' CRCs.
//
//   npm run build && node bench/classic-create.mjs --before=/path/to/old/dist/main.js
//
// Shapes: 10,000 files of 1 KiB in one folder (one shard), and 10,000 files in 1,000 folders
// (lookups capped at 64 shards). Then the time to first byte of each build's own zipball of
// several shapes, GETs alternating, each cut at its first byte.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
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
const AFTER = resolve(args.after ?? join(here, "..", "dist", "main.js"));
const BEFORE = resolve(args.before);
const REPS = Number(args.reps ?? 11);
const KEY = "bench-key-0123456789abcdef";

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function start(main, root) {
  const child = spawn(process.execPath, [main], {
    env: {
      ...process.env,
      MALLOC_MMAP_THRESHOLD_: "131072",
      ZIPGATE_STORAGE: root,
      ZIPGATE_API_KEYS: KEY,
      ZIPGATE_SIGNING_SECRET: "bench-signing-secret-0123456789abcdef",
      ZIPGATE_MAX_FILES: "100000",
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

async function alternate(gws, body) {
  const times = { before: [], after: [] };
  for (let i = 0; i < REPS; i++) {
    for (const name of i % 2 ? ["after", "before"] : ["before", "after"]) times[name].push((await create(gws[name], body)).ms);
  }
  return { before_ms: Math.round(median(times.before)), after_ms: Math.round(median(times.after)) };
}

const work = await mkdtemp(join(tmpdir(), "zipgate-classic-create-"));
const root = join(work, "store");
const gws = {};
try {
  await mkdir(join(root, "one"), { recursive: true });
  for (let i = 0; i < 10_000; i++) await writeFile(join(root, "one", `f${i}.bin`), randomBytes(1024));
  for (let d = 0; d < 1000; d++) {
    await mkdir(join(root, "spread", `d${d}`), { recursive: true });
    for (let i = 0; i < 10; i++) await writeFile(join(root, "spread", `d${d}`, `f${i}.bin`), randomBytes(1024));
  }
  gws.before = await start(BEFORE, root);
  gws.after = await start(AFTER, root);
  for (const [shape, body] of [
    ["10k files, one folder", { objects: [{ folder: "/one" }] }],
    ["10k files, 1,000 folders", { objects: [{ folder: "/spread" }] }],
  ]) {
    const fresh = await alternate(gws, body);
    // A whole download through the new build records every CRC.
    const { url } = await create(gws.after, body);
    await (await fetch(url)).arrayBuffer();
    await new Promise((r) => setTimeout(r, 1500));
    const recorded = await alternate(gws, body);
    console.log(JSON.stringify({ shape, nothing_recorded: fresh, after_a_download: recorded }));
  }
  await mkdir(join(root, "small"), { recursive: true });
  for (let i = 0; i < 1000; i++) await writeFile(join(root, "small", `f${i}.bin`), randomBytes(4096));
  await mkdir(join(root, "firstlarge"), { recursive: true });
  await writeFile(join(root, "firstlarge", "a.bin"), randomBytes(64 * 1024 * 1024));
  for (let i = 0; i < 10; i++) await writeFile(join(root, "firstlarge", `s${i}.bin`), randomBytes(4096));
  await mkdir(join(root, "firstsmall"), { recursive: true });
  await writeFile(join(root, "firstsmall", "a.bin"), randomBytes(200 * 1024));
  await writeFile(join(root, "firstsmall", "b.bin"), randomBytes(8 * 1024 * 1024));
  for (const [shape, folder] of [
    ["1,000 × 4 KiB", "/small"],
    ["10k × 1 KiB", "/one"],
    ["64 MiB first, then 10 × 4 KiB", "/firstlarge"],
    ["200 KiB first, then 8 MiB", "/firstsmall"],
  ]) {
    // Each build's own zipball, made before any download of it (a new object version would
    // be needed for every GET to learn a small first CRC afresh; here the first GET records it).
    const urls = { before: (await create(gws.before, { objects: [{ folder }] })).url, after: (await create(gws.after, { objects: [{ folder }] })).url };
    const times = { before: [], after: [] };
    for (let i = 0; i < REPS; i++) for (const name of i % 2 ? ["after", "before"] : ["before", "after"]) times[name].push(await ttfb(urls[name]));
    console.log(JSON.stringify({ ttfb: shape, before_ms: +median(times.before).toFixed(2), after_ms: +median(times.after).toFixed(2) }));
  }
} finally {
  gws.before?.stop();
  gws.after?.stop();
  await rm(work, { recursive: true, force: true });
}
