// Test data, generated fresh in a temp folder: real bytes on disk (no sparse files, which
// would read faster than data), random-ish so no two MiB are identical.
import { randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";

const MiB = 1 << 20;

/** What to generate for a mode. */
export function dataPlan(quick) {
  return {
    largeCount: 4,
    largeBytes: (quick ? 128 : 512) * MiB,
    smallCount: 10_000,
    smallBytes: 4 * 1024,
    manyCount: 100_000,
    manyBytes: 100,
  };
}

const pad = (n, w) => String(n).padStart(w, "0");

/**
 * Writes the objects under `root` (unless a previous run left the same plan there) and
 * returns the sets: name -> keys (relative to root), plus what zipgate is asked for.
 */
export function generate(root, plan, log) {
  const marker = join(root, ".bench-plan.json");
  let done = false;
  try {
    done = readFileSync(marker, "utf8") === JSON.stringify(plan);
  } catch {}
  const large = Array.from({ length: plan.largeCount }, (_, i) => `large/big${i}.bin`);
  const small = Array.from({ length: plan.smallCount }, (_, i) => `small/f${pad(i, 5)}.bin`);
  const many = Array.from({ length: plan.manyCount }, (_, i) => `many/d${pad(Math.floor(i / 1000), 3)}/f${pad(i, 6)}.bin`);
  if (!done) {
    const t0 = Date.now();
    const block = randomBytes(MiB);
    mkdirSync(join(root, "large"), { recursive: true });
    large.forEach((key, f) => {
      const fd = openSync(join(root, key), "w");
      for (let i = 0; i < plan.largeBytes / MiB; i++) {
        block.writeUInt32LE(f, 0); // file and MiB counters: no two MiB alike
        block.writeUInt32LE(i, 4);
        writeSync(fd, block);
      }
      closeSync(fd);
    });
    const pool = randomBytes(MiB + plan.smallBytes);
    mkdirSync(join(root, "small"), { recursive: true });
    for (const [i, key] of small.entries()) writeFileSync(join(root, key), pool.subarray((i * 4099) % MiB, ((i * 4099) % MiB) + plan.smallBytes));
    for (let d = 0; d * 1000 < plan.manyCount; d++) mkdirSync(join(root, `many/d${pad(d, 3)}`), { recursive: true });
    for (const [i, key] of many.entries()) writeFileSync(join(root, key), pool.subarray((i * 97) % MiB, ((i * 97) % MiB) + plan.manyBytes));
    writeFileSync(marker, JSON.stringify(plan));
    log(
      `generated ${plan.largeCount} × ${plan.largeBytes / MiB} MiB, ${plan.smallCount} × ${plan.smallBytes / 1024} KiB, ${plan.manyCount} × ${plan.manyBytes} B in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
  } else {
    log(`reusing the data in ${root}`);
  }
  const half = large.slice(0, Math.ceil(large.length / 2));
  return {
    // name -> { keys (for the other servers), objects (zipgate's request), files, bytes }
    large: { keys: large, objects: [{ folder: "/large" }], files: large.length, bytes: large.length * plan.largeBytes },
    half: { keys: half, objects: half.map((k) => ({ path: `/${k}` })), files: half.length, bytes: half.length * plan.largeBytes },
    small: { keys: small, objects: [{ folder: "/small" }], files: small.length, bytes: small.length * plan.smallBytes },
    many: { keys: many, objects: [{ folder: "/many" }], files: many.length, bytes: many.length * plan.manyBytes },
  };
}
