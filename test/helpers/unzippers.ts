import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { checkZip } from "./zip-rules.js";

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
  // Every byte against the structural rules readers depend on (zip-rules.ts).
  await checkZip(zip);
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

const JAVA_READER = fileURLToPath(new URL("./ZipStreamReader.java", import.meta.url));

/** One entry as a streaming reader reported it. */
interface StreamedEntry {
  name: string;
  dir: boolean;
  size: number;
  sha256: string;
}

/**
 * Runs `cmd` with the archive piped into its standard input (never a seekable file); resolves
 * with its standard output, or with its standard error when the output is discarded.
 */
function piped(cmd: string, args: string[], zip: string, options: { cwd?: string; discard?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: options.cwd,
      stdio: ["pipe", options.discard ? "ignore" : "pipe", "pipe"],
      env: { ...process.env, LANG: "C.UTF-8", LC_ALL: "C.UTF-8" },
    });
    let out = "";
    let err = "";
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
    });
    const stdin = child.stdin as NonNullable<typeof child.stdin>;
    child.stderr?.on("data", (c: Buffer) => {
      err += c.toString();
    });
    // A reader that stops early closes the pipe: not a failure of ours, its exit code tells.
    stdin.on("error", () => {});
    createReadStream(zip).pipe(stdin);
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve(options.discard ? err : out) : reject(new Error(`${cmd} ${args.join(" ")} exited ${code}: ${err.slice(0, 2000)}`)),
    );
  });
}

/** Java's java.util.zip.ZipInputStream reading the archive from a pipe. */
export async function javaStreamEntries(zip: string): Promise<StreamedEntry[]> {
  return jsonLines(await piped("java", [JAVA_READER], zip));
}

function jsonLines(out: string): StreamedEntry[] {
  return out
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as StreamedEntry);
}

const READERS = fileURLToPath(new URL("./readers/", import.meta.url));
/** Built by scripts/rust-reader.sh (test.sh runs it). */
const RUST_READER = fileURLToPath(new URL("../../.cache/rust-reader/target/release/zip-stream-reader", import.meta.url));

/**
 * Readers from other ecosystems, each fed the archive through a pipe and printing the
 * entries as JSON lines (test/helpers/readers/): the `zip` crate's read_zipfile_from_stream
 * (Rust, 0.6 from Debian), rubyzip's Zip::InputStream (Ruby; it seeks, so it reads the pipe
 * through a forward-only window, see the script), busybox `unzip -` (extracts; the wrapper
 * hashes what it wrote) and zip4j's ZipInputStream (Java).
 */
const PIPE_READERS = {
  "rust zip stream": () => [RUST_READER, []],
  "rubyzip InputStream": () => ["ruby", [join(READERS, "zip_stream_reader.rb")]],
  "busybox unzip -": () => ["python3", [join(READERS, "busybox_unzip_reader.py")]],
  "zip4j ZipInputStream": () => ["java", ["-cp", "/usr/share/java/zip4j.jar", join(READERS, "Zip4jStreamReader.java")]],
} as const satisfies Record<string, () => [string, string[]]>;

/** One of the readers above on the archive, from a pipe. */
export async function pipeReaderEntries(reader: keyof typeof PIPE_READERS, zip: string): Promise<StreamedEntry[]> {
  const [cmd, args] = PIPE_READERS[reader]();
  return jsonLines(await piped(cmd, [...args], zip));
}

/** fflate's streaming Unzip fed the archive chunk by chunk, as from a pipe. */
export async function fflateStreamEntries(zip: string): Promise<StreamedEntry[]> {
  const { Unzip, UnzipInflate, UnzipPassThrough } = await import("fflate");
  const entries: StreamedEntry[] = [];
  let failure: unknown;
  const unzip = new Unzip((file) => {
    const hash = createHash("sha256");
    const entry: StreamedEntry = { name: file.name, dir: file.name.endsWith("/"), size: 0, sha256: "" };
    entries.push(entry);
    file.ondata = (err, data, final) => {
      if (err) failure ??= err;
      if (data) {
        hash.update(data);
        entry.size += data.length;
      }
      if (final) entry.sha256 = hash.digest("hex");
    };
    file.start();
  });
  unzip.register(UnzipPassThrough);
  unzip.register(UnzipInflate);
  for await (const chunk of createReadStream(zip, { highWaterMark: 64 * 1024 })) unzip.push(chunk as Buffer, false);
  unzip.push(new Uint8Array(0), true);
  if (failure) throw failure;
  return entries;
}

/** Compares a streaming reader's entries with exactly the expected ones: names, kinds, sizes and bytes, in order of the archive. */
function checkStreamed(tool: string, got: readonly StreamedEntry[], expected: readonly ExpectedEntry[]): void {
  const names = got.map((e) => e.name.normalize("NFC"));
  const want = expected.map((e) => e.name.normalize("NFC"));
  if (JSON.stringify([...names].sort()) !== JSON.stringify([...want].sort())) {
    throw new Error(`${tool} names differ:\n got ${names.slice(0, 30).join(" | ")}\nwant ${want.slice(0, 30).join(" | ")}`);
  }
  const byName = new Map(got.map((e) => [e.name.normalize("NFC"), e]));
  for (const e of expected) {
    const g = byName.get(e.name.normalize("NFC")) as StreamedEntry;
    if (Boolean(e.dir) !== g.dir) throw new Error(`${tool}: ${e.name} kind differs`);
    if (e.size !== undefined && g.size !== e.size) throw new Error(`${tool}: ${e.name} has ${g.size} bytes, want ${e.size}`);
    if (e.sha256 !== undefined && g.sha256 !== e.sha256) throw new Error(`${tool}: ${e.name} content differs`);
  }
}

/** The streaming readers, by name: each reads the archive front to back, never its central directory. */
export const STREAMING_READERS = [
  "java ZipInputStream",
  "bsdtar -xf -",
  "fflate Unzip",
  "rust zip stream",
  "rubyzip InputStream",
  "busybox unzip -",
  "zip4j ZipInputStream",
] as const;

export type StreamingReader = (typeof STREAMING_READERS)[number];

/**
 * Reads the archive from a pipe with every streaming reader (or `readers`), and checks that
 * each sees exactly `expected` (which should be the central directory's entries): names,
 * kinds, sizes and bytes (and mtimes, for bsdtar). `expected` must give `sha256` or `size`
 * for every file. With `extract: false`, bsdtar reads every entry (checking CRCs) without
 * writing it, and its listing is compared instead, and busybox (which can only extract) is
 * left out.
 */
export async function verifyWithStreamingReaders(
  zip: string,
  expected: readonly ExpectedEntry[],
  options: VerifyOptions & { readers?: readonly StreamingReader[] } = {},
): Promise<void> {
  const readers = options.readers ?? STREAMING_READERS;
  await checkZip(zip);
  if (readers.includes("java ZipInputStream")) checkStreamed("java ZipInputStream", await javaStreamEntries(zip), expected);
  if (readers.includes("fflate Unzip")) checkStreamed("fflate Unzip", await fflateStreamEntries(zip), expected);
  for (const reader of Object.keys(PIPE_READERS) as Array<keyof typeof PIPE_READERS>) {
    if (!readers.includes(reader) || (reader === "busybox unzip -" && options.extract === false)) continue;
    checkStreamed(reader, await pipeReaderEntries(reader, zip), expected);
  }
  if (!readers.includes("bsdtar -xf -")) return;
  if (options.extract === false) {
    // One pass: the data to nowhere (every CRC checked), the names listed on stderr ("x name").
    const listed = (await piped("bsdtar", ["-xvOf", "-"], zip, { discard: true }))
      .split("\n")
      .filter((l) => l.startsWith("x "))
      .map((l) => l.slice(2));
    const want = expected.map((e) => e.name.normalize("NFC")).sort();
    if (JSON.stringify(listed.map((n) => n.normalize("NFC")).sort()) !== JSON.stringify(want))
      throw new Error(`bsdtar -xvOf - lists ${listed.length} entries, want ${want.length}`);
    return;
  }
  const work = await mkdtemp(join(tmpdir(), "zipgate-stream-"));
  try {
    await piped("bsdtar", ["-xf", "-"], zip, { cwd: work });
    await checkExtracted("bsdtar -xf -", work, expected);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** How many file entries of the archive (by its central directory) have the classic form, and how many a data descriptor (bit 3). */
export async function entryForms(zip: string): Promise<{ classic: number; descriptor: number }> {
  await checkZip(zip);
  const script =
    "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nf = [i for i in z.infolist() if not i.is_dir()]\nd = sum(1 for i in f if i.flag_bits & 8)\nprint(len(f) - d, d)";
  const { stdout } = await run("python3", ["-c", script, zip]);
  const [classic, descriptor] = stdout.trim().split(" ").map(Number);
  return { classic: classic as number, descriptor: descriptor as number };
}
