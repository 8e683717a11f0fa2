// Medians, alternating repetitions, and the table.

export function median(values) {
  const v = values.filter((x) => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** Median of every numeric field over the runs. */
export function medians(runs) {
  const out = {};
  for (const key of Object.keys(runs[0] ?? {})) {
    if (typeof runs[0][key] === "number") out[key] = median(runs.map((r) => r[key]));
  }
  return out;
}

/**
 * One warm-up run per contender, then `reps` rounds; within a round every contender runs
 * once, the order rotating by one each round (zipgate, copy, naive, zs; copy, naive, zs,
 * zipgate; ...). `once(id, round)` returns a flat object of numbers.
 */
export async function alternate(ids, { warmup, reps, once, log }) {
  const runs = Object.fromEntries(ids.map((id) => [id, []]));
  for (let w = 0; w < warmup; w++) for (const id of ids) await once(id, "warm-up");
  for (let r = 0; r < reps; r++) {
    const order = ids.map((_, i) => ids[(i + r) % ids.length]);
    for (const id of order) {
      const m = await once(id, r);
      runs[id].push(m);
      log?.(id, r, m);
    }
  }
  return runs;
}

export function fmt(value, digits) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (typeof value === "string") return value;
  if (digits === undefined) digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A plain-text table: header row, rows of strings; numbers right-aligned. */
export function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i] ?? "").length)));
  const line = (cells) =>
    cells
      .map((c, i) => {
        const s = String(c ?? "");
        return i === 0 ? s.padEnd(widths[i]) : s.padStart(widths[i]);
      })
      .join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}
