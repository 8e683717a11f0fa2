#!/usr/bin/env node
// zipgate under hostile and crowded clients: `node bench/robustness.mjs [--only=chaos,drain]`.
//
// Starts a real gateway process (`node <gateway>/dist/main.js`, folder store in a temp folder
// it generates; an S3 store behind Swift for `frozen`) on 127.0.0.1, a fresh one per scenario,
// samples its VmRSS every 50 ms, and measures:
//   chaos        seeded random requests on every route over raw sockets, written whole or cut
//                mid-headers / mid-body, destroyed after 0–500 ms: does the process survive,
//                does a normal download still work afterwards, do descriptors leak
//   folders1000  one POST /v2/zipball naming 1,000 folders
//   create500    500 concurrent POSTs of a 200-file folder (the same folder, then distinct ones)
//   download400  400 (then 200) concurrent full GETs of a 20 MB zipball: peak RSS, RSS after
//   frozen       an S3 store that stops answering (a TCP proxy that freezes): time to an error
//                for a GET, a POST, and a download frozen mid-body
//   bodies       a 300 MiB chunked POST body of garbage
//   stall        a download whose client never reads
//   fifo         a folder file replaced by a FIFO
//   drain        SIGTERM during a slow download: exit time and code, bytes the client got,
//                a keep-alive connection's next request
// Prints one line per scenario and writes everything (RSS timelines included) to --out.
// Timings are rough: the clients run in this process, on the same cores as the gateway.
// Every request is bounded in count and time; all traffic stays on 127.0.0.1.
import { execFileSync, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { closeSync, constants, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { createRequire } from "node:module";
import { connect, createServer } from "node:net";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { atExit, freePort, rssMiB, run, sleep, tail } from "./lib/proc.mjs";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const MiB = 1 << 20;
const API_KEY = "robust-key-0123456789abc"; // 24 characters
const SIGNING_SECRET = "robustness-signing-secret-0123456789-abcdef";

// ---------------------------------------------------------------- options
const ALL = ["chaos", "folders1000", "create500", "download400", "frozen", "bodies", "stall", "fifo", "drain"];
const DEFAULTS = {
  gateway: repo,
  only: ALL.join(","),
  out: join(repo, "bench/results", `robustness-${new Date().toISOString().slice(0, 10)}.json`),
  seed: "1",
  tries: "300",
  parallel: "16",
  "chaos-restarts": "0",
  folders: "1000",
  creates: "500",
  "create-files": "200",
  "create-distinct": "1",
  downloads: "400,200",
  "download-files": "200",
  "download-kb": "100",
  "frozen-mib": "64",
  cap: "120",
  "body-mib": "300",
  stall: "30",
  "drain-mb": "100",
  "drain-rate": "1",
};
const HELP = `usage: node bench/robustness.mjs [--flag=value ...]
  --gateway=<dir>       checkout with dist/main.js built (default: this repo)
  --only=<ids>          scenarios, comma-separated (default: all): ${ALL.join(", ")}
  --out=<file>          JSON results (default: bench/results/robustness-<date>.json)
  --seed=N              chaos PRNG seed (1)
  --tries=N             chaos tries (300), --parallel=N at a time (16); --chaos-restarts=N restarts a
                        gateway that died and goes on, N times at most (0: stop at the first death)
  --folders=N           folders1000: folders in the POST (1000)
  --creates=N           create500: concurrent POSTs (500), --create-files=N files per folder (200),
                        --create-distinct=0 skips the variant with one folder per POST
  --downloads=a,b       download400: concurrency levels (400,200); --download-files=N (200) × --download-kb=K (100, KB = 1000 B)
  --frozen-mib=N        frozen: size of the object frozen mid-body (64); --cap=S client-side cap (120)
  --body-mib=N          bodies: chunked body size (300)
  --stall=S             stall: seconds the client does not read (30)
  --drain-mb=N          drain and stall: size of the large object, MiB (100); --drain-rate=MB/s (1)
  --keep                keep the temp folder (data and gateway logs)`;
const argv = process.argv.slice(2);
if (argv.includes("--help")) {
  console.log(HELP);
  process.exit(0);
}
const opts = { ...DEFAULTS, keep: false };
for (const a of argv) {
  const m = /^--([a-z0-9-]+)(?:=(.*))?$/.exec(a);
  if (m && m[1] === "keep" && m[2] === undefined) opts.keep = true;
  else if (m && m[1] in DEFAULTS && m[2] !== undefined) opts[m[1]] = m[2];
  else {
    console.error(`robustness: unknown option ${a} (see --help)`);
    process.exit(2);
  }
}
const num = (name) => {
  const v = Number(opts[name]);
  if (!Number.isFinite(v) || v < 0) {
    console.error(`robustness: --${name} must be a number`);
    process.exit(2);
  }
  return v;
};
const gatewayDir = resolve(opts.gateway);
const only = opts.only.split(",").filter(Boolean);
for (const id of only) {
  if (!ALL.includes(id)) {
    console.error(`robustness: unknown scenario ${id} (known: ${ALL.join(", ")})`);
    process.exit(2);
  }
}
const capMs = num("cap") * 1000;

const say = (msg) => process.stderr.write(`robustness: ${msg}\n`);
const round = (v, d = 1) => (typeof v === "number" && Number.isFinite(v) ? Math.round(v * 10 ** d) / 10 ** d : v);

// ---------------------------------------------------------------- work folder and data
const work = mkdtempSync(join(tmpdir(), "zipgate-robust-"));
const store = join(work, "store");
mkdirSync(join(work, "logs"), { recursive: true });
atExit(() => {
  if (opts.keep) process.stderr.write(`robustness: kept ${work}\n`);
  else rmSync(work, { recursive: true, force: true });
});

const pool = randomBytes(4 * MiB);
/** `size` bytes of the pool from a position derived from `n`: no two files alike. */
const bytesFor = (n, size) => {
  if (size <= pool.length) {
    const at = (n * 7919) % (pool.length - size + 1);
    return pool.subarray(at, at + size);
  }
  return null;
};
function writeFile(key, size, n) {
  const path = join(store, key);
  mkdirSync(dirname(path), { recursive: true });
  const small = bytesFor(n, size);
  if (small) return writeFileSync(path, small);
  const fd = openSync(path, "w");
  try {
    for (let done = 0, i = 0; done < size; i++) {
      const block = Buffer.from(pool.subarray(0, Math.min(MiB, size - done)));
      block.writeUInt32LE(n, 0);
      block.writeUInt32LE(i, 4);
      writeFileSync(fd, block);
      done += block.length;
    }
  } finally {
    closeSync(fd);
  }
}
const pad = (n, w) => String(n).padStart(w, "0");

/** The objects each scenario needs, written once. */
function generate() {
  const t0 = Date.now();
  const want = new Set(only);
  let n = 0;
  if (want.has("chaos")) {
    for (let i = 0; i < 2000; i++) writeFile(`chaos/many/f${pad(i, 4)}.bin`, 4096, n++);
    writeFile("chaos/big.bin", 16 * MiB, n++);
    writeFile("chaos/one.txt", 1000, n++);
    for (let i = 0; i < 8; i++) writeFile(`chaos/multi/m${i}.bin`, MiB, n++);
  }
  if (want.has("folders1000")) for (let i = 0; i < num("folders"); i++) writeFile(`f/${i}/x.txt`, 100, n++);
  if (want.has("create500")) {
    for (let i = 0; i < num("create-files"); i++) writeFile(`big200/f${pad(i, 3)}.bin`, 1024, n++);
    if (num("create-distinct")) {
      for (let d = 0; d < num("creates"); d++) for (let i = 0; i < num("create-files"); i++) writeFile(`c500/${d}/f${pad(i, 3)}.bin`, 1024, n++);
    }
  }
  if (want.has("download400")) for (let i = 0; i < num("download-files"); i++) writeFile(`dl200/f${pad(i, 3)}.bin`, num("download-kb") * 1000, n++);
  if (want.has("stall") || want.has("drain")) writeFile("large/big.bin", num("drain-mb") * MiB, n++);
  if (want.has("fifo")) {
    for (const f of ["a.txt", "b.bin", "c.txt"]) writeFile(`fifo/${f}`, 64 * 1024, n++);
    for (const f of ["a.txt", "b.bin", "c.txt"]) writeFile(`fifo2/${f}`, 64 * 1024, n++);
  }
  execFileSync("sync"); // dirty pages flushed now, not during a scenario
  say(`generated ${n} objects in ${((Date.now() - t0) / 1000).toFixed(1)} s under ${store}`);
}

// ---------------------------------------------------------------- /proc
function fdCount(pid) {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

/** Server-side sockets of `port` in ESTABLISHED state, with their send queues (bytes). */
function established(port) {
  const rows = [];
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let lines = [];
    try {
      lines = readFileSync(file, "utf8").trim().split("\n").slice(1);
    } catch {}
    for (const line of lines) {
      const c = line.trim().split(/\s+/);
      const local = Number.parseInt(c[1].split(":").pop(), 16);
      if (local === port && c[3] === "01")
        rows.push({ remotePort: Number.parseInt(c[2].split(":").pop(), 16), sendQ: Number.parseInt(c[4].split(":")[0], 16) });
    }
  }
  return rows;
}

/** Share of CPU time stolen by the VM's host since `from` (a previous call's `now`). */
function cpuTimes() {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  return { total: f.reduce((a, b) => a + b, 0), steal: f[7] ?? 0 };
}

/** VmRSS every `everyMs`: peak, timeline (ms since start, MiB), peak within a window. */
function rssSampler(pid, everyMs = 50) {
  const t0 = performance.now();
  const timeline = [];
  const take = () => {
    try {
      timeline.push([Math.round(performance.now() - t0), round(rssMiB(pid))]);
    } catch {}
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    now: () => performance.now() - t0,
    peakBetween(from = 0, to = Number.POSITIVE_INFINITY) {
      let peak = null;
      for (const [t, v] of timeline) if (t >= from && t <= to && (peak === null || v > peak)) peak = v;
      return peak;
    },
    stop() {
      clearInterval(timer);
      take();
      return { everyMs, peakMiB: this.peakBetween(), timeline };
    },
  };
}

// ---------------------------------------------------------------- the gateway
const gateways = new Set();
atExit(() => {
  for (const child of gateways) {
    try {
      process.kill(child.pid, "SIGKILL");
    } catch {}
  }
});

let started = 0;
async function startGateway(label, env = {}) {
  const port = await freePort();
  const name = `${String(++started).padStart(2, "0")}-${label}`;
  const outFile = join(work, "logs", `${name}.stdout`);
  const errFile = join(work, "logs", `${name}.stderr`);
  const child = spawn(process.execPath, [join(gatewayDir, "dist/main.js")], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: "127.0.0.1",
      ZIPGATE_STORAGE: store,
      ZIPGATE_API_KEYS: API_KEY,
      ZIPGATE_SIGNING_SECRET: SIGNING_SECRET,
      ...env,
    },
    stdio: ["ignore", openSync(outFile, "a"), openSync(errFile, "a")],
  });
  gateways.add(child);
  const gw = {
    child,
    pid: child.pid,
    port,
    base: `http://127.0.0.1:${port}`,
    outFile,
    errFile,
    exit: null,
    onExit: [],
  };
  gw.exited = new Promise((resolveExit) => {
    child.once("exit", (code, signal) => {
      gw.exit = { code, signal, at: performance.now() };
      gateways.delete(child);
      for (const fn of gw.onExit) fn(gw.exit);
      resolveExit(gw.exit);
    });
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (gw.exit) throw new Error(`gateway exited at start (${gw.exit.code ?? gw.exit.signal}):\n${tail(errFile, 30)}`);
    const r = await request(`${gw.base}/healthz`, { timeoutMs: 2000 });
    if (r.status === 200) break;
    if (Date.now() > deadline) throw new Error(`gateway did not answer /healthz within 30 s:\n${tail(errFile, 30)}`);
    await sleep(50);
  }
  gw.rss = rssSampler(gw.pid);
  return gw;
}

/** SIGTERM, SIGKILL after 3 s; the RSS record of its life. */
async function stopGateway(gw) {
  if (!gw) return null;
  const rss = gw.rss?.stop() ?? null;
  if (!gw.exit) {
    gw.child.kill("SIGTERM");
    const timer = setTimeout(() => gw.child.kill("SIGKILL"), 3000);
    await gw.exited;
    clearTimeout(timer);
  }
  return rss;
}

// ---------------------------------------------------------------- HTTP clients
/**
 * One request with node:http on a fresh connection. Never rejects: resolves with status,
 * headers, bytes of body read, whether the body ended (`complete`), an error code, or
 * `timedOut` when `timeoutMs` (or `signal`) cut it. `onData(bytes, res)` sees each chunk.
 */
function request(url, { method = "GET", headers = {}, body, timeoutMs = 60_000, keepBody = false, signal, onData, agent = false } = {}) {
  return new Promise((done) => {
    const t0 = performance.now();
    let status;
    let resHeaders;
    let headersMs;
    let bytes = 0;
    const chunks = [];
    let settled = false;
    const finish = (extra) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      const out = { status, headers: resHeaders, headersMs: round(headersMs), ms: round(performance.now() - t0), bytes, ...extra };
      if (keepBody) {
        out.body = Buffer.concat(chunks).toString("utf8");
        try {
          out.json = JSON.parse(out.body);
        } catch {}
      }
      done(out);
    };
    const req = httpRequest(url, { method, headers, agent }, (res) => {
      status = res.statusCode;
      resHeaders = res.headers;
      headersMs = performance.now() - t0;
      res.on("data", (c) => {
        bytes += c.length;
        if (keepBody) chunks.push(c);
        onData?.(bytes, res);
      });
      res.on("end", () => finish({ complete: true }));
      res.on("error", (err) => finish({ complete: false, error: err.code ?? err.message }));
      res.on("close", () => finish({ complete: false, error: "closed before the end" }));
    });
    req.on("error", (err) => finish({ complete: false, error: err.code ?? err.message }));
    const onAbort = () => {
      finish({ complete: false, timedOut: true });
      req.destroy();
    };
    const timer = setTimeout(onAbort, timeoutMs);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (typeof body === "function") body(req);
    else req.end(body);
  });
}

const authJson = { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" };
function post(gw, path, json, opts = {}) {
  return request(`${gw.base}${path}`, { method: "POST", headers: authJson, body: JSON.stringify(json), keepBody: true, ...opts });
}

/** Creates a zipball; its URL and length. Throws unless 201. */
async function zipball(gw, objects, extra = {}) {
  const r = await post(gw, "/v2/zipball", { objects, ...extra });
  if (r.status !== 201) throw new Error(`POST /v2/zipball answered ${r.status ?? r.error}: ${String(r.body).slice(0, 300)}`);
  const url = r.json.data.urls.url;
  const head = await request(url, { method: "HEAD", timeoutMs: 30_000 });
  return { url, path: new URL(url).pathname + new URL(url).search, length: Number(head.headers?.["content-length"]), createMs: r.ms };
}

/** A full GET: 200, and as many bytes as Content-Length. */
async function fullGet(url, timeoutMs = 60_000) {
  const r = await request(url, { timeoutMs });
  const expected = Number(r.headers?.["content-length"]);
  return {
    status: r.status ?? null,
    bytes: r.bytes,
    contentLength: expected,
    ok: r.status === 200 && r.complete === true && r.bytes === expected,
    ms: r.ms,
    error: r.error,
  };
}

const histogram = (values) => {
  const h = {};
  for (const v of values) h[v] = (h[v] ?? 0) + 1;
  return h;
};
const median = (v) => {
  const s = v.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length === 0 ? null : s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmtHist = (h) =>
  Object.entries(h)
    .map(([k, v]) => `${k}×${v}`)
    .join(" ");

/** Runs `count` jobs, `parallel` at a time, until `stop()` says so. */
async function pooled(count, parallel, job, stop = () => false) {
  let next = 0;
  const worker = async () => {
    while (next < count && !stop()) await job(next++);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker));
}

// ---------------------------------------------------------------- 1. chaos
/** Mulberry32: a small seeded PRNG, [0, 1). */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Writes `payload` on a raw socket (after `connect`), reads the answer or not, destroys the
 * socket `delayMs` later. Resolves with the status line seen, bytes read, whether the server
 * ended first.
 */
function rawTry(port, payload, { delayMs, reads }) {
  return new Promise((done) => {
    const sock = connect({ host: "127.0.0.1", port });
    let first = "";
    let bytes = 0;
    let serverEnded = false;
    let error;
    let timer;
    sock.on("connect", () => {
      sock.write(payload);
      timer = setTimeout(() => sock.destroy(), delayMs);
    });
    const onData = (d) => {
      if (first.length < 32) first += d.toString("latin1", 0, 32);
      bytes += d.length;
      if (!reads) {
        sock.off("data", onData);
        sock.pause(); // the rest stays in the kernel's buffers
      }
    };
    sock.on("data", onData);
    sock.on("end", () => {
      serverEnded = true;
    });
    sock.on("error", (err) => {
      error = err.code ?? err.message;
    });
    sock.on("close", () => {
      clearTimeout(timer);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(first);
      done({ status: m ? Number(m[1]) : null, bytes, serverEnded, error });
    });
  });
}

/** The gateway's last JSON log lines, and the chaos try the last of them names. */
function lastLogged(file, count = 1) {
  const lines = tail(file, 50)
    .split("\n")
    .map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return null;
      }
    })
    .filter(Boolean);
  const named = lines.filter((l) => /^chaos-\d+$/.test(l.request_id ?? ""));
  const last = named.at(-1);
  return { try: last ? Number(last.request_id.slice(6)) : null, lines: lines.slice(-count) };
}
const describeTry = (t) =>
  t ? `${t.route}, ${t.auth ? "with" : "no"} auth, ${t.cut}, closed after ${t.delayMs} ms, ${t.reads ? "reading" : "not reading"}` : "";
const firstErrorLine = (file) => /^\w*Error.*$/m.exec(tail(file, 30))?.[0] ?? "no error on stderr";

async function chaos() {
  let gw = await startGateway("chaos");
  const real = await zipball(gw, [{ folder: "/chaos/many" }, { path: "/chaos/big.bin" }]);
  const warm = await fullGet(`${gw.base}${real.path}`);
  if (!warm.ok) throw new Error(`the real zipball's first GET failed: ${JSON.stringify(warm)}`);
  const reg = await post(gw, "/v2/objects", { path: "/chaos/one.txt" });
  const objectId = reg.json?.data?.id ?? randomUUID();
  let lastBox = null;
  const newBox = async () => {
    const r = await post(gw, "/2.0/zip_downloads", { items: [{ type: "folder", id: "/chaos/multi" }], download_file_name: "chaos" });
    if (r.status !== 202) throw new Error(`POST /2.0/zip_downloads answered ${r.status ?? r.error}`);
    return { content: new URL(r.json.download_url).pathname, status: new URL(r.json.status_url).pathname };
  };
  // Each route: what to send; some first make what they need with normal requests.
  const routes = {
    "POST /v2/zipball (file)": () => ({ method: "POST", path: "/v2/zipball", json: { objects: [{ path: "/chaos/one.txt" }] } }),
    "POST /v2/zipball (folder)": () => ({ method: "POST", path: "/v2/zipball", json: { objects: [{ folder: "/chaos/many" }] } }),
    "GET unknown zipball": () => ({ method: "GET", path: `/${randomUUID()}.zip?zipball` }),
    "GET zipball": () => ({ method: "GET", path: real.path }),
    "HEAD zipball": () => ({ method: "HEAD", path: real.path }),
    "GET fresh zipball, Range: bytes=-100": async () => {
      const z = await zipball(gw, [{ folder: "/chaos/multi" }], { name: randomUUID() });
      return { method: "GET", path: z.path, headers: { Range: "bytes=-100" } };
    },
    "POST /2.0/zip_downloads": () => ({
      method: "POST",
      path: "/2.0/zip_downloads",
      json: {
        items: [
          { type: "folder", id: "/chaos/multi" },
          { type: "file", id: "/chaos/one.txt" },
        ],
        download_file_name: "chaos",
      },
    }),
    "GET box download_url": async () => {
      lastBox = await newBox();
      return { method: "GET", path: lastBox.content };
    },
    "GET box status_url": async () => ({ method: "GET", path: (lastBox ?? (await newBox())).status }),
    "POST /api/v1/zips": () => ({
      method: "POST",
      path: "/api/v1/zips",
      json: { urls: [{ url: "http://127.0.0.1:9/a.pdf", filename: "a.pdf" }], bucket_name: "nope", key: "a.zip", service: "s3" },
    }),
    "GET /api/v1/zips": () => ({ method: "GET", path: "/api/v1/zips?limit=5" }),
    "POST /v2/objects": () => ({ method: "POST", path: "/v2/objects", json: { path: "/chaos/one.txt" } }),
    "GET /v2/objects/<id>": () => ({ method: "GET", path: `/v2/objects/${objectId}` }),
    "GET /nope": () => ({ method: "GET", path: "/nope" }),
  };
  const names = Object.keys(routes);

  // Every random choice is drawn up front, so a seed gives the same tries in the same order.
  const rand = prng(Number(opts.seed));
  const tries = Array.from({ length: num("tries") }, (_, i) => {
    const route = names[Math.floor(rand() * names.length)];
    return { i, route, auth: rand() < 2 / 3, cutDraw: rand(), cutAt: rand(), delayMs: Math.floor(rand() * 501), reads: rand() < 0.5 };
  });

  const fdsBefore = fdCount(gw.pid);
  const restarts = num("chaos-restarts");
  const deaths = [];
  let completed = 0; // tries completed before the first death
  let stopping = false; // the exit at the end is ours, not a death
  const watch = (g) =>
    g.onExit.push((exit) => {
      if (stopping) return;
      const last = lastLogged(g.outFile, 4);
      deaths.push({
        exit: { code: exit.code, signal: exit.signal },
        triesCompletedBefore: completed,
        // The try on the gateway's last log line before it died (its request id is chaos-<i>).
        diedAtTry: last.try,
        diedAtTryIs: describeTry(tries[last.try]),
        error: firstErrorLine(g.errFile),
        lastLogLines: last.lines,
        stderrTail: tail(g.errFile, 30),
      });
    });
  watch(gw);
  let restarting = null;
  const restart = () => {
    restarting ??= (async () => {
      gw = await startGateway("chaos-restarted");
      watch(gw);
      restarting = null;
    })();
    return restarting;
  };
  const log = [];
  const t0 = performance.now();
  await pooled(
    tries.length,
    num("parallel"),
    async (i) => {
      const t = tries[i];
      if (gw.exit) await restart();
      try {
        const spec = await routes[t.route]();
        const body = spec.json ? Buffer.from(JSON.stringify(spec.json)) : null;
        // The request id names the try in the gateway's log.
        let head = `${spec.method} ${spec.path} HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nX-Request-Id: chaos-${t.i}\r\n`;
        if (t.auth) head += `Authorization: Bearer ${API_KEY}\r\n`;
        for (const [k, v] of Object.entries(spec.headers ?? {})) head += `${k}: ${v}\r\n`;
        if (body) head += `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n`;
        const headBuf = Buffer.from(`${head}\r\n`);
        const cuts = body ? ["whole", "mid-headers", "mid-body"] : ["whole", "mid-headers"];
        t.cut = cuts[Math.floor(t.cutDraw * cuts.length)];
        const payload =
          t.cut === "mid-headers"
            ? headBuf.subarray(0, 1 + Math.floor(t.cutAt * (headBuf.length - 3)))
            : t.cut === "mid-body"
              ? Buffer.concat([headBuf, body.subarray(0, Math.floor(t.cutAt * body.length))])
              : Buffer.concat([headBuf, body ?? Buffer.alloc(0)]);
        const r = await rawTry(gw.port, payload, t);
        Object.assign(t, r);
      } catch (err) {
        t.prepError = err.message.slice(0, 200);
      }
      if (deaths.length === 0) completed++;
      t.alive = !gw.exit;
      log.push({
        i: t.i,
        route: t.route,
        auth: t.auth,
        cut: t.cut,
        delayMs: t.delayMs,
        reads: t.reads,
        status: t.status,
        bytes: t.bytes,
        alive: t.alive,
        prepError: t.prepError,
      });
    },
    () => gw.exit !== null && deaths.length > restarts,
  );
  const wallS = (performance.now() - t0) / 1000;
  let after = null;
  let fdsAfter = null;
  if (!gw.exit) {
    await sleep(2000);
    fdsAfter = fdCount(gw.pid);
    after = await fullGet(`${gw.base}${real.path}`);
    after.expected = real.length;
    after.ok = after.ok && after.bytes === real.length;
  }
  stopping = true;
  const rss = await stopGateway(gw);
  log.sort((a, b) => a.i - b.i);
  const byRoute = {};
  for (const t of log) {
    const key = t.route;
    byRoute[key] ??= {};
    const s = t.status ?? (t.prepError ? "prep-failed" : "none");
    byRoute[key][s] = (byRoute[key][s] ?? 0) + 1;
  }
  const death = deaths[0];
  const result = {
    seed: Number(opts.seed),
    triesPlanned: tries.length,
    triesRun: log.length,
    triesCompletedBeforeFirstDeath: completed,
    survived: deaths.length === 0,
    restartsAllowed: restarts,
    deaths,
    wallS: round(wallS),
    fdsBefore,
    fdsAfter2s: fdsAfter,
    afterGet: after,
    statusesByRoute: byRoute,
    rss,
    tries: log,
  };
  const afterText = after
    ? `GET after: ${after.status} ${after.ok ? "right length" : "WRONG"} (${after.bytes}/${real.length} B); fds ${fdsBefore} → ${fdsAfter} (2 s after)`
    : `fds before ${fdsBefore}`;
  const line =
    deaths.length > 0
      ? `DIED ${restarts > 0 ? `${deaths.length}× in ${log.length} tries, first ` : ""}after ${completed} of ${tries.length} tries (last logged: try #${death.diedAtTry} ${death.diedAtTryIs}; exit ${death.exit.code ?? death.exit.signal}; ${death.error}); ${afterText}`
      : `survived ${completed} tries in ${wallS.toFixed(1)} s; ${afterText}`;
  return { result, line };
}

// ---------------------------------------------------------------- 2. folders1000
async function folders1000() {
  const gw = await startGateway("folders1000");
  const n = num("folders");
  const objects = Array.from({ length: n }, (_, i) => ({ folder: `/f/${i}` }));
  const r = await post(gw, "/v2/zipball", { objects }, { timeoutMs: capMs });
  let length = null;
  if (r.status === 201) {
    const head = await request(r.json.data.urls.url, { method: "HEAD", timeoutMs: 30_000 });
    length = Number(head.headers?.["content-length"]);
  }
  const rss = await stopGateway(gw);
  const result = {
    folders: n,
    status: r.status ?? null,
    error: r.error ?? (r.status === 201 ? undefined : r.json?.error),
    timedOut: r.timedOut ?? false,
    ms: r.ms,
    archiveBytes: length,
    rssPeakMiB: rss.peakMiB,
    rss,
  };
  return { result, line: `POST of ${n} folders: ${r.status ?? r.error ?? "no answer"} in ${r.ms} ms; peak RSS ${rss.peakMiB} MiB` };
}

// ---------------------------------------------------------------- 3. create500
async function createBurst(label, folderOf) {
  const gw = await startGateway(`create500-${label}`);
  const n = num("creates");
  const rssBefore = round(rssMiB(gw.pid));
  const from = gw.rss.now();
  const t0 = performance.now();
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      request(`${gw.base}/v2/zipball`, { method: "POST", headers: authJson, body: JSON.stringify({ objects: [{ folder: folderOf(i) }] }), timeoutMs: capMs }),
    ),
  );
  const wallMs = performance.now() - t0;
  const peak = gw.rss.peakBetween(from);
  const rss = await stopGateway(gw);
  const times = results.map((r) => r.ms);
  return {
    variant: label,
    requests: n,
    filesPerFolder: num("create-files"),
    wallMs: round(wallMs, 0),
    medianMs: round(median(times), 0),
    maxMs: round(Math.max(...times), 0),
    statuses: histogram(results.map((r) => r.status ?? r.error ?? (r.timedOut ? "timeout" : "none"))),
    rssBeforeMiB: rssBefore,
    rssPeakMiB: peak,
    rss,
  };
}

async function create500() {
  const files = num("create-files");
  const variants = [await createBurst("same-folder", () => "/big200")];
  if (num("create-distinct")) variants.push(await createBurst("distinct-folders", (i) => `/c500/${i}`));
  const line = variants
    .map(
      (v) =>
        `${v.variant}: ${v.requests}×${files} files ${(v.wallMs / 1000).toFixed(1)} s, median ${v.medianMs} / max ${v.maxMs} ms, peak RSS ${v.rssPeakMiB} MiB, ${fmtHist(v.statuses)}`,
    )
    .join("; ");
  return { result: { variants }, line };
}

// ---------------------------------------------------------------- 4. download400
async function downloadBurst(n) {
  const gw = await startGateway(`download${n}`);
  const z = await zipball(gw, [{ folder: "/dl200" }]);
  const rssBefore = round(rssMiB(gw.pid));
  const from = gw.rss.now();
  const t0 = performance.now();
  let lastEnd = 0;
  const results = await Promise.all(
    Array.from({ length: n }, () =>
      request(z.url, { timeoutMs: capMs }).then((r) => {
        lastEnd = Math.max(lastEnd, performance.now());
        return r;
      }),
    ),
  );
  const wallMs = lastEnd - t0;
  const peak = gw.rss.peakBetween(from);
  const after = [];
  for (const s of [0, 5, 10]) {
    await sleep(Math.max(0, lastEnd + s * 1000 - performance.now()));
    after.push(round(rssMiB(gw.pid)));
  }
  const rss = await stopGateway(gw);
  const ok = results.filter((r) => r.status === 200 && r.complete && r.bytes === z.length).length;
  const bytes = results.reduce((a, r) => a + r.bytes, 0);
  return {
    concurrency: n,
    archiveBytes: z.length,
    wallMs: round(wallMs, 0),
    mbPerS: round(bytes / 1e6 / (wallMs / 1000), 0),
    fullAndRightLength: ok,
    statuses: histogram(results.map((r) => (r.complete ? r.status : `${r.status ?? "-"}/${r.timedOut ? "timeout" : r.error}`))),
    medianMs: round(median(results.map((r) => r.ms)), 0),
    maxMs: round(Math.max(...results.map((r) => r.ms)), 0),
    rssBeforeMiB: rssBefore,
    rssPeakMiB: peak,
    rssAfterMiB: { s0: after[0], s5: after[1], s10: after[2] },
    rss,
  };
}

async function download400() {
  const levels = opts.downloads
    .split(",")
    .map(Number)
    .filter((n) => n > 0);
  const runs = [];
  for (const n of levels) runs.push(await downloadBurst(n));
  const line = runs
    .map(
      (r) =>
        `${r.concurrency}×${(r.archiveBytes / 1e6).toFixed(0)} MB: ${(r.wallMs / 1000).toFixed(1)} s (${r.mbPerS} MB/s), ${r.fullAndRightLength}/${r.concurrency} complete, peak RSS ${r.rssPeakMiB} MiB, after 0/5/10 s ${r.rssAfterMiB.s0}/${r.rssAfterMiB.s5}/${r.rssAfterMiB.s10} MiB`,
    )
    .join("; ");
  return { result: { runs }, line };
}

// ---------------------------------------------------------------- 5. frozen
/** A TCP proxy to `target` that can stop forwarding (both ways, sockets kept open). */
async function freezableProxy(targetPort) {
  const conns = new Set();
  let frozen = false;
  const held = [];
  const pump = (from, to) => {
    from.on("data", (chunk) => {
      if (frozen) {
        held.push([to, chunk]);
        from.pause();
      } else if (!to.write(chunk)) {
        from.pause();
        to.once("drain", () => frozen || from.resume());
      }
    });
    from.on("end", () => (frozen ? held.push([to, null]) : to.end()));
  };
  const server = createServer((client) => {
    const upstream = connect({ host: "127.0.0.1", port: targetPort });
    const pair = [client, upstream];
    conns.add(pair);
    const close = () => {
      conns.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const s of pair) s.on("error", close).on("close", close);
    pump(client, upstream);
    pump(upstream, client);
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    port: server.address().port,
    get connections() {
      return conns.size;
    },
    freeze() {
      frozen = true;
      for (const pair of conns) for (const s of pair) s.pause();
    },
    unfreeze() {
      frozen = false;
      for (const [to, chunk] of held.splice(0)) {
        if (to.destroyed) continue;
        if (chunk === null) to.end();
        else to.write(chunk);
      }
      for (const pair of conns) for (const s of pair) s.resume();
    },
    close() {
      for (const pair of conns) for (const s of pair) s.destroy();
      server.close();
    },
  };
}

async function frozen() {
  const script = join(repo, "scripts/swift-s3.sh");
  const state = join(work, "swift");
  let stopped = false;
  const stopSwift = () => {
    if (stopped) return;
    stopped = true;
    try {
      execFileSync("bash", [script, "stop", state], { stdio: "ignore" });
    } catch {}
  };
  atExit(stopSwift);
  say("frozen: starting Swift s3api (scripts/swift-s3.sh; installs the Debian swift packages when missing)");
  const info = JSON.parse((await run("bash", [script, "start", state], { timeoutMs: 900_000 })).trim().split("\n").pop());
  const req = createRequire(join(gatewayDir, "package.json"));
  const { S3Client, CreateBucketCommand, PutObjectCommand } = await import(pathToFileURL(req.resolve("@aws-sdk/client-s3")).href);
  const bucket = "zipgate-robust";
  const prefix = "rb/";
  const client = new S3Client({
    endpoint: info.endpoint,
    region: info.region,
    credentials: info.admin,
    forcePathStyle: true,
    requestChecksumCalculation: "WHEN_REQUIRED",
  });
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  for (const f of ["a.txt", "b.txt", "c.txt"]) await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}z/${f}`, Body: randomBytes(10_000) }));
  const bigBytes = num("frozen-mib") * MiB;
  const big = Buffer.allocUnsafe(bigBytes);
  for (let at = 0; at < bigBytes; at += pool.length) pool.copy(big, at, 0, Math.min(pool.length, bigBytes - at));
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}big/large.bin`, Body: big }));
  client.destroy();

  const proxy = await freezableProxy(Number(new URL(info.endpoint).port));
  let gw;
  let result;
  let died = false;
  try {
    const gwEnv = {
      ZIPGATE_STORAGE: `s3://${bucket}/${prefix}`,
      AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${proxy.port}`,
      AWS_REGION: info.region,
      ZIPGATE_S3_FORCE_PATH_STYLE: "true",
      AWS_ACCESS_KEY_ID: info.admin.accessKeyId,
      AWS_SECRET_ACCESS_KEY: info.admin.secretAccessKey,
    };
    gw = await startGateway("frozen-s3", gwEnv);
    const small = await zipball(gw, [{ folder: "/z" }]);
    const large = await zipball(gw, [{ path: "/big/large.bin" }]);

    // (c) a download frozen after its first MiB; (a) and (b) start once frozen, all capped.
    let freezeAt = null;
    let froze;
    const frozenNow = new Promise((ok) => {
      froze = ok;
    });
    const capC = new AbortController();
    const cDone = request(large.url, {
      timeoutMs: capMs + 120_000,
      signal: capC.signal,
      onData: (bytes) => {
        if (freezeAt === null && bytes >= MiB) {
          proxy.freeze();
          freezeAt = performance.now();
          setTimeout(() => capC.abort(), capMs);
          froze();
        }
      },
    });
    const first = await Promise.race([frozenNow.then(() => null), cDone]);
    if (first) throw new Error(`the large download ended before its first MiB: ${JSON.stringify(first)}`);
    // (a) and (b) start 2 s after the freeze, so that (c)'s cap comes before theirs.
    await sleep(2000);
    const [a, b, c] = await Promise.all([
      request(small.url, { timeoutMs: capMs }),
      post(gw, "/v2/zipball", { objects: [{ path: "/z/a.txt" }] }, { timeoutMs: capMs }),
      cDone.then((r) => ({ ...r, msAfterFreeze: round(performance.now() - freezeAt, 0) })),
    ]);
    const describe = (r, ms) =>
      r.timedOut
        ? `no answer within ${capMs / 1000} s`
        : r.status
          ? `${r.status}${r.complete ? "" : ` (${r.error})`} after ${ms} ms`
          : `${r.error} after ${ms} ms`;
    const proxyConns = proxy.connections;
    proxy.unfreeze();
    await sleep(500);
    const healthz = await request(`${gw.base}/healthz`, { timeoutMs: 30_000 });
    const again = await fullGet(small.url, 30_000);
    died = gw.exit && { msAfterFreeze: round(gw.exit.at - freezeAt, 0), code: gw.exit.code, signal: gw.exit.signal, stderrTail: tail(gw.errFile, 30) };
    const rss = await stopGateway(gw);
    let afterRestart = null;
    if (died) {
      // The store itself is fine: a new process serves the same zipball.
      gw = await startGateway("frozen-s3-restart", gwEnv);
      afterRestart = await fullGet(`${gw.base}${small.path}`, 30_000);
      await stopGateway(gw);
    }
    const pick = (r) => ({
      status: r.status ?? null,
      ms: r.ms,
      headersMs: r.headersMs,
      bytes: r.bytes,
      complete: r.complete,
      error: r.error,
      timedOut: r.timedOut ?? false,
    });
    result = {
      capS: capMs / 1000,
      getZipball: { ...pick(a), outcome: describe(a, a.ms) },
      postZipball: { ...pick(b), outcome: describe(b, b.ms), error: b.json?.error ?? b.error },
      midBody: {
        ...pick(c),
        objectBytes: bigBytes,
        msAfterFreeze: c.msAfterFreeze,
        outcome: c.timedOut ? `no abort within ${capMs / 1000} s` : `${c.error ?? "ended"} ${c.msAfterFreeze} ms after the freeze`,
      },
      proxyConnectionsWhileFrozen: proxyConns,
      gatewayDied: died || false,
      afterUnfreeze: { healthz: healthz.status ?? healthz.error, getZipball: again },
      afterRestart,
      rss,
    };
  } finally {
    if (gw && !gw.exit) await stopGateway(gw);
    proxy.close();
    say("frozen: stopping Swift");
    stopSwift();
  }
  const line = `frozen S3: GET ${result.getZipball.outcome}; POST ${result.postZipball.outcome}; mid-body: ${result.midBody.outcome} (client got ${(result.midBody.bytes / MiB).toFixed(1)} MiB); after unfreeze: healthz ${result.afterUnfreeze.healthz}, GET ${result.afterUnfreeze.getZipball.status} ${result.afterUnfreeze.getZipball.ok ? "ok" : "FAILED"}${died ? `; the gateway DIED ${died.msAfterFreeze} ms after the freeze (exit ${died.code ?? died.signal}); a new gateway on the same store: GET ${result.afterRestart?.status} ${result.afterRestart?.ok ? "ok" : "FAILED"}` : ""}`;
  return { result, line };
}

// ---------------------------------------------------------------- 6. bodies
async function bodies() {
  const gw = await startGateway("bodies");
  const total = num("body-mib") * MiB;
  const rssBefore = round(rssMiB(gw.pid));
  const from = gw.rss.now();
  let sent = 0;
  let writeError;
  const garbage = randomBytes(MiB);
  const r = await request(`${gw.base}/v2/zipball`, {
    method: "POST",
    headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" }, // no Content-Length: chunked
    keepBody: true,
    timeoutMs: capMs,
    body: (req) => {
      req.on("error", (err) => {
        writeError = err.code ?? err.message;
      });
      const more = () => {
        while (sent < total && !req.destroyed) {
          const chunk = garbage.subarray(0, Math.min(MiB, total - sent));
          sent += chunk.length;
          if (!req.write(chunk)) {
            req.once("drain", more);
            return;
          }
        }
        if (!req.destroyed) req.end();
      };
      more();
    },
  });
  const peak = gw.rss.peakBetween(from);
  await sleep(2000);
  const rssAfter = gw.exit ? null : round(rssMiB(gw.pid));
  const alive = !gw.exit;
  const stderr = alive ? undefined : tail(gw.errFile, 30);
  const rss = await stopGateway(gw);
  const result = {
    bodyBytes: total,
    sentBytes: sent,
    status: r.status ?? null,
    answer: r.json?.error?.code ?? r.error ?? r.body?.slice(0, 200),
    ms: r.ms,
    writeError,
    timedOut: r.timedOut ?? false,
    rssBeforeMiB: rssBefore,
    rssPeakMiB: peak,
    rssAfter2sMiB: rssAfter,
    alive,
    stderr,
    rss,
  };
  const line = `${num("body-mib")} MiB chunked POST: ${r.status ?? r.error} ${result.answer ?? ""} after ${(r.ms / 1000).toFixed(1)} s (${(sent / MiB).toFixed(0)} MiB sent); RSS ${rssBefore} → peak ${peak} MiB${alive ? "" : "; the gateway DIED"}`;
  return { result, line };
}

// ---------------------------------------------------------------- 7. stall
async function stall() {
  const gw = await startGateway("stall");
  const z = await zipball(gw, [{ path: "/large/big.bin" }]);
  const fds0 = fdCount(gw.pid);
  const sock = connect({ host: "127.0.0.1", port: gw.port });
  let closed = null;
  const t0 = performance.now();
  sock.on("close", () => {
    closed = performance.now() - t0;
  });
  sock.on("error", () => {});
  await new Promise((ok) => sock.once("connect", ok));
  sock.write(`GET ${z.path} HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\n\r\n`); // and never read
  const probe = () => {
    const conn = established(gw.port).find((c) => c.remotePort === sock.localPort);
    return { fds: fdCount(gw.pid), serverSocketEstablished: Boolean(conn), serverSendQ: conn?.sendQ ?? null, rssMiB: round(rssMiB(gw.pid)) };
  };
  await sleep(1000);
  const at1s = probe();
  await sleep(num("stall") * 1000 - 1000);
  const atEnd = { ...probe(), clientSocketOpen: closed === null, clientBuffered: sock.readableLength };
  sock.destroy();
  await sleep(2000);
  const afterClose = { fds: fdCount(gw.pid), established: established(gw.port).length };
  const rss = await stopGateway(gw);
  const result = { archiveBytes: z.length, stallS: num("stall"), fdsBefore: fds0, at1s, atEnd, after2sClientGone: afterClose, rss };
  const line = `client not reading for ${num("stall")} s: server socket ${atEnd.serverSocketEstablished ? "still ESTABLISHED" : "gone"} (send queue ${atEnd.serverSendQ} B), fds ${fds0} → ${atEnd.fds}, 2 s after the client left ${afterClose.fds}`;
  return { result, line };
}

// ---------------------------------------------------------------- 8. fifo
async function fifo() {
  const gw = await startGateway("fifo");
  const z = await zipball(gw, [{ folder: "/fifo" }]);
  const other = await zipball(gw, [{ folder: "/fifo2" }]);
  const fifoPath = join(store, "fifo/b.bin");
  rmSync(fifoPath);
  execFileSync("mkfifo", [fifoPath]);
  const pick = (r) => ({
    status: r.status ?? null,
    headersMs: r.headersMs,
    ms: r.ms,
    bytes: r.bytes,
    complete: r.complete,
    error: r.error,
    timedOut: r.timedOut ?? false,
  });
  const first = pick(await request(z.url, { timeoutMs: 10_000 }));
  first.expectedBytes = z.length;
  const second = pick(await request(other.url, { timeoutMs: 10_000 }));
  second.expectedBytes = other.length;
  const third = pick(await request(other.url, { timeoutMs: 10_000 }));
  const healthz = await request(`${gw.base}/healthz`, { timeoutMs: 10_000 });
  // Unblock whatever waits in open() on the FIFO (a writer appears and goes), so it can stop.
  try {
    closeSync(openSync(fifoPath, constants.O_WRONLY | constants.O_NONBLOCK));
  } catch {}
  const rss = await stopGateway(gw);
  const result = { fifoGet: first, unrelatedGet: second, unrelatedGetAgain: third, healthz: healthz.status ?? healthz.error, rss };
  const show = (r) =>
    r.timedOut
      ? `no end within 10 s (${r.status ? `headers ${r.status} at ${r.headersMs} ms, ` : "no headers, "}${r.bytes} B)`
      : `${r.status} ${r.complete ? "complete" : r.error} ${r.bytes} B in ${r.ms} ms`;
  return { result, line: `GET with a FIFO inside: ${show(first)}; unrelated GET: ${show(second)}; again: ${show(third)}; healthz ${result.healthz}` };
}

// ---------------------------------------------------------------- 9. drain
async function drain() {
  const gw = await startGateway("drain");
  const z = await zipball(gw, [{ path: "/large/big.bin" }]);
  const rate = num("drain-rate") * 1e6; // bytes per second
  // A keep-alive connection that has had one answer, then waits.
  const ka = connect({ host: "127.0.0.1", port: gw.port });
  let kaText = "";
  let kaClosedAt = null;
  ka.on("data", (d) => {
    kaText += d.toString("latin1");
  });
  ka.on("close", () => {
    kaClosedAt = performance.now();
  });
  ka.on("error", () => {});
  await new Promise((ok) => ka.once("connect", ok));
  const kaReq = `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\n\r\n`;
  ka.write(kaReq);

  const t0 = performance.now();
  const slow = request(z.url, {
    timeoutMs: 60_000,
    onData: (bytes, res) => {
      const ahead = bytes / rate - (performance.now() - t0) / 1000;
      if (ahead > 0.01) {
        res.pause();
        setTimeout(() => res.resume(), ahead * 1000);
      }
    },
  });
  await sleep(1000);
  const firstAnswered = /^HTTP\/1\.1 200/.test(kaText);
  const termAt = performance.now();
  gw.child.kill("SIGTERM");
  await sleep(500);
  const kaBefore = kaText.length;
  const kaOpenAtSend = kaClosedAt === null;
  if (kaOpenAtSend) ka.write(kaReq);
  const cap = setTimeout(() => gw.child.kill("SIGKILL"), 30_000);
  const exit = await gw.exited;
  clearTimeout(cap);
  const download = await slow;
  await sleep(200);
  const second = kaText.slice(kaBefore);
  ka.destroy();
  const rss = gw.rss.stop();
  const result = {
    archiveBytes: z.length,
    clientRateMBps: num("drain-rate"),
    exitMsAfterSigterm: round(exit.at - termAt, 0),
    exitCode: exit.code,
    exitSignal: exit.signal,
    killedByUsAfter30s: exit.signal === "SIGKILL",
    download: { status: download.status, bytes: download.bytes, complete: download.complete, error: download.error, ms: download.ms },
    keepAlive: {
      firstAnswered,
      openWhenSecondSent: kaOpenAtSend,
      secondAnswered: /^HTTP\/1\.1 \d{3}/.test(second) ? second.slice(0, 12) : false,
      closedMsAfterSigterm: kaClosedAt === null ? null : round(kaClosedAt - termAt, 0),
    },
    stderrTail: tail(gw.errFile, 10),
    rss,
  };
  const k = result.keepAlive;
  const line = `SIGTERM during a ${num("drain-rate")} MB/s download: exit ${exit.code ?? exit.signal} after ${(result.exitMsAfterSigterm / 1000).toFixed(1)} s; client got ${(download.bytes / 1e6).toFixed(1)} of ${(z.length / 1e6).toFixed(1)} MB (${download.complete ? "complete" : download.error}); keep-alive: ${k.openWhenSecondSent ? `second request ${k.secondAnswered ? `answered ${k.secondAnswered}` : "not answered"}` : "closed before the second request"}${k.closedMsAfterSigterm === null ? "" : `, closed ${k.closedMsAfterSigterm} ms after SIGTERM`}`;
  return { result, line };
}

// ---------------------------------------------------------------- main
const SCENARIOS = { chaos, folders1000, create500, download400, frozen, bodies, stall, fifo, drain };

let commit = null;
let dirty = null;
try {
  commit = execFileSync("git", ["-C", gatewayDir, "rev-parse", "HEAD"], { encoding: "utf8" }).trim();
  dirty = execFileSync("git", ["-C", gatewayDir, "status", "--porcelain", "--untracked-files=no"], { encoding: "utf8" }).trim() !== "";
} catch {}
const out = {
  started: new Date().toISOString(),
  gateway: gatewayDir,
  commit,
  dirty,
  node: process.version,
  cpus: cpus().length,
  loadavgStart: loadavg().map((v) => round(v, 2)),
  options: opts,
  note: "timings are rough: clients run in the bench process on the same cores as the gateway, and other work shares the machine",
  scenarios: {},
};
const outFile = resolve(opts.out);
const save = () => {
  mkdirSync(dirname(outFile), { recursive: true });
  // RSS timelines on one line each: thousands of [ms, MiB] pairs would take a line per number.
  const inline = [];
  const text = JSON.stringify(out, (k, v) => (k === "timeline" ? `\u0000${inline.push(JSON.stringify(v)) - 1}` : v), 1);
  writeFileSync(outFile, `${text.replace(/"\\u0000(\d+)"/g, (_, i) => inline[Number(i)])}\n`);
};

say(
  `gateway ${gatewayDir} (${commit?.slice(0, 7) ?? "no git"}${dirty ? ", uncommitted changes" : ""}), load average ${out.loadavgStart.join(" ")}, ${out.cpus} CPUs`,
);
generate();
const lines = [];
for (const id of only) {
  say(`${id} ...`);
  const t0 = performance.now();
  const cpu0 = cpuTimes();
  let entry;
  try {
    const { result, line } = await SCENARIOS[id]();
    entry = { ...result };
    lines.push(`${id.padEnd(12)} ${line}`);
  } catch (err) {
    entry = { error: err.stack ?? String(err) };
    lines.push(`${id.padEnd(12)} FAILED: ${String(err.message).split("\n")[0]}`);
  }
  const cpu1 = cpuTimes();
  entry.scenarioS = round((performance.now() - t0) / 1000);
  entry.stealPct = round((100 * (cpu1.steal - cpu0.steal)) / Math.max(1, cpu1.total - cpu0.total));
  out.scenarios[id] = entry;
  process.stdout.write(`${lines.at(-1)}\n`);
  save();
}
out.loadavgEnd = loadavg().map((v) => round(v, 2));
out.finished = new Date().toISOString();
save();
say(`wrote ${outFile}`);
process.exit(0);
