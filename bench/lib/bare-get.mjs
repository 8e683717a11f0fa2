// The bare baseline for the S3 bench: GETs of the keys in KEYS_FILE (one per line) with the
// gateway's own SigV4 signer on node:http, IN_FLIGHT at once, bodies drained and dropped.
// Prints seconds, bytes and this process's CPU-seconds for the GETs alone.
import { readFileSync } from "node:fs";
import { getterFromEnv } from "./getter.mjs";
import { cpuSeconds } from "./proc.mjs";

const keys = readFileSync(process.env.KEYS_FILE, "utf8").split("\n");
const get = getterFromEnv({ maxSockets: 1024 });
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
