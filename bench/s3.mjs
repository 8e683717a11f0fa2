// The S3 read path, measured: `npm run build && node bench/s3.mjs [--objects=10000] [--large-mib=1024] [--latencies=0,10,30]
// [--only=small,large] [--links=loopback,relay] [--reps=3] [--keep]`. Starts a throwaway Swift s3api (scripts/swift-s3.sh), uploads
// 4 KiB objects and one large object, and measures with each process's own CPU from /proc:
//   small: gateway CPU per object and files/s, lean GET path vs the SDK's GetObject, beside a
//          bare SigV4 GET loop (64 in flight), at 0, 10 and 30 ms of added latency;
//          time to first byte and creation time of the zipball;
//   large: MB/s of one large object through a relay limiting each connection to 50 MB/s with
//          30 ms added (parts in flight vs one stream), and on plain loopback with CPU-s per GB
//          beside the object piped as it is to the client (one GET, or the same parts reader),
//          and a bare GET stream that only reads.
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { cpuSeconds, freePort, run, startServer, stopProcess } from "./lib/proc.mjs";
import { startSwift } from "./lib/s3.mjs";
import { median } from "./lib/stats.mjs";
import { startThrottleProxy } from "./lib/throttle-proxy.mjs";

const repo = fileURLToPath(new URL("..", import.meta.url));
const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, "").split("=")));
const OBJECTS = Number(args.objects ?? 10_000);
const LARGE_MIB = Number(args["large-mib"] ?? 1024);
const REPS = Number(args.reps ?? 3);
const only = new Set((args.only ?? "small,large").split(","));
const KEY = "bench-key-0123456789abcdef";
const SECRET = "bench-signing-secret-0123456789abcdef-0123456789";
const BUCKET = "zipgate-s3-bench";
const say = (m) => process.stderr.write(`${m}\n`);

const work = await mkdtemp(join(tmpdir(), "zipgate-s3-bench-"));
const { info, client, stop: stopSwift } = await startSwift({ repo, state: join(work, "swift"), bucket: BUCKET, say });
const swift = new URL(info.endpoint);

async function upload() {
  if (only.has("small")) {
    say(`uploading ${OBJECTS} × 4 KiB`);
    let next = 0;
    const body = randomBytes(4096);
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < OBJECTS) {
          const i = next++;
          await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `small/f${String(i).padStart(5, "0")}.bin`, Body: body }));
        }
      }),
    );
  }
  if (only.has("large")) {
    say(`uploading one ${LARGE_MIB} MiB object`);
    const chunk = randomBytes(1024 * 1024);
    const body = Readable.from(
      (function* () {
        for (let i = 0; i < LARGE_MIB; i++) yield chunk;
      })(),
    );
    await new Upload({ client, params: { Bucket: BUCKET, Key: "large/one.bin", Body: body }, partSize: 64 * 1024 * 1024, queueSize: 2 }).done();
  }
}
await upload();

/** A gateway process on the bucket, reaching Swift at `endpoint`. */
async function gateway(endpoint, env = {}) {
  const port = await freePort();
  const srv = await startServer({
    name: "zipgate",
    command: process.execPath,
    args: [
      ...(process.env.GATEWAY_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.GATEWAY_PROF}`] : []),
      ...(process.env.GATEWAY_NODE_ARGS?.split(" ").filter(Boolean) ?? []),
      join(repo, "dist/main.js"),
    ],
    env: {
      PORT: String(port),
      ZIPGATE_API_KEYS: KEY,
      ZIPGATE_SIGNING_SECRET: SECRET,
      ZIPGATE_MAX_FILES: "200000",
      ZIPGATE_MAX_BYTES: "100 GiB",
      ZIPGATE_STORAGE: `s3://${BUCKET}`,
      AWS_ACCESS_KEY_ID: info.admin.accessKeyId,
      AWS_SECRET_ACCESS_KEY: info.admin.secretAccessKey,
      AWS_REGION: info.region,
      AWS_ENDPOINT_URL_S3: endpoint,
      ZIPGATE_S3_FORCE_PATH_STYLE: "true",
      MALLOC_MMAP_THRESHOLD_: "131072",
      ...env,
    },
    port,
    logFile: join(work, `zipgate-${port}.log`),
  });
  return { ...srv, url: `http://127.0.0.1:${port}` };
}

async function create(gw, folder) {
  const t0 = performance.now();
  const res = await fetch(`${gw.url}/v2/zipball`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ objects: [{ folder }] }),
  });
  const body = await res.json();
  if (res.status !== 201) throw new Error(`POST answered ${res.status}: ${JSON.stringify(body)}`);
  const u = new URL(body.data.urls.url);
  return { path: u.pathname + u.search, createMs: performance.now() - t0 };
}

/** One whole download: seconds, bytes, time to first byte (ms) and the gateway's CPU-s. */
async function download(gw, path) {
  const cpu0 = cpuSeconds(gw.child.pid);
  const t0 = performance.now();
  const res = await fetch(gw.url + path);
  let ttfb = 0;
  let bytes = 0;
  for await (const chunk of res.body) {
    if (bytes === 0) ttfb = performance.now() - t0;
    bytes += chunk.length;
  }
  if (bytes !== Number(res.headers.get("content-length"))) throw new Error(`short download: ${bytes}`);
  return { s: (performance.now() - t0) / 1000, bytes, ttfb, cpu: cpuSeconds(gw.child.pid) - cpu0 };
}

/** The keys in a file of the temp folder, one per line (10,000 of them exceed an environment variable's limit). */
function keysFile(keys) {
  const file = join(work, `keys-${keys.length}-${keys[0].replace(/\W/g, "_")}.txt`);
  writeFileSync(file, keys.join("\n"));
  return file;
}

/** What bench/lib/getter.mjs reads: the bucket at `endpoint`, with Swift's credentials. */
function getterEnv(endpoint) {
  return { ENDPOINT: endpoint, BUCKET, REGION: info.region, AK: info.admin.accessKeyId, SK: info.admin.secretAccessKey };
}

/** The bare loop: our signer and node:http, `inFlight` GETs at once, in a process of its own. */
async function bareLoop(endpoint, keys, inFlight) {
  const out = await run(process.execPath, [join(repo, "bench/lib/bare-get.mjs")], {
    env: {
      ...getterEnv(endpoint),
      KEYS_FILE: keysFile(keys),
      IN_FLIGHT: String(inFlight),
    },
  });
  return JSON.parse(out);
}

/** A plain baseline (bench/lib/plain-proxy.mjs): one GET, or `depth` parts, piped to the client. */
async function plainProxy(endpoint, key, depth) {
  const port = await freePort();
  const srv = await startServer({
    name: "plain-proxy",
    command: process.execPath,
    args: [join(repo, "bench/lib/plain-proxy.mjs")],
    env: {
      PORT: String(port),
      ...getterEnv(endpoint),
      KEY: key,
      PARTS: String(depth),
    },
    port,
    logFile: join(work, `plain-${port}.log`),
  });
  return { ...srv, url: `http://127.0.0.1:${port}` };
}

const results = { date: new Date().toISOString(), objects: OBJECTS, largeMiB: LARGE_MIB, reps: REPS, small: {}, large: {} };

if (only.has("small")) {
  const keys = Array.from({ length: OBJECTS }, (_, i) => `small/f${String(i).padStart(5, "0")}.bin`);
  for (const latency of (args.latencies ?? "0,10,30").split(",").map(Number)) {
    const proxy = latency > 0 ? await startThrottleProxy({ target: { host: swift.hostname, port: Number(swift.port) }, latencyMs: latency }) : undefined;
    const endpoint = proxy?.url ?? info.endpoint;
    const runs = { lean: [], sdk: [], bare: [] };
    for (let rep = 0; rep < REPS; rep++) {
      for (const path of ["lean", "sdk"]) {
        const gw = await gateway(endpoint, { ZIPGATE_S3_READ: path });
        const z = await create(gw, "/small");
        const first = await download(gw, z.path);
        const repeat = await download(gw, z.path);
        runs[path].push({
          createMs: z.createMs,
          firstTtfb: first.ttfb,
          repeatTtfb: repeat.ttfb,
          filesPerS: OBJECTS / repeat.s,
          cpuMsPerObject: (repeat.cpu * 1000) / OBJECTS,
          firstFilesPerS: OBJECTS / first.s,
        });
        await stopProcess(gw.child);
      }
      const bare = await bareLoop(endpoint, keys, 64);
      runs.bare.push({ filesPerS: OBJECTS / bare.s, cpuMsPerObject: (bare.cpu * 1000) / OBJECTS });
    }
    const med = (rs, k) => median(rs.map((r) => r[k]));
    results.small[`${latency}ms`] = Object.fromEntries(
      Object.entries(runs).map(([k, rs]) => [k, Object.fromEntries(Object.keys(rs[0]).map((f) => [f, Number(med(rs, f).toFixed(3))]))]),
    );
    say(`small, ${latency} ms: ${JSON.stringify(results.small[`${latency}ms`])}`);
    await proxy?.close();
  }
}

if (only.has("large")) {
  const links = new Set((args.links ?? "loopback,relay").split(","));
  for (const [link, label, proxyOptions] of [
    ["loopback", "loopback", undefined],
    ["relay", "50 MB/s per connection, 30 ms", { latencyMs: 30, bytesPerSecond: 50e6 }],
  ]) {
    if (!links.has(link)) continue;
    const proxy = proxyOptions ? await startThrottleProxy({ target: { host: swift.hostname, port: Number(swift.port) }, ...proxyOptions }) : undefined;
    const endpoint = proxy?.url ?? info.endpoint;
    const runs = { parts: [], "one stream (lean)": [], "one stream (SDK)": [], "plain stream": [], "plain parts": [], bare: [] };
    for (let rep = 0; rep < REPS; rep++) {
      for (const [name, env] of [
        ["parts", {}],
        ["one stream (lean)", { ZIPGATE_S3_PARTS: "1" }],
        ["one stream (SDK)", { ZIPGATE_S3_READ: "sdk" }],
      ].filter(([name]) => !args.runs || args.runs.split(",").includes(name))) {
        const gw = await gateway(endpoint, env);
        const z = await create(gw, "/large");
        if (rep === 0 || !proxy) await download(gw, z.path); // the first download computes the CRC
        const d = await download(gw, z.path);
        runs[name].push({ MBps: d.bytes / 1e6 / d.s, cpuSPerGB: d.cpu / (d.bytes / 1e9) });
        await stopProcess(gw.child);
      }
      for (const [name, depth] of [
        ["plain stream", 1],
        ["plain parts", 8],
      ]) {
        const plain = await plainProxy(endpoint, "large/one.bin", depth);
        const p = await download(plain, "/");
        runs[name].push({ MBps: p.bytes / 1e6 / p.s, cpuSPerGB: p.cpu / (p.bytes / 1e9) });
        await stopProcess(plain.child);
      }
      const bare = await bareLoop(endpoint, ["large/one.bin"], 1);
      runs.bare.push({ MBps: bare.bytes / 1e6 / bare.s, cpuSPerGB: bare.cpu / (bare.bytes / 1e9) });
    }
    results.large[label] = Object.fromEntries(
      Object.entries(runs)
        .filter(([, rs]) => rs.length > 0)
        .map(([k, rs]) => [k, { MBps: Number(median(rs.map((r) => r.MBps)).toFixed(1)), cpuSPerGB: Number(median(rs.map((r) => r.cpuSPerGB)).toFixed(2)) }]),
    );
    say(`large, ${label}: ${JSON.stringify(results.large[label])}`);
    await proxy?.close();
  }
}

client.destroy();
stopSwift();
if ("keep" in args) say(`kept ${work}`);
else await rm(work, { recursive: true, force: true });
console.log(JSON.stringify(results, null, 2));
process.exit(0);
