import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const VERIFY_PY = fileURLToPath(new URL("./verify.py", import.meta.url));
const MAX_BUFFER = 256 * 1024 * 1024;

/** What an archive must hold. Files carry their expected SHA-256. */
export interface ExpectedEntry {
  name: string;
  dir?: boolean;
  size?: number;
  sha256?: string;
  /** Seconds since the epoch. */
  mtime?: number;
}

export const SEVEN_ZIP = existsSync("/usr/bin/7zz") ? "7zz" : "7z";

export function sha256(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Python zipfile: names, sizes, CRC (read every byte), exact UT mtimes. */
export async function pythonEntries(
  zip: string,
): Promise<Array<{ name: string; size: number; crc: number; sha256: string; mtime: number | null; dir: boolean }>> {
  const { stdout } = await run("python3", [VERIFY_PY, zip], { maxBuffer: MAX_BUFFER });
  return stdout.trim() === ""
    ? []
    : stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
}

async function walk(dir: string, base = dir): Promise<Array<{ name: string; dir: boolean; path: string }>> {
  const out: Array<{ name: string; dir: boolean; path: string }> = [];
  for (const d of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, d.name);
    const name = relative(base, path).split("\\").join("/");
    if (d.isDirectory()) {
      out.push({ name: `${name}/`, dir: true, path });
      out.push(...(await walk(path, base)));
    } else out.push({ name, dir: false, path });
  }
  return out;
}

/** Extracted tree compared with what is expected: names, bytes and mtimes. */
async function checkExtracted(tool: string, dir: string, expected: readonly ExpectedEntry[]): Promise<void> {
  const found = await walk(dir);
  const byName = new Map(found.map((f) => [f.name.normalize("NFC"), f]));
  for (const e of expected) {
    const f = byName.get(e.name.normalize("NFC"));
    if (!f) throw new Error(`${tool}: ${e.name} missing after extraction (found: ${[...byName.keys()].slice(0, 20).join(", ")})`);
    if (Boolean(e.dir) !== f.dir) throw new Error(`${tool}: ${e.name} extracted as the wrong kind`);
    if (f.dir) continue;
    const st = await stat(f.path);
    if (e.size !== undefined && st.size !== e.size) throw new Error(`${tool}: ${e.name} has ${st.size} bytes, want ${e.size}`);
    if (e.sha256 !== undefined && sha256(await readFile(f.path)) !== e.sha256) throw new Error(`${tool}: ${e.name} content differs`);
    if (e.mtime !== undefined && Math.floor(st.mtimeMs / 1000) !== e.mtime)
      throw new Error(`${tool}: ${e.name} mtime ${Math.floor(st.mtimeMs / 1000)}, want ${e.mtime}`);
  }
  const files = found.filter((f) => !f.dir).length;
  const want = expected.filter((e) => !e.dir).length;
  if (files !== want) throw new Error(`${tool}: ${files} files extracted, want ${want}`);
}

export interface VerifyOptions {
  /** Extract and compare bytes and mtimes (skip for huge archives, which are only tested). */
  extract?: boolean;
}

/**
 * Opens the archive with Info-ZIP unzip, 7-Zip, bsdtar and Python's zipfile,
 * and checks every one agrees with `expected` (names, bytes, CRC, mtimes).
 */
export async function verifyWithUnzippers(zip: string, expected: readonly ExpectedEntry[], options: VerifyOptions = {}): Promise<void> {
  const extract = options.extract ?? true;
  // Python: names, sizes, CRCs, exact timestamps from the UT extra.
  const py = await pythonEntries(zip);
  const pyNames = py.map((e) => e.name.normalize("NFC")).sort();
  const wantNames = expected.map((e) => e.name.normalize("NFC")).sort();
  if (JSON.stringify(pyNames) !== JSON.stringify(wantNames)) {
    throw new Error(`zipfile names differ:\n got ${pyNames.slice(0, 30).join(" | ")}\nwant ${wantNames.slice(0, 30).join(" | ")}`);
  }
  const byName = new Map(py.map((e) => [e.name.normalize("NFC"), e]));
  for (const e of expected) {
    const p = byName.get(e.name.normalize("NFC"));
    if (!p) throw new Error(`zipfile: ${e.name} missing`);
    if (Boolean(e.dir) !== p.dir) throw new Error(`zipfile: ${e.name} kind differs`);
    if (e.size !== undefined && p.size !== e.size) throw new Error(`zipfile: ${e.name} size ${p.size}, want ${e.size}`);
    if (e.sha256 !== undefined && p.sha256 !== e.sha256) throw new Error(`zipfile: ${e.name} content differs`);
    if (e.mtime !== undefined && p.mtime !== e.mtime) throw new Error(`zipfile: ${e.name} mtime ${p.mtime}, want ${e.mtime}`);
  }

  // Info-ZIP and 7-Zip test every CRC.
  await run("unzip", ["-tq", zip], { maxBuffer: MAX_BUFFER });
  await run(SEVEN_ZIP, ["t", "-bd", zip], { maxBuffer: MAX_BUFFER });
  if (!extract) {
    // bsdtar reads every entry (checking each CRC) without writing them to disk.
    await new Promise<void>((resolve, reject) => {
      const child = spawn("bsdtar", ["-xOf", zip], { stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      child.stderr.on("data", (c: Buffer) => {
        err += c.toString();
      });
      child.on("error", reject);
      child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`bsdtar -xOf exited ${code}: ${err}`))));
    });
    const { stdout } = await run("bsdtar", ["-tf", zip], { maxBuffer: MAX_BUFFER });
    const listed = stdout.split("\n").filter(Boolean).length;
    if (listed !== expected.length) throw new Error(`bsdtar lists ${listed} entries, want ${expected.length}`);
    return;
  }
  const work = await mkdtemp(join(tmpdir(), "zipgate-verify-"));
  try {
    const tools: Array<[string, string, string[]]> = [
      ["unzip", "unzip", ["-qq", zip, "-d"]],
      ["7z", SEVEN_ZIP, ["x", "-bd", "-y", zip]],
      ["bsdtar", "bsdtar", ["-xf", zip, "-C"]],
    ];
    for (const [label, cmd, args] of tools) {
      const dir = join(work, label);
      await run("mkdir", ["-p", dir]);
      const full = label === "7z" ? [...args, `-o${dir}`] : [...args, dir];
      await run(cmd, full, { maxBuffer: MAX_BUFFER, env: { ...process.env, LANG: "C.UTF-8", LC_ALL: "C.UTF-8" } });
      await checkExtracted(label, dir, expected);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
