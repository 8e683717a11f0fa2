// The bare baseline for the S3 bench: GETs of the keys in KEYS_FILE (one per line) with the
// gateway's own SigV4 signer on node:http, IN_FLIGHT at once, bodies drained and dropped.
// Prints seconds, bytes and this process's CPU-seconds for the GETs alone.
import { readFileSync } from "node:fs";
import { Agent } from "node:http";
import { createObjectGetter } from "../../dist/storage/s3-get.js";
import { cpuSeconds } from "./proc.mjs";

const keys = readFileSync(process.env.KEYS_FILE, "utf8").split("\n");
const get = createObjectGetter({
  endpoint: process.env.ENDPOINT,
  bucket: process.env.BUCKET,
  region: process.env.REGION,
  forcePathStyle: true,
  credentials: async () => ({ accessKeyId: process.env.AK, secretAccessKey: process.env.SK }),
  agent: new Agent({ keepAlive: true, maxSockets: 1024 }),
  maxAttempts: 4,
  connectTimeoutMs: 5000,
  bufferBelow: 0,
});
const cpu0 = cpuSeconds(process.pid);
const t0 = performance.now();
let next = 0;
let bytes = 0;
await Promise.all(
  Array.from({ length: Number(process.env.IN_FLIGHT) }, async () => {
    while (next < keys.length) {
      const key = keys[next++];
      const body = await get({ key, signal: new AbortController().signal });
      for await (const chunk of body) bytes += chunk.length;
    }
  }),
);
process.stdout.write(JSON.stringify({ s: (performance.now() - t0) / 1000, bytes, cpu: cpuSeconds(process.pid) - cpu0 }));
