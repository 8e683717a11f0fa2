import { execFile } from "node:child_process";
import { mkdir, open, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { computeLayout } from "../../src/archive/layout.js";
import { openArchiveRange } from "../../src/archive/stream.js";
import { collect, tempDir, writeTree } from "../helpers/archive.js";
import { local, type RunningGateway, startGateway } from "../helpers/gateway.js";
import { type ExpectedEntry, SEVEN_ZIP, sha256, verifyWithUnzippers } from "../helpers/unzippers.js";

const run = promisify(execFile);
const MTIME = 1_700_000_000;

/** Creates a zipball through the API, downloads it to a file, checks Content-Length = bytes. */
async function downloadZip(gw: RunningGateway, objects: unknown[], file: string): Promise<{ length: number; headers: Headers }> {
  const res = await gw.post("/v2/zipball", { objects });
  expect(res.status, await res.clone().text()).toBe(201);
  const { data } = (await res.json()) as { data: { urls: { url: string } } };
  const url = local(gw, data.urls.url);
  const head = await fetch(url, { method: "HEAD" });
  expect(head.status).toBe(200);
  // curl writes the body to disk as a client would; --fail and the exit code catch a short body.
  await run("curl", ["-sS", "--fail", "-o", file, url], { maxBuffer: 1024 * 1024 });
  const size = (await stat(file)).size;
  expect(size).toBe(Number(head.headers.get("content-length")));
  return { length: size, headers: head.headers };
}

describe("archive shapes, opened by Info-ZIP unzip, 7-Zip, bsdtar and Python zipfile", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let gw: RunningGateway;
  let root: string;

  beforeAll(async () => {
    dir = await tempDir();
    root = join(dir.path, "store");
    gw = await startGateway({ root, env: { ZIPGATE_MAX_FILES: "70000", ZIPGATE_MAX_BYTES: "10 GiB" } });
  });
  afterAll(async () => {
    await gw.close();
    await dir.cleanup();
  });

  it("the empty archive", async () => {
    const layout = computeLayout([]);
    const body = await collect(await openArchiveRange({ layout, read: () => Promise.reject(new Error("no entries")) }));
    expect(body.length).toBe(layout.total);
    const zip = join(dir.path, "empty.zip");
    await writeFile(zip, body);
    await verifyWithUnzippers(zip, [], { extract: false }).catch((err: { code?: number; stdout?: string }) => {
      // Info-ZIP reports an empty archive with exit code 1 and this warning; nothing else may fail.
      if (!(err.code === 1 && /zipfile is empty/.test(err.stdout ?? ""))) throw err;
    });
    await run(SEVEN_ZIP, ["t", zip]);
    await run("bsdtar", ["-tf", zip]);
  });

  it("empty files, directories only, and UTF-8 names", async () => {
    await writeTree(
      join(root, "shapes"),
      {
        "empty.txt": "",
        "only-dirs/a/b/": "",
        "only-dirs/c/": "",
        "unicode/Grüße aus Köln.txt": "grüße",
        "unicode/日本語のファイル.md": "こんにちは",
        "unicode/emoji 🎉.txt": "party",
      },
      MTIME,
    );
    const zip = join(dir.path, "shapes.zip");
    await downloadZip(gw, [{ path: "/shapes/empty.txt" }, { folder: "/shapes/only-dirs" }, { folder: "/shapes/unicode" }], zip);
    await verifyWithUnzippers(zip, [
      { name: "empty.txt", size: 0, mtime: MTIME },
      { name: "only-dirs/", dir: true },
      { name: "only-dirs/a/", dir: true },
      { name: "only-dirs/a/b/", dir: true },
      { name: "only-dirs/c/", dir: true },
      { name: "unicode/", dir: true },
      { name: "unicode/Grüße aus Köln.txt", sha256: sha256("grüße"), mtime: MTIME },
      { name: "unicode/emoji 🎉.txt", sha256: sha256("party"), mtime: MTIME },
      { name: "unicode/日本語のファイル.md", sha256: sha256("こんにちは"), mtime: MTIME },
    ]);
  });

  it("65,535 entries and 65,536+ entries (zip64 end records by count)", async () => {
    for (const count of [65_535, 65_537]) {
      const folder = join(root, `many-${count}`);
      await mkdir(folder, { recursive: true });
      const expected: ExpectedEntry[] = [{ name: `many-${count}/`, dir: true }];
      // count - 1 files plus the folder's own directory entry.
      for (let i = 0; i < count - 1; i++) {
        const name = `f${String(i).padStart(5, "0")}`;
        await writeFile(join(folder, name), i % 100 === 0 ? name : "");
        expected.push({ name: `many-${count}/${name}`, size: i % 100 === 0 ? name.length : 0 });
      }
      const zip = join(dir.path, `many-${count}.zip`);
      await downloadZip(gw, [{ folder: `/many-${count}` }], zip);
      await verifyWithUnzippers(zip, expected, { extract: false });
    }
  });

  it("an entry over 4 GiB and offsets past 4 GiB (generated sparse, not stored in git)", async () => {
    const big = join(root, "big", "huge.bin");
    await mkdir(join(root, "big"), { recursive: true });
    const size = 2 ** 32 + 4096;
    const fh = await open(big, "w");
    // Sparse: a marker at the start and the end, zeros between.
    await fh.write(Buffer.from("start"), 0, 5, 0);
    await fh.write(Buffer.from("end"), 0, 3, size - 3);
    await fh.close();
    await utimes(big, MTIME, MTIME);
    await writeTree(join(root, "big"), { "after-1.txt": "after one", "after-2.txt": "after two" }, MTIME);
    const zip = join(dir.path, "big.zip");
    const { length } = await downloadZip(gw, [{ path: "/big/huge.bin" }, { path: "/big/after-1.txt" }, { path: "/big/after-2.txt" }], zip);
    expect(length).toBeGreaterThan(2 ** 32);
    await verifyWithUnzippers(
      zip,
      [
        { name: "huge.bin", size, mtime: MTIME },
        { name: "after-1.txt", sha256: sha256("after one"), mtime: MTIME },
        { name: "after-2.txt", sha256: sha256("after two"), mtime: MTIME },
      ],
      { extract: false },
    );
  });
});
