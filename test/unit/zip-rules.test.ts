import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { crc32 } from "node:zlib";
import { describe, expect, it } from "vitest";
import { centralRecord, computeLayout, endRecords, type LayoutInput, localHeader } from "../../src/archive/layout.js";
import { tempDir, writeTree } from "../helpers/archive.js";
import { checkZip, ZipRuleError } from "../helpers/zip-rules.js";

const run = promisify(execFile);
const T = 1_700_000_000_000;

/** A whole stored archive from the layout module, every file's data given. */
function build(files: Array<{ name: string; data?: Buffer; dir?: boolean; form?: "classic" | "descriptor" }>): Buffer {
  const inputs: LayoutInput[] = files.map((f) => ({ name: f.name, kind: f.dir ? "dir" : "file", size: f.data?.length ?? 0, mtimeMs: T, form: f.form }));
  const layout = computeLayout(inputs);
  const parts: Buffer[] = [];
  layout.entries.forEach((e, i) => {
    const data = files[i]?.data ?? Buffer.alloc(0);
    const crc = crc32(data);
    parts.push(localHeader(e, crc), data);
    if (e.descriptorLength > 0) {
      const d = Buffer.alloc(16);
      d.writeUInt32LE(0x08074b50, 0);
      d.writeUInt32LE(crc, 4);
      d.writeUInt32LE(data.length, 8);
      d.writeUInt32LE(data.length, 12);
      parts.push(d);
    }
  });
  for (const [i, e] of layout.entries.entries()) parts.push(centralRecord(e, crc32(files[i]?.data ?? Buffer.alloc(0))));
  parts.push(endRecords(layout));
  return Buffer.concat(parts);
}

async function problemsOf(zip: Buffer): Promise<string[]> {
  try {
    await checkZip(zip);
    return [];
  } catch (err) {
    if (err instanceof ZipRuleError) return err.problems;
    throw err;
  }
}

describe("the structural zip validator (test/helpers/zip-rules.ts)", () => {
  const files = [
    { name: "dir/", dir: true },
    { name: "dir/a.txt", data: Buffer.from("hello"), form: "classic" as const },
    { name: "dir/b.bin", data: Buffer.alloc(3000, 7) },
    { name: "empty", form: "classic" as const },
    { name: "ünï/çødé.txt", data: Buffer.from("x"), form: "classic" as const },
  ];

  it("passes our layout's archives, reporting forms", async () => {
    const report = await checkZip(build(files));
    expect(report.entries.map((e) => [e.name, e.classic])).toEqual([
      ["dir/", false],
      ["dir/a.txt", true],
      ["dir/b.bin", false],
      ["empty", true],
      ["ünï/çødé.txt", true],
    ]);
  });

  it("refuses an archive written by Python's zipfile with MS-DOS attributes", async () => {
    const dir = await tempDir();
    try {
      await writeTree(dir.path, { "a.txt": "hello hello hello hello", "sub/b.txt": "b" });
      const zip = join(dir.path, "py.zip");
      await run("python3", [
        "-c",
        "import zipfile,sys\nz=zipfile.ZipFile(sys.argv[1],'w')\nz.writestr(zipfile.ZipInfo('a.txt',(2020,1,2,3,4,6)),'hello')\nz.close()",
        zip,
      ]);
      // Python writes "made by" MS-DOS (0) for writestr entries without a mode: a rule we hold.
      const problems = await checkZip(zip).then(
        () => [],
        (err: ZipRuleError) => err.problems,
      );
      expect(problems.some((p) => p.startsWith("unix-mode:"))).toBe(true);
    } finally {
      await dir.cleanup();
    }
  });

  it("names each broken rule", async () => {
    const good = build(files);
    const layout = computeLayout(files.map((f) => ({ name: f.name, kind: f.dir ? "dir" : "file", size: f.data?.length ?? 0, mtimeMs: T, form: f.form })));
    const a = layout.entries[1]!;
    const cases: Array<[string, (z: Buffer) => void]> = [
      ["local-central:", (z) => z.writeUInt16LE(20, a.offset + 4)], // version needed differs from the central one
      ["utf8-flag:", (z) => z.writeUInt16LE(z.readUInt16LE(a.centralOffset + 8) | 0x0800, a.centralOffset + 8)],
      ["data:", (z) => z.writeUInt8(0x41, a.dataOffset)],
      ["dos-date:", (z) => z.writeUInt16LE(0x3f << 5, a.centralOffset + 14)],
      ["version-needed:", (z) => z.writeUInt16LE(45, a.centralOffset + 6)],
      ["unix-mode:", (z) => z.writeUInt32LE(0, a.centralOffset + 38)],
      ["eocd-counts:", (z) => z.writeUInt16LE(4, z.length - 22 + 8)],
      ["descriptor:", (z) => z.writeUInt32LE(0, layout.entries[2]!.dataOffset + 3000)],
    ];
    for (const [rule, corrupt] of cases) {
      const z = Buffer.from(good);
      corrupt(z);
      const problems = await problemsOf(z);
      expect(
        problems.some((p) => p.startsWith(rule)),
        `${rule} in ${problems.join("; ")}`,
      ).toBe(true);
    }
    // Trailing garbage after the end record.
    expect((await problemsOf(Buffer.concat([good, Buffer.from("x")]))).length).toBeGreaterThan(0);
  });
});
