#!/usr/bin/env node
// What the small-object threshold of the classic form costs on S3, where an object comes as a
// stream: a classic entry whose CRC is not known at creation is read whole before its header.
//
//   bash scripts/swift-s3.sh start /tmp/swift > /tmp/swift.json   # or any S3 endpoint
//   npm run build && node bench/classic-threshold.mjs --s3=/tmp/swift.json [--main=dist/main.js]
//
// For each first-object size it prints: GetObject's time to first and to last byte (the
// difference is what reading the object whole adds before the first byte), and the gateway's
// time to first byte for a zipball starting with an object of that size.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, "").split("=");
    return [k, v ?? "true"];
  }),
);
const here = dirname(fileURLToPath(import.meta.url));
const MAIN = resolve(args.main ?? join(here, "..", "dist", "main.js"));
const REPS = Number(args.reps ?? 15);
const info = JSON.parse(readFileSync(args.s3, "utf8"));
const BUCKET = "zipgate-threshold";
const KEY = "bench-key-0123456789abcdef";
const SIZES = [4 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const client = new S3Client({
  endpoint: info.endpoint,
  region: info.region,
  credentials: info.admin,
  forcePathStyle: true,
  requestChecksumCalculation: "WHEN_REQUIRED",
});
await client.send(new CreateBucketCommand({ Bucket: BUCKET })).catch(() => {});
for (const size of SIZES) {
  await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `t${size}/a-first.bin`, Body: randomBytes(size) }));
  await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `t${size}/b-small.txt`, Body: "small" }));
}

async function getTimes(key) {
  const t0 = performance.now();
  const out = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  let first;
  for await (const _ of out.Body) first ??= performance.now() - t0;
  return { first, last: performance.now() - t0 };
}

const child = spawn(process.execPath, [MAIN], {
  env: {
    ...process.env,
    MALLOC_MMAP_THRESHOLD_: "131072",
    ZIPGATE_STORAGE: `s3://${BUCKET}`,
    AWS_ENDPOINT_URL_S3: info.endpoint,
    AWS_REGION: info.region,
    AWS_ACCESS_KEY_ID: info.admin.accessKeyId,
    AWS_SECRET_ACCESS_KEY: info.admin.secretAccessKey,
    ZIPGATE_S3_FORCE_PATH_STYLE: "true",
    ZIPGATE_API_KEYS: KEY,
    ZIPGATE_SIGNING_SECRET: "bench-signing-secret-0123456789abcdef",
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
const base = `http://127.0.0.1:${port}`;

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

try {
  for (const size of SIZES) {
    const g = [];
    for (let i = 0; i < REPS; i++) g.push(await getTimes(`t${size}/a-first.bin`));
    // Each round a new version of the first object (new ETag): nothing is known or recorded of it yet.
    const t = [];
    for (let i = 0; i < REPS; i++) {
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `t${size}/a-first.bin`, Body: randomBytes(size) }));
      const res = await fetch(`${base}/v2/zipball`, {
        method: "POST",
        headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ objects: [{ folder: `/t${size}` }] }),
      });
      const text = await res.text();
      if (res.status !== 201) throw new Error(text);
      const u = new URL(JSON.parse(text).data.urls.url);
      t.push(await ttfb(base + u.pathname + u.search));
    }
    const row = {
      size,
      get_first_byte_ms: +median(g.map((x) => x.first)).toFixed(2),
      get_last_byte_ms: +median(g.map((x) => x.last)).toFixed(2),
      gateway_ttfb_ms: +median(t).toFixed(2),
    };
    console.log(JSON.stringify(row));
  }
} finally {
  child.kill("SIGKILL");
}
