import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const LAUNCHER = fileURLToPath(new URL("../../bin/zipgate", import.meta.url));
const MAIN = fileURLToPath(new URL("../../dist/main.js", import.meta.url));

// bin/zipgate picks Node flags by store and execs node. Here `node` on PATH is a stand-in that
// prints the arguments it was given, so the choice can be read; the real gateway is started
// through the launcher by the last case.
const fake = mkdtempSync(join(tmpdir(), "zipgate-launcher-"));
writeFileSync(join(fake, "node"), '#!/bin/sh\nprintf "%s\\n" "$@"\n');
chmodSync(join(fake, "node"), 0o755);
afterAll(() => rmSync(fake, { recursive: true, force: true }));

function argsFor(env: Record<string, string>): string[] {
  const out = execFileSync(LAUNCHER, ["--version"], { env: { PATH: `${fake}:/usr/bin:/bin`, ...env }, encoding: "utf8" });
  return out.trim().split("\n");
}

describe("bin/zipgate", () => {
  it("starts an S3 store's gateway with a small young generation, a folder store's with none, and takes ZIPGATE_NODE_FLAGS instead", () => {
    expect(argsFor({ ZIPGATE_STORAGE: "s3://bucket/prefix" })).toEqual([
      "--max-semi-space-size=1",
      "--min-semi-space-size=1",
      "--initial-old-space-size=256",
      MAIN,
      "--version",
    ]);
    expect(argsFor({ ZIPGATE_STORAGE: "/srv/files" })).toEqual([MAIN, "--version"]);
    expect(argsFor({})).toEqual([MAIN, "--version"]);
    expect(argsFor({ ZIPGATE_STORAGE: "s3://b", ZIPGATE_NODE_FLAGS: "--max-old-space-size=512" })).toEqual(["--max-old-space-size=512", MAIN, "--version"]);
    expect(argsFor({ ZIPGATE_STORAGE: "s3://b", ZIPGATE_NODE_FLAGS: "" })).toEqual([MAIN, "--version"]);
  });

  it("runs the real gateway with the Node on PATH, flags and all", () => {
    const out = execFileSync(LAUNCHER, ["--version"], { env: { ...process.env, ZIPGATE_STORAGE: "s3://bucket" }, encoding: "utf8" });
    expect(out.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
