// Does sweeping expired state slow downloads? A folder store with 10,000 zipballs expired two
// days ago and one live zipball of 200 × 100 KB files; downloads timed with the sweeper off,
// then while a sweep runs at the default rate (100 requests/s) and at 2,000/s.
// Usage: npm run build && node bench/sweep.mjs
import { spawn } from "node:child_process";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManifestSigner } from "../dist/manifest/token.js";

const KEY = "bench-key-0123456789abcdef";
const SECRET = "bench-signing-secret-0123456789abcdef";
const DAY = 86_400_000;

async function makeStore() {
  const root = await mkdtemp(join(tmpdir(), "zipgate-sweep-"));
  await mkdir(join(root, "files"));
  for (let i = 0; i < 200; i++) await writeFile(join(root, "files", `f${i}.bin`), randomBytes(100_000));
  const token = await new ManifestSigner(SECRET).sign({
    id: randomUUID(),
    flavour: "bitpaket",
    items: [],
    filename: "a.zip",
    compression: "store",
    owner: "x",
    iat: Math.floor((Date.now() - 3 * DAY) / 1000),
    exp: Math.floor((Date.now() - 2 * DAY) / 1000),
    entries: createHash("sha256").update("[]").digest("hex"),
  });
  for (let i = 0; i < 10_000; i += 500) {
    await Promise.all(
      Array.from({ length: 500 }, async () => {
        const f = join(root, ".zipgate", "zipballs", randomUUID());
        await mkdir(f, { recursive: true });
        await writeFile(join(f, "manifest"), `${token}\n[]`);
        await writeFile(join(f, "crcs"), "x");
      }),
    );
  }
  return root;
}

async function start(root, env) {
  const child = spawn(process.execPath, ["dist/main.js"], {
    env: { ...process.env, PORT: "0", ZIPGATE_STORAGE: root, ZIPGATE_API_KEYS: KEY, ZIPGATE_SIGNING_SECRET: SECRET, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  const url = await new Promise((resolve) =>
    child.stderr.on("data", (d) => {
      err += d;
      const m = /listening on (\S+):(\d+)/.exec(err);
      if (m) resolve(`http://${m[1]}:${m[2]}`);
    }),
  );
  return { child, url };
}

async function timeDownloads(url, path, count) {
  const times = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const res = await fetch(url + path);
    await res.arrayBuffer();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)], p90: times[Math.floor(times.length * 0.9)] };
}

const scenarios = [
  ["sweeper off", { ZIPGATE_SWEEP_INTERVAL: "0" }],
  ["sweeping at 100/s", { ZIPGATE_SWEEP_INTERVAL: "1s" }],
  ["sweeping at 2000/s", { ZIPGATE_SWEEP_INTERVAL: "1s", ZIPGATE_SWEEP_RATE: "2000" }],
];
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const runs = {};
// Scenarios alternate, round after round, so that a noisy moment does not land on one of them.
for (let round = 0; round < ROUNDS; round++) {
  for (const [label, env] of scenarios) {
    const root = await makeStore();
    const gw = await start(root, env);
    const res = await fetch(`${gw.url}/v2/zipball`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ objects: [{ folder: "/files" }] }),
    });
    const u = new URL((await res.json()).data.urls.url);
    await timeDownloads(gw.url, u.pathname + u.search, 3); // warm-up (the first download computes CRCs)
    await new Promise((r) => setTimeout(r, 1500)); // the sweep has begun
    const before = (await readdir(join(root, ".zipgate", "zipballs"))).length;
    const t = await timeDownloads(gw.url, u.pathname + u.search, 20);
    const after = (await readdir(join(root, ".zipgate", "zipballs"))).length;
    runs[label] = [...(runs[label] ?? []), { ...t, swept: before - after }];
    gw.child.kill();
    await rm(root, { recursive: true, force: true });
  }
}
const mid = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = Object.fromEntries(
  Object.entries(runs).map(([label, rs]) => [
    label,
    {
      median_ms: Math.round(mid(rs.map((r) => r.median))),
      p90_ms: Math.round(mid(rs.map((r) => r.p90))),
      zipballs_swept_meanwhile: mid(rs.map((r) => r.swept)),
    },
  ]),
);
console.table(results);
