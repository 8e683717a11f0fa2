import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";

const README = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const BASE = { ZIPGATE_API_KEYS: "test-key-0123456789abcdef", ZIPGATE_SIGNING_SECRET: "test-signing-secret-0123456789abcdef" };

/** `2 min`, `65 s`, `1 GiB` as the README writes them, in the settings' own syntax (milliseconds for `_MS` ones). */
function asSetting(name: string, text: string): string {
  const secs = /^(\d+) s$/.exec(text.trim());
  if (name.endsWith("_MS") && secs) return String(Number(secs[1]) * 1000);
  return text
    .trim()
    .replace(/^(\d+) min$/, "$1m")
    .replace(/^(\d+) s$/, "$1s");
}

/** Every (setting, documented default) pair: the settings table's last column, and `NAME` (value) in the limits table. */
function documented(): Array<{ name: string; value: string; where: string }> {
  const out: Array<{ name: string; value: string; where: string }> = [];
  for (const line of README.split("\n")) {
    if (!line.startsWith("| `ZIPGATE_")) continue;
    const cells = line.split(/(?<!\\)\|/).map((c) => c.trim());
    const names = [...(cells[1] ?? "").matchAll(/`(ZIPGATE_[A-Z0-9_]+)`/g)].map((m) => m[1] as string);
    const values = [...(cells.at(-2) ?? "").matchAll(/`([^`]+)`/g)].map((m) => m[1] as string);
    if (values.length === names.length) for (const [i, name] of names.entries()) out.push({ name, value: values[i] as string, where: "settings" });
  }
  const limits = README.slice(README.indexOf("## Limits, timeouts and shutdown"));
  const table = limits.slice(0, limits.indexOf("\n\n", limits.indexOf("| what |")));
  for (const m of table.matchAll(/`(ZIPGATE_[A-Z0-9_]+)` \(([^)]+)\)/g)) out.push({ name: m[1] as string, value: m[2] as string, where: "limits" });
  return out;
}

describe("the README's settings and limits tables", () => {
  const pairs = documented();
  const defaults = loadConfig(BASE);

  it("document the defaults of many settings (the parse found them)", () => {
    expect(pairs.filter((p) => p.where === "settings").length).toBeGreaterThan(25);
    expect(pairs.filter((p) => p.where === "limits").length).toBeGreaterThan(8);
    expect(pairs.map((p) => p.name)).toContain("ZIPGATE_KEEPALIVE_TIMEOUT");
  });

  // Setting a variable to the default the README gives must change nothing.
  const checked = pairs.filter(
    (p) => !/^(none|generated|false)/.test(p.value) && !p.value.includes("HOST") && !p.value.includes("/") && p.name !== "ZIPGATE_STORAGE",
  );
  it.each(checked.map((p) => [p.where, p.name, p.value] as const))("%s: %s = %s is the default the code uses", (_where, name, value) => {
    expect(loadConfig({ ...BASE, [name]: asSetting(name, value) })).toEqual(defaults);
  });
});
