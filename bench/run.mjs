#!/usr/bin/env node
// zipgate's benchmark: `npm run bench [-- --quick] [-- --s3] [-- --only=large,ttfb]`.
// Generates its data in a temp folder, starts every server on loopback, runs each scenario
// against zipgate and its comparisons in the same run (one warm-up each, then alternating
// repetitions, medians), prints a table and writes bench/results/<date>.json.
// See bench/README.md.
import { execFileSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildAgainst } from "./lib/against.mjs";
import { curl, firstByte } from "./lib/client.mjs";
import { AGAINST, CONTENDERS, contentLength, stopServer } from "./lib/contenders.mjs";
import { dataPlan, generate } from "./lib/data.mjs";
import { atExit, cpuSeconds, peakRssMiB, readChars, run, sampleRss, sleep, tail } from "./lib/proc.mjs";
import { startS3, stopS3 } from "./lib/s3.mjs";
import { alternate, fmt, medians, table } from "./lib/stats.mjs";
import { startThrottleProxy } from "./lib/throttle-proxy.mjs";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const MiB = 1 << 20;
const GiB = 1 << 30;

// ---------------------------------------------------------------- options
// `--name=value` and `--name value` both work for options that take a value.
const VALUED = ["only", "reps", "data", "out", "against", "small-count"];
const argv = process.argv.slice(2).flatMap((a, i, all) => {
  const name = a.replace(/^--/, "");
  if (a.startsWith("--") && VALUED.includes(name) && all[i + 1] !== undefined && !all[i + 1].startsWith("--")) {
    all[i + 1] = `--${name}=${all[i + 1]}`;
    return [];
  }
  return [a];
});
const flag = (name) => argv.includes(`--${name}`);
const option = (name) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
if (flag("help")) {
  console.log(`usage: npm run bench -- [--quick] [--s3] [--only=<ids>] [--reps=N] [--data=<dir>] [--keep]
  --quick       smaller data and fewer repetitions (about two minutes)
  --s3          also run the S3 scenarios against a throwaway Swift (scripts/swift-s3.sh)
  --only=a,b    run only these scenarios: large, small (2 and 3), concurrent, many, resume, and with
                --s3: large-s3, large-s3-relay, small-s3, small-s3-10ms, small-s3-30ms
  --reps=N      repetitions per contender (default: quick 3, full 5)
  --data=<dir>  generate the data there and keep it (reused by later runs with the same plan)
  --keep        keep the temp folder (data and server logs) at the end
  --out=<file>  where to write the JSON (default bench/results/<YYYY-MM-DD>.json)
  --against=<git ref>
                build that ref in a worktree (.cache/bench-against/<commit>) and run it beside
                the working tree, interleaved, on the same data and Node: the cases large,
                small, many, deflate, large-s3 and small-s3 (Swift is started) with the quick
                data plan, unless --only or --full says otherwise; prints the ratio of each
                metric and both builds' CPU per GB, and fails (exit 3) on a loss over 3 %
  --full        with --against: the full data plan
  --small-count=N
                small files in the small set (default 10,000)`);
  process.exit(0);
}
const known = new Set(["quick", "s3", "keep", "help", "full"]);
for (const a of argv) {
  const name = a.replace(/^--/, "").split("=")[0];
  if (!known.has(name) && !VALUED.includes(name)) {
    console.error(`bench: unknown option ${a} (see --help)`);
    process.exit(2);
  }
}
const againstRef = option("against");
const quick = flag("quick") || (againstRef !== undefined && !flag("full"));
const AGAINST_CASES = ["large", "small", "many", "deflate", "large-s3", "small-s3"];
const only = option("only")?.split(",").filter(Boolean) ?? (againstRef ? AGAINST_CASES : undefined);
const wantS3 = flag("s3") || (againstRef !== undefined && only.some((id) => id.includes("s3")));
const reps = Number(option("reps") ?? (quick ? 3 : 5));
const warmup = 1;

const say = (msg) => process.stderr.write(`bench: ${msg}\n`);

// ---------------------------------------------------------------- scenarios
// Each: which contenders, which set, one measured run (`once`), the columns shown, and the
// metrics its ratios are taken on (`better`: "higher" or "lower"). Quick mode uses smaller
// large files and fewer rounds where a round is long (see `reps`).
const plan = dataPlan(quick, { smallCount: option("small-count") ? Number(option("small-count")) : undefined });
const largeLabel = `${plan.largeCount} × ${plan.largeBytes / MiB} MiB`;
const halfBytes = Math.ceil(plan.largeCount / 2) * plan.largeBytes;
const CONCURRENCY = 32;
const CONCURRENT_CAP_S = quick ? 4 : 15;
/**
 * Contenders of a scenario: with --against, the ref's build joins zipgate, and the copy limit
 * and the naive gateway (measured often enough) make way for time; nginx stays where it is the
 * copy limit (large files), zipstream-ng where it runs.
 */
const contenders = (list) => (againstRef ? ["zipgate", "against", ...list.filter((id) => id === "nginx" || id === "zipstream")] : list);
const ALL = ["zipgate", "copy", "naive", "zipstream"];
/** Throughput and CPU metrics on which the working tree may not lose over 3 % against --against. */
const GUARDED = new Set(["mbps", "cpuPerGB", "filesPerS", "cpuS", "cpuMsPerObject", "seconds"]);
/** Both zipgate builds make zipballs; the others serve the set as it is. */
const isZipgate = (id) => id === "zipgate" || id === "against";
const gib = (bytes) => fmt(bytes / GiB, bytes % GiB === 0 ? 0 : bytes >= GiB ? 1 : 2);

const smallColumns = [
  ["files/s", "filesPerS", 0],
  ["MB/s", "mbps"],
  ["CPU s", "cpuS", 2],
  ["create ms", "createMs", 1],
  ["1st GET hdrs ms", "firstHeadersMs", 1],
  ["1st GET byte ms", "firstByteMs", 1],
  ["repeat hdrs ms", "repeatHeadersMs", 1],
  ["repeat byte ms", "repeatByteMs", 1],
];
const smallRatios = [
  { metric: "filesPerS", better: "higher", label: "files/s" },
  { metric: "repeatByteMs", better: "lower", label: "TTFB" },
  { metric: "cpuS", better: "lower", label: "CPU" },
];

const SCENARIOS = [
  {
    id: "large",
    zipballPerRound: true,
    title: `1. Large files: ${largeLabel} (${gib(plan.largeCount * plan.largeBytes)} GiB), one download`,
    set: "large",
    contenders: contenders(["zipgate", "nginx", "copy", "naive", "zipstream"]),
    reps: reps,
    async once(srv, id) {
      // zipgate: a new zipball every time (its objects' CRCs are known once a first download read them).
      const url = isZipgate(id) ? (await srv.prepare("large")).url : srv.url;
      const c0 = cpuSeconds(srv.pid);
      const r = await curl(url);
      const cpu = cpuSeconds(srv.pid) - c0;
      expectStatus(r, 200);
      return { mbps: r.bytes / r.seconds / 1e6, cpuPerGB: cpu / (r.bytes / 1e9), seconds: r.seconds, bytes: r.bytes };
    },
    ratios: [
      { metric: "mbps", better: "higher", label: "MB/s" },
      { metric: "cpuPerGB", better: "lower", label: "CPU" },
    ],
    columns: [
      ["MB/s", "mbps"],
      ["CPU s/GB", "cpuPerGB"],
      ["seconds", "seconds"],
      ["archive bytes", "bytes", 0],
    ],
    note: "zipgate: a new zipball each round (the POST is not timed); nginx: the same files as plain downloads, one curl, one connection",
  },
  {
    id: "small",
    zipballPerRound: true,
    title: `2+3. Many small files: ${plan.smallCount.toLocaleString("en-US")} × ${plan.smallBytes / 1024} KiB (folder store): files/s, time to headers and first byte`,
    set: "small",
    contenders: contenders(ALL),
    reps: againstRef ? Math.max(reps, 5) : quick ? 2 : reps,
    once: smallOnce,
    ratios: smallRatios,
    columns: smallColumns,
    note: "each round: zipgate creates a new zipball (create = POST: listing, stat, manifest), then two full GETs: its first and a repeat; files/s, MB/s and CPU are the repeat GET's; the others keep no state, so both GETs are alike",
  },
  {
    id: "deflate",
    zipballPerRound: true,
    title: `7. Deflate: ${plan.textCount} × ${plan.textBytes / 1024} KiB of text, compressed, one download`,
    set: "text",
    contenders: ["zipgate", ...(againstRef ? ["against"] : [])],
    reps: reps,
    async once(srv) {
      const { url } = await srv.prepare("text", { compression: "deflate" });
      const c0 = cpuSeconds(srv.pid);
      const r = await curl(url);
      const cpu = cpuSeconds(srv.pid) - c0;
      expectStatus(r, 200);
      const source = this.setBytes;
      return { mbps: source / r.seconds / 1e6, cpuPerGB: cpu / (source / 1e9), seconds: r.seconds, ratio: r.bytes / source };
    },
    ratios: [
      { metric: "mbps", better: "higher", label: "MB/s" },
      { metric: "cpuPerGB", better: "lower", label: "CPU" },
    ],
    columns: [
      ["source MB/s", "mbps"],
      ["CPU s/GB of source", "cpuPerGB"],
      ["seconds", "seconds"],
      ["size / source", "ratio", 3],
    ],
    note: "zipgate only (with --against, both builds): a new deflate zipball each round; MB/s and CPU per GB of the source bytes",
  },
  ...s3Scenarios(),
  {
    id: "concurrent",
    title: `4. ${CONCURRENCY} concurrent downloads of a ${gib(halfBytes)} GiB archive (each round capped at ${CONCURRENT_CAP_S} s)`,
    set: "half",
    contenders: ALL,
    reps: quick ? 1 : Math.min(reps, 3),
    async once(srv, _id, round) {
      const cap = round === "warm-up" ? 2 : CONCURRENT_CAP_S;
      const rss = sampleRss(srv.pid);
      const c0 = cpuSeconds(srv.pid);
      const t0 = performance.now();
      const results = await Promise.all(Array.from({ length: CONCURRENCY }, () => curl(srv.url, { maxTime: cap })));
      const seconds = (performance.now() - t0) / 1000;
      const cpu = cpuSeconds(srv.pid) - c0;
      const peak = rss.stop();
      // A capped download may have had no answer yet (status 0): it counts with 0 bytes.
      for (const r of results) if (!(r.timedOut && r.status === 0)) expectStatus(r, 200);
      const bytes = results.reduce((a, r) => a + r.bytes, 0);
      await sleep(300); // capped transfers: let the server drop them before the next round
      return {
        aggMBps: bytes / seconds / 1e6,
        completed: results.filter((r) => !r.timedOut).length,
        answered: results.filter((r) => r.status === 200).length,
        cpuPerGB: cpu / (bytes / 1e9),
        sampledPeakRssMiB: peak,
      };
    },
    ratios: [
      { metric: "aggMBps", better: "higher", label: "MB/s" },
      { metric: "peakRssMiB", better: "lower", label: "RSS" },
    ],
    columns: [
      ["aggregate MB/s", "aggMBps"],
      ["completed", "completed", 0],
      ["CPU s/GB", "cpuPerGB"],
      ["peak RSS MiB", "peakRssMiB", 0],
    ],
    note: "peak RSS = VmHWM of a server process started for this scenario (warm-up and all rounds); downloads still running at the cap are cut, throughput = bytes received / wall time",
  },
  {
    id: "many",
    zipballPerRound: true,
    title: `5. ${plan.manyCount.toLocaleString("en-US")} entries (zip64 by count), ${plan.manyBytes} B each, one download`,
    set: "many",
    contenders: againstRef ? contenders(ALL) : quick ? ["zipgate", "zipstream"] : ALL,
    reps: quick ? 1 : Math.min(reps, 2),
    warmup: 0,
    async once(srv, id) {
      let createMs = 0;
      let url = srv.url;
      if (isZipgate(id)) ({ url, createMs } = await srv.prepare("many"));
      const c0 = cpuSeconds(srv.pid);
      const r = await curl(url);
      const cpu = cpuSeconds(srv.pid) - c0;
      expectStatus(r, 200);
      const seconds = createMs / 1000 + r.seconds;
      return { createS: createMs / 1000, downloadS: r.seconds, seconds, entriesPerS: plan.manyCount / seconds, cpuS: cpu, bytes: r.bytes };
    },
    ratios: [
      { metric: "seconds", better: "lower", label: "time" },
      { metric: "peakRssMiB", better: "lower", label: "RSS" },
    ],
    columns: [
      ["create s", "createS"],
      ["download s", "downloadS"],
      ["total s", "seconds"],
      ["entries/s", "entriesPerS", 0],
      ["CPU s", "cpuS"],
      ["peak RSS MiB", "peakRssMiB", 0],
    ],
    note: `zipgate: a new zipball each round, total = POST (lists and stats the folder) + download; the others stat at download time. No warm-up: each server is fresh, peak RSS = VmHWM${quick ? "; quick mode runs only zipgate and zipstream-ng here" : ""}`,
  },
  {
    id: "resume",
    title: `6. Resume at 90 % of a ${gib(plan.largeCount * plan.largeBytes)} GiB archive (Range: bytes=N-)`,
    set: "large",
    contenders: ALL,
    reps: quick ? 2 : reps,
    async rangeProbe(srv) {
      // Servers that answer a Range request with 200 cannot resume: nothing to measure.
      const r = await firstByte(srv.url, { range: 1, headersOnly: true });
      await sleep(150);
      return r.status === 206 ? null : `answers ${r.status} to a Range request (no resume)`;
    },
    async once(srv, id) {
      // zipgate: fresh zipballs, so no CRC is known before the round.
      const fresh = async () => (isZipgate(id) ? (await srv.prepare("large")).url : srv.url);
      const resume = async (url) => {
        const total = id === "copy" ? this.setBytes : await contentLength(url);
        const at = Math.floor(total * 0.9);
        const r0 = readChars(srv.pid);
        const r = await curl(url, { range: at });
        const read = readChars(srv.pid) - r0;
        expectStatus(r, 206);
        return { ttfbMs: r.ttfb * 1000, seconds: r.seconds, readMiB: read / MiB, sentMiB: r.bytes / MiB, at };
      };
      // (a) The usual resume: the first 90 % was downloaded (bytes=0-N), the link is resumed.
      const url = await fresh();
      const probe = id === "copy" ? this.setBytes : await contentLength(url);
      const head = await curl(url, { rangeTo: Math.floor(probe * 0.9) - 1 });
      expectStatus(head, 206);
      const after = await resume(url);
      // (b) A cold resume: nothing downloaded from this zipball before (another client, a
      // segmented download manager); then (c) the same resume again.
      const coldUrl = await fresh();
      const cold = await resume(coldUrl);
      const again = await resume(coldUrl);
      return {
        ttfbMs: after.ttfbMs,
        readMiB: after.readMiB,
        sentMiB: after.sentMiB,
        seconds: after.seconds,
        coldTtfbMs: cold.ttfbMs,
        coldReadMiB: cold.readMiB,
        againTtfbMs: again.ttfbMs,
        againReadMiB: again.readMiB,
      };
    },
    ratios: [
      { metric: "ttfbMs", better: "lower", label: "TTFB" },
      { metric: "coldTtfbMs", better: "lower", label: "cold TTFB" },
    ],
    columns: [
      ["TTFB ms", "ttfbMs", 1],
      ["read MiB", "readMiB", 0],
      ["sent MiB", "sentMiB", 0],
      ["seconds", "seconds", 2],
      ["cold TTFB ms", "coldTtfbMs", 1],
      ["cold read MiB", "coldReadMiB", 0],
      ["again TTFB ms", "againTtfbMs", 1],
      ["again read MiB", "againReadMiB", 0],
    ],
    note: "resume after the first 90 % was downloaded (bytes=0-N, then bytes=N+1-); cold = a fresh zipball resumed with nothing downloaded before, again = that resume repeated; read = rchar of the server process (/proc/<pid>/io) during the request",
  },
];

function expectStatus(r, status) {
  if (r.status !== status) throw new Error(`expected HTTP ${status}, got ${r.status}`);
}

/**
 * The S3 scenarios (--s3), on a throwaway Swift s3api: many small objects at 0, 10 and 30 ms
 * added each way (bench/lib/throttle-proxy.mjs; fewer objects with latency, where the naive
 * gateway's sequential GETs take a minute per thousand), and one large object on plain loopback
 * and through a relay that limits each connection to 50 MB/s with 30 ms added.
 */
function s3Scenarios() {
  const small = [0, 10, 30].map((ms) => {
    const set = ms === 0 ? "small" : "few";
    const count = ms === 0 ? plan.smallCount : plan.fewCount;
    return {
      id: ms === 0 ? "small-s3" : `small-s3-${ms}ms`,
      zipballPerRound: true,
      title: `2b. Many small files from S3 (Swift s3api${ms ? `, ${ms} ms added each way` : " on loopback"}): ${count.toLocaleString("en-US")} × ${plan.smallBytes / 1024} KiB`,
      set,
      s3: true,
      link: ms ? { latencyMs: ms } : undefined,
      contenders: againstRef ? ["zipgate", "against"] : ["zipgate", "copy", "naive"],
      reps: againstRef ? 3 : quick ? 1 : 2,
      warmup: 0,
      once: s3SmallOnce,
      ratios: [
        { metric: "filesPerS", better: "higher", label: "files/s" },
        { metric: "cpuMsPerObject", better: "lower", label: "CPU" },
      ],
      columns: [
        ["files/s", "filesPerS", 0],
        ["CPU ms/object", "cpuMsPerObject", 2],
        ["create ms", "createMs", 1],
        ["1st GET files/s", "firstFilesPerS", 0],
        ["1st GET byte ms", "firstByteMs", 1],
        ["repeat byte ms", "repeatByteMs", 1],
      ],
      note: "each round: zipgate creates a new zipball (create = POST: one listing of the folder), then a first GET (CRCs computed) and a repeat GET; files/s and CPU are the repeat's. The others keep no state: one GET, shown as both. No warm-up",
    };
  });
  const large = [
    ["large-s3", "on loopback", undefined],
    ["large-s3-relay", "each connection limited to 50 MB/s, 30 ms added each way", { latencyMs: 30, bytesPerSecond: 50e6 }],
  ].map(([id, label, link]) => ({
    id,
    title: `1b. One large object from S3 (Swift s3api, ${label}): ${plan.largeBytes / MiB} MiB`,
    set: "one",
    s3: true,
    link,
    contenders: againstRef ? ["zipgate", "against", "copy"] : ["zipgate", "copy", "naive"],
    reps: againstRef ? 3 : quick ? 2 : 3,
    async once(srv) {
      const c0 = cpuSeconds(srv.pid);
      const r = await curl(srv.url);
      const cpu = cpuSeconds(srv.pid) - c0;
      expectStatus(r, 200);
      return { mbps: r.bytes / r.seconds / 1e6, cpuPerGB: cpu / (r.bytes / 1e9), seconds: r.seconds, ttfbMs: r.ttfb * 1000 };
    },
    ratios: [
      { metric: "mbps", better: "higher", label: "MB/s" },
      { metric: "cpuPerGB", better: "lower", label: "CPU" },
      { metric: "ttfbMs", better: "lower", label: "TTFB" },
    ],
    columns: [
      ["MB/s", "mbps"],
      ["CPU s/GB", "cpuPerGB"],
      ["TTFB ms", "ttfbMs", 1],
      ["seconds", "seconds"],
    ],
    note: "zipgate: one zipball, its warm-up download records the CRC, so the rounds are repeat downloads (ranged parts in flight when the store is the bottleneck); the copy limit and the naive gateway read the object as one GetObject stream",
  }));
  return [...large, ...small];
}

/** A small-files S3 round: see the scenarios' note. */
async function s3SmallOnce(srv, id) {
  const count = this.files;
  let createMs = null;
  let url = srv.url;
  if (isZipgate(id)) ({ url, createMs } = await srv.prepare(this.set));
  let c0 = cpuSeconds(srv.pid);
  const first = await firstByte(url);
  expectStatus(first, 200);
  let timed = first;
  if (isZipgate(id)) {
    c0 = cpuSeconds(srv.pid);
    timed = await firstByte(url);
    expectStatus(timed, 200);
  }
  const cpu = cpuSeconds(srv.pid) - c0;
  return {
    filesPerS: count / (timed.totalMs / 1000),
    cpuMsPerObject: (cpu * 1000) / count,
    createMs,
    firstFilesPerS: count / (first.totalMs / 1000),
    firstByteMs: first.firstByteMs,
    repeatByteMs: timed.firstByteMs,
  };
}

/**
 * Scenarios 2 and 3 together: full GETs timed to headers, first byte and end. With
 * `repeat`, a second GET of the same URL gives the throughput figures; without, the first.
 */
async function smallOnce(srv, id, { repeat = true } = {}) {
  let createMs = null;
  let url = srv.url;
  if (isZipgate(id)) ({ url, createMs } = await srv.prepare("small")); // a new zipball: its first GET
  let c0 = cpuSeconds(srv.pid);
  const first = await firstByte(url);
  expectStatus(first, 200);
  const out = { createMs, firstHeadersMs: first.headersMs, firstByteMs: first.firstByteMs, firstTotalMs: first.totalMs };
  let timed = first;
  if (repeat) {
    c0 = cpuSeconds(srv.pid);
    timed = await firstByte(url);
    expectStatus(timed, 200);
    Object.assign(out, { repeatHeadersMs: timed.headersMs, repeatByteMs: timed.firstByteMs, repeatTotalMs: timed.totalMs });
  }
  const cpu = cpuSeconds(srv.pid) - c0;
  const seconds = timed.totalMs / 1000;
  return { filesPerS: plan.smallCount / seconds, mbps: timed.bytes / seconds / 1e6, cpuS: cpu, ...out, bytes: timed.bytes };
}

// ---------------------------------------------------------------- setup
const ids = SCENARIOS.map((s) => s.id);
for (const id of only ?? []) {
  if (!ids.includes(id)) {
    console.error(`bench: unknown scenario ${id} (one of ${ids.join(", ")})`);
    process.exit(2);
  }
}
const selected = SCENARIOS.filter((s) => (only ? only.includes(s.id) : true));

if (!existsSync(join(repo, "dist/main.js"))) {
  console.error("bench: dist/main.js is missing; run `npm run build` (npm run bench does)");
  process.exit(2);
}

const dataDir = option("data");
const work = mkdtempSync(join(tmpdir(), "zipgate-bench-"));
const root = dataDir ? join(dataDir, "store") : join(work, "store");
mkdirSync(join(work, "logs"), { recursive: true });
mkdirSync(root, { recursive: true });
/** The --against build's own folder store: hard links of the same data. */
const againstRoot = `${root}-against`;
let keepWork = flag("keep");
let cleaned = false;
/** Removes the generated data (unless --data) and the temp folder (unless kept). */
function removeWork() {
  if (cleaned) return;
  cleaned = true;
  if (!dataDir) rmSync(join(work, "store"), { recursive: true, force: true });
  rmSync(againstRoot, { recursive: true, force: true }); // hard links only
  if (keepWork) say(`kept ${work} (server logs in ${join(work, "logs")})`);
  else rmSync(work, { recursive: true, force: true });
}
atExit(removeWork); // also on Ctrl-C or a crash

/** Makes sure python3-zipstream-ng is importable by Debian's python; installs it when root. */
async function ensureZipstreamNg() {
  const probe = () => run("/usr/bin/python3", ["-c", "import zipstream, importlib.metadata as m; print(m.version('zipstream-ng'))"]);
  try {
    return { version: (await probe()).trim() };
  } catch {}
  if (!existsSync("/usr/bin/python3")) return { skip: "/usr/bin/python3 not found" };
  if (process.getuid?.() !== 0) return { skip: "python3-zipstream-ng is not installed and we are not root (apt-get install python3-zipstream-ng)" };
  say("python3-zipstream-ng is missing: installing it with apt-get (Debian package)");
  const install = () =>
    run("apt-get", ["-y", "-q", "-o", "DPkg::Lock::Timeout=300", "install", "--no-install-recommends", "python3-zipstream-ng"], {
      env: { DEBIAN_FRONTEND: "noninteractive" },
    });
  try {
    await install().catch(async () => {
      await run("apt-get", ["-q", "update"]);
      await install();
    });
    return { version: (await probe()).trim() };
  } catch (err) {
    return { skip: `could not install python3-zipstream-ng: ${err.message.split("\n")[0]}` };
  }
}

function versionOf(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })
      .split("\n")[0]
      .trim();
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- run
const results = {
  date: new Date().toISOString(),
  command: `node bench/run.mjs ${argv.join(" ")}`.trim(),
  mode: quick ? "quick" : "full",
  reps,
  warmup,
  git: versionOf("git", ["-C", repo, "rev-parse", "--short", "HEAD"]),
  machine: {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memoryGiB: Math.round(totalmem() / GiB),
    loadavgAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
    node: process.version,
    curl: versionOf("curl", ["--version"]),
    python: versionOf("/usr/bin/python3", ["--version"]),
  },
  data: plan,
  scenarios: [],
  targets: [],
};

const started = Date.now();
let s3 = null;
try {
  if (loadavg()[0] > 1) say(`load average is ${loadavg()[0].toFixed(2)} before we start: other work on this machine will add noise`);
  if (againstRef) {
    Object.assign(AGAINST, buildAgainst(repo, againstRef, say));
    results.against = { ref: againstRef, commit: AGAINST.commit, label: AGAINST.label };
  }
  const zs = await ensureZipstreamNg();
  results.machine.zipstreamNg = zs.version ?? null;
  if (zs.skip) say(`zipstream-ng comparison skipped: ${zs.skip}`);
  const fileSet = { half: "large", one: "large", few: "small" };
  const parts = [...new Set(selected.filter((sc) => !sc.s3 || wantS3).map((sc) => fileSet[sc.set] ?? sc.set))];
  const sets = generate(root, plan, parts, say);
  const setsFile = join(work, "sets.json");
  writeFileSync(setsFile, JSON.stringify(Object.fromEntries(Object.entries(sets).map(([k, v]) => [k, v.keys]))));
  const roots = {};
  if (againstRef) {
    // Same inodes, so the same page cache; each build's .zipgate/ state stays its own.
    rmSync(againstRoot, { recursive: true, force: true });
    mkdirSync(againstRoot, { recursive: true });
    const dirs = [...new Set(Object.values(sets).flatMap((set) => set.keys.map((k) => k.split("/")[0])))].filter((d) => existsSync(join(root, d)));
    for (const d of dirs) execFileSync("cp", ["-al", join(root, d), join(againstRoot, d)]);
    roots.against = againstRoot;
  }
  // A link changes its file's ctime, and so does new data: the folder store proves a file
  // unchanged by a ctime older than 10 s (src/storage/fs.ts), as files that are served are.
  await sleep(10_100);
  const ctx = { repo, work, root, roots, sets, setsFile, zipstreamNg: Boolean(zs.version), zipstreamSkip: zs.skip };

  for (const sc of selected) {
    if (sc.s3 && !wantS3) {
      say(`skipping "${sc.id}": S3 scenarios run with --s3`);
      results.scenarios.push({ id: sc.id, title: sc.title, skipped: "run with --s3" });
      continue;
    }
    if (sc.s3 && !s3) s3 = await startS3({ repo, work, sets, root, say, upload: [...new Set(selected.filter((x) => x.s3).map((x) => x.set))] });
    results.scenarios.push(await runScenario(sc, ctx));
  }
} catch (err) {
  keepWork = true;
  say(`failed: ${err.stack ?? err}`);
  process.exitCode = 1;
} finally {
  if (s3) await stopS3(s3, say);
  results.seconds = Math.round((Date.now() - started) / 1000);
  results.machine.loadavgAtEnd = loadavg().map((x) => Math.round(x * 100) / 100);
  if (results.scenarios.length > 0) report(results);
  removeWork();
}

async function runScenario(sc, ctx) {
  say(`${sc.title}`);
  const t0 = Date.now();
  const out = { id: sc.id, title: sc.title, note: sc.note, contenders: {}, skipped: {} };
  const servers = {};
  // This VM's host drops the page cache now and then; every contender starts from a warm one.
  if (!sc.s3) warmPageCache(ctx.root, ctx.sets[sc.set].keys);
  const cpu0 = cpuTicks();
  // The store as the servers reach it: Swift itself, or the relay in front of it.
  const store = sc.s3 && sc.link ? await startThrottleProxy({ target: hostAndPort(s3.client.endpoint), ...sc.link }) : undefined;
  const s3Client = sc.s3 ? { ...s3.client, endpoint: store?.url ?? s3.client.endpoint } : undefined;
  try {
    for (const id of sc.contenders) {
      try {
        const srv = await CONTENDERS[id].start(ctx, s3Client);
        servers[id] = srv;
        // zipgate makes a zipball per round where the scenario says so; one made up front too would
        // only sit in its caches (for scenario 5, a second 100,000-entry zipball in its peak RSS).
        if (!(sc.zipballPerRound && isZipgate(id))) Object.assign(srv, await srv.prepare(sc.set));
        if (sc.rangeProbe && !isZipgate(id) && id !== "copy") {
          const why = await sc.rangeProbe(srv);
          if (why) {
            out.skipped[id] = why;
            await stopServer(srv);
            delete servers[id];
          }
        }
      } catch (err) {
        out.skipped[id] = err.message.split("\n")[0];
        if (servers[id]) await stopServer(servers[id]);
        delete servers[id];
      }
      if (out.skipped[id]) say(`  ${CONTENDERS[id].label}: skipped (${out.skipped[id]})`);
    }
    const failed = {};
    const self = { setBytes: ctx.sets[sc.set].bytes, files: ctx.sets[sc.set].files, set: sc.set };
    out.rounds = { reps: sc.reps ?? reps, warmup: sc.warmup ?? warmup };
    const runs = await alternate(Object.keys(servers), {
      warmup: out.rounds.warmup,
      reps: out.rounds.reps,
      once: async (id, round) => {
        if (failed[id]) return null;
        try {
          return await sc.once.call(self, servers[id], id, round);
        } catch (err) {
          const srv = servers[id];
          await sleep(200); // a crash shows up as a refused or reset connection first
          const dead = srv.exited ? `; the server process died (${srv.exited.code ?? srv.exited.signal})` : "";
          failed[id] = `${err.message.split("\n")[0]}${dead}`;
          if (srv.exited) out.crashes = { ...out.crashes, [id]: tail(srv.logFile, 40) };
          say(`  ${CONTENDERS[id].label}: failed (${failed[id]}); see ${srv.logFile}`);
          return null;
        }
      },
      log: (id, round, m) => {
        if (m)
          say(
            `  ${CONTENDERS[id].label.padEnd(16)} round ${round + 1}: ${sc.columns
              .map(([l, k, d]) => (m[k] !== undefined ? `${l} ${fmt(m[k], d)}` : ""))
              .filter(Boolean)
              .join(", ")}`,
          );
      },
    });
    for (const [id, list] of Object.entries(runs)) {
      const ok = list.filter(Boolean);
      if (failed[id] || ok.length === 0) {
        out.skipped[id] = failed[id] ?? "no run";
        continue;
      }
      const med = medians(ok);
      med.peakRssMiB = peakRssMiB(servers[id].pid);
      out.contenders[id] = { label: CONTENDERS[id].label, median: med, runs: ok };
      if (servers[id].createMs !== undefined) med.createMs ??= servers[id].createMs;
    }
  } finally {
    for (const srv of Object.values(servers)) await stopServer(srv);
    await store?.close();
  }
  const z = out.contenders.zipgate?.median;
  for (const [id, c] of Object.entries(out.contenders)) {
    if (id === "zipgate" || !z) continue;
    c.zipgateRatio = {};
    for (const { metric, better } of sc.ratios) {
      if (!c.median[metric] || !z[metric]) continue;
      c.zipgateRatio[metric] = better === "higher" ? z[metric] / c.median[metric] : c.median[metric] / z[metric];
    }
  }
  out.ratios = sc.ratios.map(({ metric, better }) => `${metric}: ${better} is better`);
  out.seconds = Math.round((Date.now() - t0) / 1000);
  out.stealPct = stealPercent(cpu0, cpuTicks());
  say(`  (${out.seconds} s, CPU stolen by the hypervisor: ${fmt(out.stealPct, 1)} %)`);
  return out;
}

function hostAndPort(url) {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port) };
}

/** Reads every file of a set once, so that no contender pays for reading it from disk. */
function warmPageCache(root, keys) {
  const buf = Buffer.allocUnsafe(1024 * 1024);
  for (const key of keys) {
    const fd = openSync(join(root, key), "r");
    try {
      while (readSync(fd, buf, 0, buf.length, null) > 0);
    } finally {
      closeSync(fd);
    }
  }
}

/** The machine's CPU time counters (/proc/stat, all cores): total and stolen ticks. */
function cpuTicks() {
  try {
    const fields = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    return { total: fields.reduce((a, b) => a + b, 0), steal: fields[7] ?? 0 };
  } catch {
    return undefined; // not Linux
  }
}

/** Share of CPU time a hypervisor gave to others meanwhile: rounds with steal compare badly. */
function stealPercent(a, b) {
  if (!a || !b || b.total === a.total) return undefined;
  return (100 * (b.steal - a.steal)) / (b.total - a.total);
}

// ---------------------------------------------------------------- report
function targets(res) {
  const sc = Object.fromEntries(res.scenarios.map((s) => [s.id, s]));
  const list = [];
  const ratio = (id, who, metric = SCENARIOS.find((x) => x.id === id).ratios[0].metric) => sc[id]?.contenders?.[who]?.zipgateRatio?.[metric];
  const add = (target, value, pass, show, why) =>
    list.push({
      target,
      value: value ?? null,
      shown: value === undefined || value === null ? `n/a (${why ?? "not run"})` : show(value),
      met: value === undefined || value === null ? null : pass(value),
    });
  const times = ratioText;
  // Issue 23's acceptance targets: the copy limit is nginx's sendfile of the same files.
  add("1. large files ≥ 0.85× nginx sendfile of the same files", ratio("large", "nginx"), (v) => v >= 0.85, times);
  add("1. large files ≥ 1.5× zipstream-ng", ratio("large", "zipstream"), (v) => v >= 1.5, times);
  add("2. small files ≥ 2.5× zipstream-ng (files/s)", ratio("small", "zipstream"), (v) => v >= 2.5, times);
  add(
    "1b. one large S3 object: ≤ 1.5 s of gateway CPU per GB",
    sc["large-s3"]?.contenders?.zipgate?.median?.cpuPerGB,
    (v) => v <= 1.5,
    (v) => `${fmt(v, 2)} s/GB`,
  );
  add(
    "1b. one large S3 object: time to first byte ≤ 1.2× one plain GET (copy limit)",
    sc["large-s3"]?.contenders?.copy?.zipgateRatio?.ttfbMs,
    (v) => v >= 1 / 1.2,
    (v) => `${fmt(1 / v, 2)}× the plain GET's`,
  );
  add(
    "1. large files ≥ 60 % of the copy limit",
    ratio("large", "copy"),
    (v) => v >= 0.6,
    (v) => `${fmt(v * 100, 0)} %`,
  );
  add("1. large files ≥ 2× the naive gateway", ratio("large", "naive"), (v) => v >= 2, times);
  add("1b. one large S3 object through the relay ≥ 4× a single GetObject stream (copy limit)", ratio("large-s3-relay", "copy"), (v) => v >= 4, times);
  add("1b. one large S3 object on loopback: no loss against a single GetObject stream", ratio("large-s3", "copy"), (v) => v >= 1, times);
  for (const id of ["small-s3", "small-s3-10ms", "small-s3-30ms"]) {
    const name = id === "small-s3" ? "0 ms" : id.slice(9);
    add(`2b. small files from S3, ${name}: less CPU per object than the naive gateway`, ratio(id, "naive", "cpuMsPerObject"), (v) => v > 1, times);
  }
  add(
    "2b. 10,000 small files from S3 ≥ 4× the naive gateway",
    ratio("small-s3", "naive"),
    (v) => v >= 4,
    times,
    typeof sc["small-s3"]?.skipped === "string" ? sc["small-s3"].skipped : sc["small-s3"]?.skipped?.zipgate,
  );
  const ahead = [
    ["large", "mbps", "1. large files (MB/s)"],
    ["small", "filesPerS", "2. small files (files/s)"],
    ["small", "repeatByteMs", "3. time to first byte (repeat GET)"],
    ["concurrent", "aggMBps", "4. 32 concurrent downloads (MB/s)"],
    ["many", "seconds", "5. 100,000 entries (time)"],
    ["resume", "ttfbMs", "6. resume (TTFB)"],
  ];
  for (const [id, metric, text] of ahead) {
    if (!sc[id] || typeof sc[id].skipped === "string") continue;
    add(`${text}: ahead of zipstream-ng`, ratio(id, "zipstream", metric), (v) => v > 1, times, sc[id].skipped?.zipstream);
  }
  add(
    "3. TTFB of a 10,000-entry zipball < 100 ms on a repeat GET",
    sc.small?.contenders?.zipgate?.median?.repeatByteMs,
    (v) => v < 100,
    (v) => `${fmt(v, 1)} ms`,
  );
  add(
    "4. peak RSS < 256 MiB (32 concurrent downloads)",
    sc.concurrent?.contenders?.zipgate?.median?.peakRssMiB,
    (v) => v < 256,
    (v) => `${fmt(v, 0)} MiB`,
  );
  add(
    "5. peak RSS < 300 MiB (100,000 entries)",
    sc.many?.contenders?.zipgate?.median?.peakRssMiB,
    (v) => v < 300,
    (v) => `${fmt(v, 0)} MiB`,
  );
  return list;
}

function againstLosses(res) {
  const out = [];
  for (const s of res.scenarios) {
    const a = s.contenders?.against;
    if (!a) continue;
    const sc = SCENARIOS.find((x) => x.id === s.id);
    for (const { metric, label } of sc.ratios) {
      const r = a.zipgateRatio?.[metric];
      if (!GUARDED.has(metric) || r === undefined || r >= 0.97) continue;
      const values = (c) => c.runs.map((run) => run[metric]).filter((v) => typeof v === "number");
      const [z, b] = [values(s.contenders.zipgate), values(a)];
      const overlap = z.length > 0 && b.length > 0 && Math.min(...z) <= Math.max(...b) && Math.min(...b) <= Math.max(...z);
      out.push({ scenario: s.id, metric, label, ratio: r, overlap });
    }
  }
  return out;
}

/** The lowest and highest value of `metric` over the rounds, "2,447–2,770". */
function spread(runs, metric) {
  const v = (runs ?? []).map((r) => r[metric]).filter((x) => typeof x === "number");
  return v.length > 1 ? `${fmt(Math.min(...v))}–${fmt(Math.max(...v))}` : undefined;
}

/** 1.23×, 0.42×, 0.0036×: two decimals, or two significant digits below 0.1. */
function ratioText(v) {
  return `${v >= 0.1 ? fmt(v, 2) : Number(v.toPrecision(2)).toString()}×`;
}

function report(res) {
  const lines = [];
  lines.push("");
  lines.push(`zipgate bench, ${res.mode} run, ${res.date.slice(0, 16).replace("T", " ")} UTC, ${res.machine.cpus} cores, ${res.seconds} s`);
  lines.push(
    `medians of the rounds after the warm-up; contenders alternate within each round; "vs: <metric>" is zipgate's ratio to that contender, > 1 = zipgate ahead`,
  );
  lines.push(`load average ${res.machine.loadavgAtStart.join(" ")} at start, ${res.machine.loadavgAtEnd.join(" ")} at end`);
  for (const s of res.scenarios) {
    lines.push("");
    const steal = s.stealPct === undefined ? "" : `, ${fmt(s.stealPct, 1)} % steal`;
    lines.push(`${s.title}${s.rounds ? ` [${s.rounds.reps} rounds, ${s.rounds.warmup} warm-up, ${s.seconds} s${steal}]` : ""}`);
    if (s.skipped && typeof s.skipped === "string") {
      lines.push(`  skipped: ${s.skipped}`);
      continue;
    }
    const sc = SCENARIOS.find((x) => x.id === s.id);
    const header = ["contender", ...sc.columns.map(([l]) => l), ...sc.ratios.map((r) => `vs: ${r.label}`)];
    const rows = [];
    for (const id of sc.contenders) {
      const c = s.contenders[id];
      if (!c) {
        rows.push([CONTENDERS[id].label, `skipped: ${s.skipped[id] ?? "-"}`]);
        continue;
      }
      rows.push([
        c.label,
        ...sc.columns.map(([, k, d]) => fmt(c.median[k], d)),
        ...sc.ratios.map(({ metric }) => (id === "zipgate" ? "" : c.zipgateRatio?.[metric] === undefined ? "–" : ratioText(c.zipgateRatio[metric]))),
      ]);
    }
    const t = table(
      header,
      rows.filter((r) => r.length > 2),
    ).split("\n");
    lines.push(...t.map((l) => `  ${l}`));
    for (const r of rows.filter((r) => r.length <= 2)) lines.push(`  ${r[0]}: ${r[1]}`);
    if (s.note) lines.push(`  ${s.note}`);
  }
  res.targets = targets(res);
  if (res.against) {
    res.againstLosses = againstLosses(res);
    lines.push("");
    lines.push(`Against ${res.against.label} (working tree ÷ ${res.against.label}, > 1 = the working tree is ahead; CPU per GB of both)`);
    for (const s of res.scenarios) {
      const a = s.contenders?.against;
      const z = s.contenders?.zipgate;
      if (!a || !z) continue;
      const sc = SCENARIOS.find((x) => x.id === s.id);
      const parts = sc.ratios.map(({ metric, label }) => `${label} ${a.zipgateRatio?.[metric] === undefined ? "–" : ratioText(a.zipgateRatio[metric])}`);
      const [first] = sc.ratios;
      const span = (c) => spread(c.runs, first.metric);
      if (span(z) && span(a)) parts[0] += ` (${span(z)} vs ${span(a)})`;
      const cpu = z.median.cpuPerGB !== undefined ? `; CPU s/GB ${fmt(z.median.cpuPerGB, 2)} vs ${fmt(a.median.cpuPerGB, 2)}` : "";
      lines.push(`  ${s.id.padEnd(16)} ${parts.join(", ")}${cpu}`);
    }
    if (res.againstLosses.length === 0) lines.push("  no case loses more than 3 %");
    for (const l of res.againstLosses) {
      const noise = l.overlap ? "; the two builds' rounds overlap, so run it again with more --reps before believing it" : "";
      lines.push(`  ✗ ${l.scenario}: ${l.label} ${ratioText(l.ratio)} (a loss over 3 %: write down why, or it is not done${noise})`);
    }
  }
  lines.push("");
  lines.push("Targets");
  for (const t of res.targets) lines.push(`  ${t.met === null ? "–" : t.met ? "✓" : "✗"} ${t.target}: ${t.shown}`);
  const text = lines.join("\n");
  console.log(text);
  const out =
    option("out") ??
    join(repo, "bench/results", `${res.date.slice(0, 10)}${res.against ? `-against-${res.against.commit.slice(0, 7)}` : quick ? "-quick" : ""}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(res, null, 2)}\n`);
  say(`results written to ${out}`);
  if (res.againstLosses?.length) process.exitCode = 3;
}
