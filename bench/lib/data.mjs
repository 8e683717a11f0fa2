// Test data, generated fresh in a temp folder: real bytes on disk (no sparse files, which
// would read faster than data), random-ish so no two MiB are identical.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";

const MiB = 1 << 20;

/** What to generate for a mode. */
export function dataPlan(quick, { smallCount } = {}) {
  return {
    largeCount: 4,
    largeBytes: (quick ? 128 : 512) * MiB,
    smallCount: smallCount ?? 10_000,
    smallBytes: 4 * 1024,
    fewCount: quick ? 1_000 : 2_000,
    manyCount: 100_000,
    manyBytes: 100,
    textCount: quick ? 64 : 256,
    textBytes: MiB,
  };
}

const pad = (n, w) => String(n).padStart(w, "0");

/**
 * Writes the objects of the `parts` asked for ("large", "small", "many") under `root`,
 * unless a previous run left the same plan there, and returns the sets: name -> keys
 * (relative to root), plus what zipgate is asked for.
 */
export function generate(root, plan, parts, log) {
  const large = Array.from({ length: plan.largeCount }, (_, i) => `large/big${i}.bin`);
  const small = Array.from({ length: plan.smallCount }, (_, i) => `small/f${pad(i, 5)}.bin`);
  const few = Array.from({ length: plan.fewCount }, (_, i) => `few/f${pad(i, 5)}.bin`);
  const many = Array.from({ length: plan.manyCount }, (_, i) => `many/d${pad(Math.floor(i / 1000), 3)}/f${pad(i, 6)}.bin`);
  const text = Array.from({ length: plan.textCount }, (_, i) => `text/t${pad(i, 4)}.txt`);
  const pool = randomBytes(MiB + plan.smallBytes);
  const writers = {
    large() {
      const block = randomBytes(MiB);
      mkdirSync(join(root, "large"), { recursive: true });
      for (const [f, key] of large.entries()) {
        const fd = openSync(join(root, key), "w");
        for (let i = 0; i < plan.largeBytes / MiB; i++) {
          block.writeUInt32LE(f, 0); // file and MiB counters: no two MiB alike
          block.writeUInt32LE(i, 4);
          writeSync(fd, block);
        }
        closeSync(fd);
      }
    },
    small() {
      mkdirSync(join(root, "small"), { recursive: true });
      for (const [i, key] of small.entries()) writeFileSync(join(root, key), pool.subarray((i * 4099) % MiB, ((i * 4099) % MiB) + plan.smallBytes));
    },
    text() {
      // Log-like lines: compressible about 4:1, as text and JSON are, with no two files alike.
      mkdirSync(join(root, "text"), { recursive: true });
      const words = ["GET", "POST", "/api/v2/items", "200", "404", "user", "session", "cache", "miss", "hit", "zip", "store", "read", "ms"];
      for (const [f, key] of text.entries()) {
        const lines = [];
        let bytes = 0;
        for (let n = 0; bytes < plan.textBytes; n++) {
          const r = pool.readUInt32LE((f * 7919 + n * 13) % (MiB - 4));
          const line = `${f}:${n} ${words[r % words.length]} ${words[(r >>> 8) % words.length]} ${r.toString(36)} ${(r >>> 16) % 1000}ms\n`;
          lines.push(line);
          bytes += line.length;
        }
        writeFileSync(join(root, key), lines.join("").slice(0, plan.textBytes));
      }
    },
    many() {
      for (let d = 0; d * 1000 < plan.manyCount; d++) mkdirSync(join(root, `many/d${pad(d, 3)}`), { recursive: true });
      for (const [i, key] of many.entries()) writeFileSync(join(root, key), pool.subarray((i * 97) % MiB, ((i * 97) % MiB) + plan.manyBytes));
    },
  };
  const t0 = Date.now();
  const made = [];
  for (const part of parts) {
    const marker = join(root, `.bench-${part}.json`);
    let done = false;
    try {
      done = readFileSync(marker, "utf8") === JSON.stringify(plan);
    } catch {}
    if (done) continue;
    writers[part]();
    writeFileSync(marker, JSON.stringify(plan));
    made.push(part);
  }
  // Write the new data back now: pages still dirty would be flushed during the first rounds.
  if (made.length > 0) execFileSync("sync");
  if (made.length > 0) log(`generated the ${made.join(", ")} objects in ${((Date.now() - t0) / 1000).toFixed(1)} s (${root})`);
  if (made.length < parts.length) log(`reused the ${parts.filter((p) => !made.includes(p)).join(", ")} objects in ${root}`);
  const half = large.slice(0, Math.ceil(large.length / 2));
  return {
    // name -> { keys (for the other servers), objects (zipgate's request), files, bytes }
    large: { keys: large, objects: [{ folder: "/large" }], files: large.length, bytes: large.length * plan.largeBytes },
    half: { keys: half, objects: half.map((k) => ({ path: `/${k}` })), files: half.length, bytes: half.length * plan.largeBytes },
    small: { keys: small, objects: [{ folder: "/small" }], files: small.length, bytes: small.length * plan.smallBytes },
    many: { keys: many, objects: [{ folder: "/many" }], files: many.length, bytes: many.length * plan.manyBytes },
    text: { keys: text, objects: [{ folder: "/text" }], files: text.length, bytes: text.length * plan.textBytes },
    // S3 only (bench/lib/s3.mjs uploads them): the first large file alone, and the first
    // `fewCount` small files again under few/, for the scenarios with added latency.
    one: { keys: large.slice(0, 1), objects: [{ path: `/${large[0]}` }], files: 1, bytes: plan.largeBytes },
    few: { keys: few, objects: [{ folder: "/few" }], files: few.length, bytes: few.length * plan.smallBytes, sources: small.slice(0, few.length) },
  };
}
