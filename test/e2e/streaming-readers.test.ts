import { execFile } from "node:child_process";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { mkdir, open, readFile, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ZipballStore } from "../../src/manifest/store.js";
import { ManifestSigner } from "../../src/manifest/token.js";
import { crc32 } from "../../src/util/crc32.js";
import { archiveOf, tempDir, writeTree } from "../helpers/archive.js";
import { startFreezer } from "../helpers/freezer.js";
import { local, type RunningGateway, startGateway, zipballUrl } from "../helpers/gateway.js";
import { adminClient, freshPrefix, putObjects, s3Env, s3Server, s3Storage } from "../helpers/s3.js";
import { type ExpectedEntry, entryForms, sha256, verifyWithStreamingReaders, verifyWithUnzippers } from "../helpers/unzippers.js";
import { checkZip } from "../helpers/zip-rules.js";

const run = promisify(execFile);
const MTIME = 1_700_000_000;

/** A stored zip holding two files, and bytes holding a data descriptor signature: the shapes streaming readers misread. */
async function trickyBytes(): Promise<{ nested: Buffer; signature: Buffer }> {
  const work = await tempDir();
  try {
    await writeTree(work.path, { "inner-1.txt": "inner one", "inner-2.txt": "inner two" }, MTIME);
    await run("zip", ["-q", "-0", "inner.zip", "inner-1.txt", "inner-2.txt"], { cwd: work.path }).catch(async () => {
      // No Info-ZIP zip here: bsdtar writes a stored zip with descriptors just as well.
      await run("bsdtar", ["--format", "zip", "--options", "zip:compression=store", "-cf", "inner.zip", "inner-1.txt", "inner-2.txt"], { cwd: work.path });
    });
    const nested = await readFile(join(work.path, "inner.zip"));
    const signature = Buffer.concat([Buffer.from("before "), Buffer.from([0x50, 0x4b, 0x07, 0x08]), randomBytes(40), Buffer.from(" after")]);
    return { nested, signature };
  } finally {
    await work.cleanup();
  }
}

/** Downloads a URL with curl into `file` (the exit code catches a cut transfer). */
async function download(url: string, file: string, range?: string): Promise<void> {
  await run("curl", ["-sS", "--fail", ...(range ? ["-r", range] : []), "-o", file, url], { maxBuffer: 1024 * 1024 });
}

describe("archives that streaming readers read from a pipe: Java ZipInputStream, bsdtar, fflate, Rust zip, rubyzip, busybox unzip, zip4j", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let gw: RunningGateway;
  let root: string;
  let tricky: { nested: Buffer; signature: Buffer };

  beforeAll(async () => {
    dir = await tempDir();
    root = join(dir.path, "store");
    gw = await startGateway({ root, env: { ZIPGATE_MAX_FILES: "70000", ZIPGATE_MAX_BYTES: "10 GiB" } });
    tricky = await trickyBytes();
  });
  afterAll(async () => {
    await gw.close();
    await dir.cleanup();
  });

  it("small files only: every entry classic, no data descriptor at all", async () => {
    await writeTree(
      join(root, "small"),
      {
        "a.txt": "alpha",
        "empty.txt": "",
        "sub/b.bin": randomBytes(200 * 1024),
        "sub/Grüße.txt": "grüße",
        "sub/日本語.md": "こんにちは",
      },
      MTIME,
    );
    const expected: ExpectedEntry[] = [
      { name: "small/", dir: true },
      { name: "small/sub/", dir: true },
    ];
    for (const name of ["a.txt", "empty.txt", "sub/b.bin", "sub/Grüße.txt", "sub/日本語.md"]) {
      const data = await readFile(join(root, "small", name));
      expected.push({ name: `small/${name}`, size: data.length, sha256: sha256(data), mtime: MTIME });
    }
    const zip = join(dir.path, "small.zip");
    await download(await zipballUrl(gw, { objects: [{ folder: "/small" }] }), zip);
    expect(await entryForms(zip)).toEqual({ classic: 5, descriptor: 0 });
    await verifyWithUnzippers(zip, expected);
    await verifyWithStreamingReaders(zip, expected);
  });

  it("a zipball pinned before forms existed is served as before, byte for byte (descriptor form)", async () => {
    await writeTree(join(root, "old"), { "a.txt": "alpha", "b.bin": randomBytes(3000), "empty.txt": "" }, MTIME);
    const url = await zipballUrl(gw, { objects: [{ path: "/old/a.txt" }, { path: "/old/b.bin" }, { path: "/old/empty.txt" }] });
    const id = new URL(url).pathname.slice(1, -".zip".length);
    // Its entry list as the code before forms pinned it: no form, no CRC (the folder store keeps none).
    const zipballs = new ZipballStore({ storage: gw.storage, signer: new ManifestSigner("test-signing-secret-0123456789abcdef") });
    const { manifest, entries } = await zipballs.load(id);
    expect(entries.every((e) => e.form === "classic")).toBe(true);
    const oldId = randomUUID();
    const { entries: _digest, ...fields } = manifest;
    await zipballs.save(
      { ...fields, id: oldId },
      entries.map(({ form: _form, crc32: _crc, ...rest }) => rest),
    );
    const res = await fetch(`${gw.url}/${oldId}.zip?zipball`);
    expect(res.status).toBe(200);
    const served = Buffer.from(await res.arrayBuffer());
    const { body: reference } = await archiveOf(gw.storage, [
      { name: "a.txt", key: "old/a.txt" },
      { name: "b.bin", key: "old/b.bin" },
      { name: "empty.txt", key: "old/empty.txt" },
    ]);
    expect(served.equals(reference)).toBe(true);
    const file = join(dir.path, "old.zip");
    await writeFile(file, served);
    // Every file in the descriptor form but the empty one, classic in every layout (its CRC is 0).
    expect(await entryForms(file)).toEqual({ classic: 1, descriptor: 2 });
  });

  it("a stored nested zip and a file holding PK\\x07\\x08: every streaming reader sees exactly the central directory's entries", async () => {
    await writeTree(join(root, "tricky"), { "inner.zip": tricky.nested, "signature.bin": tricky.signature, "next.txt": "the file after" }, MTIME);
    const expected: ExpectedEntry[] = [
      { name: "inner.zip", size: tricky.nested.length, sha256: sha256(tricky.nested), mtime: MTIME },
      { name: "signature.bin", size: tricky.signature.length, sha256: sha256(tricky.signature), mtime: MTIME },
      { name: "next.txt", size: 14, sha256: sha256("the file after"), mtime: MTIME },
    ];
    const zip = join(dir.path, "tricky.zip");
    const objects = [{ path: "/tricky/inner.zip" }, { path: "/tricky/signature.bin" }, { path: "/tricky/next.txt" }];
    await download(await zipballUrl(gw, { objects }), zip);
    expect(await entryForms(zip)).toEqual({ classic: 3, descriptor: 0 });
    await verifyWithUnzippers(zip, expected);
    await verifyWithStreamingReaders(zip, expected);
  });

  it("a mix of large and small: small ones classic at once; large ones classic with prepare, a caller's crc32, or once downloaded", async () => {
    const large = randomBytes(3 * 1024 * 1024 + 5);
    // A large nested zip: the descriptor form of it is what unzipper and fflate misread.
    const largeNested = Buffer.concat([tricky.nested, randomBytes(1024 * 1024)]);
    await writeTree(join(root, "mix"), { "large.bin": large, "large-nested.zip": largeNested, "small-1.txt": "one", "small-2.txt": "two" }, MTIME);
    const expected: ExpectedEntry[] = [
      { name: "mix/", dir: true },
      { name: "mix/large.bin", size: large.length, sha256: sha256(large), mtime: MTIME },
      { name: "mix/large-nested.zip", size: largeNested.length, sha256: sha256(largeNested), mtime: MTIME },
      { name: "mix/small-1.txt", sha256: sha256("one"), mtime: MTIME },
      { name: "mix/small-2.txt", sha256: sha256("two"), mtime: MTIME },
    ];

    // First zipball of a fresh folder, by default: the creation learns the large objects' CRCs
    // (on the folder store's threads, within its budget), so every entry is classic at once.
    const first = join(dir.path, "mix-1.zip");
    const created = await gw.post("/v2/zipball", { objects: [{ folder: "/mix" }] });
    const body = (await created.json()) as { data: { urls: { url: string }; entry_forms: unknown } };
    expect(created.status).toBe(201);
    expect(body.data.entry_forms).toEqual({ classic: 4, descriptor: 0 });
    await download(local(gw, body.data.urls.url), first);
    expect(await entryForms(first)).toEqual({ classic: 4, descriptor: 0 });
    await verifyWithUnzippers(first, expected);
    await verifyWithStreamingReaders(first, expected);

    // "prepare": false reads nothing at creation: the large objects of a folder never read get
    // descriptors, the answer says so and why, and Java refuses those stored entries.
    await writeTree(join(root, "mix-lazy"), { "large.bin": large, "large-nested.zip": largeNested, "small-1.txt": "one", "small-2.txt": "two" }, MTIME);
    const lazyExpected = expected.map((e) => ({ ...e, name: e.name.replace(/^mix\//, "mix-lazy/") }));
    const lazyRes = await gw.post("/v2/zipball", { objects: [{ folder: "/mix-lazy" }], prepare: false });
    const lazy = (await lazyRes.json()) as { data: { urls: { url: string }; entry_forms: { notice: string } } };
    expect(lazy.data.entry_forms).toMatchObject({ classic: 2, descriptor: 2, descriptor_reasons: { not_prepared: 2 } });
    expect(lazy.data.entry_forms.notice).toMatch(/2 of 4 files go out with a data descriptor/);
    const lazyZip = join(dir.path, "mix-lazy.zip");
    await download(local(gw, lazy.data.urls.url), lazyZip);
    expect(await entryForms(lazyZip)).toEqual({ classic: 2, descriptor: 2 });
    await verifyWithUnzippers(lazyZip, lazyExpected);
    await expect(verifyWithStreamingReaders(lazyZip, lazyExpected, { readers: ["java ZipInputStream"] })).rejects.toThrow(/EXT descriptor/);

    // A new zipball of the same objects after that download, still without reads: all classic,
    // from the CRCs the download recorded.
    const again = join(dir.path, "mix-2.zip");
    await download(await zipballUrl(gw, { objects: [{ folder: "/mix-lazy" }], prepare: false }), again);
    expect(await entryForms(again)).toEqual({ classic: 4, descriptor: 0 });
    await verifyWithStreamingReaders(again, lazyExpected);

    // "prepare": true reads everything, whatever the budget.
    await writeTree(join(root, "mix-fresh"), { "large.bin": large, "small.txt": "one" }, MTIME);
    const prepared = join(dir.path, "mix-prepared.zip");
    await download(await zipballUrl(gw, { objects: [{ folder: "/mix-fresh" }], prepare: true }), prepared);
    expect(await entryForms(prepared)).toEqual({ classic: 2, descriptor: 0 });
    const freshExpected: ExpectedEntry[] = [
      { name: "mix-fresh/", dir: true },
      { name: "mix-fresh/large.bin", size: large.length, sha256: sha256(large), mtime: MTIME },
      { name: "mix-fresh/small.txt", sha256: sha256("one"), mtime: MTIME },
    ];
    await verifyWithStreamingReaders(prepared, freshExpected);
  });

  it("the creation's read budget: past ZIPGATE_PREPARE_BYTES the largest files keep descriptors, and every flavour says so", async () => {
    const tight = await startGateway({ root, env: { ZIPGATE_PREPARE_BYTES: "3 MiB" } });
    try {
      const one = randomBytes(1024 * 1024);
      const two = randomBytes(2 * 1024 * 1024 + 1);
      const four = randomBytes(4 * 1024 * 1024);
      await writeTree(join(root, "budget"), { "one.bin": one, "two.bin": two, "four.bin": four, "small.txt": "s" }, MTIME);
      // Smallest first: 1 MiB fits, 2 MiB + 1 would pass 3 MiB, 4 MiB too.
      const res = await tight.post("/v2/zipball", { objects: [{ folder: "/budget" }] });
      const body = (await res.json()) as { data: { urls: { url: string }; entry_forms: Record<string, unknown> } };
      expect(body.data.entry_forms).toMatchObject({ classic: 2, descriptor: 2, descriptor_reasons: { over_byte_budget: 2 } });
      expect(body.data.entry_forms.notice).toMatch(/ZIPGATE_PREPARE_BYTES/);
      const zip = join(dir.path, "budget.zip");
      await download(local(tight, body.data.urls.url), zip);
      expect(await entryForms(zip)).toEqual({ classic: 2, descriptor: 2 });
      await verifyWithUnzippers(zip, [
        { name: "budget/", dir: true },
        { name: "budget/four.bin", sha256: sha256(four) },
        { name: "budget/one.bin", sha256: sha256(one) },
        { name: "budget/small.txt", sha256: sha256("s") },
        { name: "budget/two.bin", sha256: sha256(two) },
      ]);
      // Box: the same count in the vendor field of its 202.
      await writeTree(join(root, "budget-box"), { "four.bin": four, "one.bin": one }, MTIME);
      const box = await tight.post("/2.0/zip_downloads", { items: [{ type: "folder", id: "/budget-box" }] });
      expect(box.status).toBe(202);
      expect(((await box.json()) as { entry_forms: unknown }).entry_forms).toMatchObject({
        classic: 1,
        descriptor: 1,
        descriptor_reasons: { over_byte_budget: 1 },
      });
    } finally {
      await tight.close();
    }
  });

  it("Box zip downloads take prepare too: every entry classic, read by the streaming readers", async () => {
    const large = randomBytes(1024 * 1024 + 1);
    await writeTree(join(root, "box"), { "large.bin": large, "small.txt": "small" }, MTIME);
    const bad = await gw.post("/2.0/zip_downloads", { items: [{ type: "folder", id: "/box" }], prepare: "yes" });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ type: "error", status: 400, code: "bad_request" });
    const res = await gw.post("/2.0/zip_downloads", { items: [{ type: "folder", id: "/box" }], download_file_name: "box", prepare: true });
    const text = await res.text();
    expect(res.status, text).toBe(202);
    const zip = join(dir.path, "box.zip");
    const downloadUrl = new URL((JSON.parse(text) as { download_url: string }).download_url);
    await download(gw.url + downloadUrl.pathname, zip);
    expect(await entryForms(zip)).toEqual({ classic: 2, descriptor: 0 });
    await verifyWithStreamingReaders(zip, [
      { name: "box/", dir: true },
      { name: "box/large.bin", size: large.length, sha256: sha256(large), mtime: MTIME },
      { name: "box/small.txt", sha256: sha256("small"), mtime: MTIME },
    ]);
  });

  it("a caller's crc32 makes a large entry classic; a wrong one is refused against the store's, or cuts the download", async () => {
    const large = randomBytes(2 * 1024 * 1024);
    await writeTree(join(root, "given"), { "large.bin": large, "other.bin": large }, MTIME);
    const crc = crc32(large);
    const zip = join(dir.path, "given.zip");
    const hex = crc.toString(16).padStart(8, "0");
    await download(await zipballUrl(gw, { objects: [{ path: "/given/large.bin", crc32: hex }] }), zip);
    expect(await entryForms(zip)).toEqual({ classic: 1, descriptor: 0 });
    await verifyWithStreamingReaders(zip, [{ name: "large.bin", size: large.length, sha256: sha256(large) }]);

    for (const bad of ["xyz", "1234567", -1, 2 ** 32, 1.5]) {
      const res = await gw.post("/v2/zipball", { objects: [{ path: "/given/other.bin", crc32: bad }] });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("invalid_field");
    }
    const folder = await gw.post("/v2/zipball", { objects: [{ folder: "/given", crc32: hex }] });
    expect(folder.status).toBe(400);

    // A wrong CRC: the archive is cut, never a well-formed zip with a wrong CRC.
    const url = await zipballUrl(gw, { objects: [{ path: "/given/other.bin", crc32: (crc ^ 1) >>> 0 }] });
    await expect(download(url, join(dir.path, "wrong.zip"))).rejects.toThrow();
  });

  it("a resumed download: ranges starting inside a classic entry's header and data give the same bytes", async () => {
    await writeTree(join(root, "resume"), { "one.bin": randomBytes(100_000), "two.bin": randomBytes(150_000), "three.txt": "three" }, MTIME);
    const url = await zipballUrl(gw, { objects: [{ folder: "/resume" }] });
    const whole = join(dir.path, "resume-whole.zip");
    await download(url, whole);
    const bytes = await readFile(whole);
    // A fresh zipball of the same files (CRCs from the index now) is classic too; use a new one
    // whose per-zipball CRC record is empty, so each resume must learn the CRCs it needs.
    for (const cut of [10, 100_040, 100_200, 160_000]) {
      const fresh = await zipballUrl(gw, { objects: [{ folder: "/resume" }] });
      const part = join(dir.path, `resume-${cut}.part`);
      await download(fresh, part, `0-${cut - 1}`);
      const rest = join(dir.path, `resume-${cut}.rest`);
      await download(fresh, rest, `${cut}-`);
      const joined = Buffer.concat([await readFile(part), await readFile(rest)]);
      expect(joined.equals(bytes), `cut at ${cut}`).toBe(true);
    }
    const expected: ExpectedEntry[] = [{ name: "resume/", dir: true }];
    for (const name of ["one.bin", "three.txt", "two.bin"])
      expected.push({ name: `resume/${name}`, sha256: sha256(await readFile(join(root, "resume", name))) });
    expect(await entryForms(whole)).toEqual({ classic: 3, descriptor: 0 });
    await verifyWithStreamingReaders(whole, expected);
  });

  it("deflate mode: UTF-8 names intact for Info-ZIP, empty files without a descriptor, the same times as store mode", async () => {
    await writeTree(join(root, "deflate"), { "café.txt": "café ".repeat(100), "empty.txt": "", "日本/語.txt": "にほんご", "plain.txt": "plain" }, MTIME);
    const zip = join(dir.path, "deflate.zip");
    await download(await zipballUrl(gw, { objects: [{ folder: "/deflate" }], compression: "deflate" }), zip);
    const { stdout } = await run("zipinfo", ["-1", zip], { env: { ...process.env, LANG: "C.UTF-8", LC_ALL: "C.UTF-8" } });
    expect(stdout.split("\n").filter(Boolean).sort()).toEqual([
      "deflate/",
      "deflate/café.txt",
      "deflate/empty.txt",
      "deflate/plain.txt",
      "deflate/日本/",
      "deflate/日本/語.txt",
    ]);
    const expected: ExpectedEntry[] = [
      { name: "deflate/", dir: true },
      { name: "deflate/café.txt", sha256: sha256("café ".repeat(100)), mtime: MTIME },
      { name: "deflate/empty.txt", size: 0, sha256: sha256(""), mtime: MTIME },
      { name: "deflate/plain.txt", sha256: sha256("plain"), mtime: MTIME },
      { name: "deflate/日本/", dir: true },
      { name: "deflate/日本/語.txt", sha256: sha256("にほんご"), mtime: MTIME },
    ];
    // The mtimes checked here come from the extended-timestamp extra (Python) and what unzip, 7-Zip and bsdtar restore.
    await verifyWithUnzippers(zip, expected);
    await verifyWithStreamingReaders(zip, expected);
  });

  it("deflate mode: entries up to 1 MiB deflated in memory and classic for every streaming reader; larger ones with a descriptor, and the answer says so", async () => {
    const line = (i: number): string => `${new Date(MTIME * 1000 + i * 1000).toISOString()} GET /object/${i % 97} 200 ${i * 7}\n`;
    const text = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => line(i)).join(""));
    const medium = text(12_000); // about 700 KB, deflated in memory
    const large = text(40_000); // about 2.3 MB, streamed through zlib with a descriptor
    const noise = randomBytes(300_000); // does not shrink: stored, classic
    await writeTree(join(root, "deflate-mix"), { "medium.log": medium, "noise.bin": noise, "ü/empty.txt": "" }, MTIME);
    await mkdir(join(root, "deflate-mix", "empty-folder"));
    const expected: ExpectedEntry[] = [
      { name: "deflate-mix/", dir: true },
      { name: "deflate-mix/empty-folder/", dir: true },
      { name: "deflate-mix/medium.log", sha256: sha256(medium) },
      { name: "deflate-mix/noise.bin", sha256: sha256(noise) },
      { name: "deflate-mix/ü/", dir: true },
      { name: "deflate-mix/ü/empty.txt", size: 0, sha256: sha256("") },
    ];
    const res = await gw.post("/v2/zipball", { objects: [{ folder: "/deflate-mix" }], compression: "deflate" });
    const created = (await res.json()) as { data: { urls: { url: string }; entry_forms: unknown } };
    expect(created.data.entry_forms).toEqual({ classic: 3, descriptor: 0 });
    const zip = join(dir.path, "deflate-mix.zip");
    await download(local(gw, created.data.urls.url), zip);
    const report = await checkZip(zip);
    expect(report.entries.filter((e) => !e.dir).map((e) => [e.name, e.method, e.classic])).toEqual([
      ["deflate-mix/medium.log", 8, true],
      ["deflate-mix/noise.bin", 0, true],
      ["deflate-mix/ü/empty.txt", 0, true],
    ]);
    await verifyWithUnzippers(zip, expected);
    await verifyWithStreamingReaders(zip, expected);

    await writeTree(join(root, "deflate-large"), { "large.log": large, "medium.log": medium }, MTIME);
    const big = await gw.post("/v2/zipball", { objects: [{ folder: "/deflate-large" }], compression: "deflate" });
    const bigBody = (await big.json()) as { data: { urls: { url: string }; entry_forms: unknown } };
    expect(bigBody.data.entry_forms).toMatchObject({ classic: 1, descriptor: 1, descriptor_reasons: { deflated_large: 1 } });
    const bigZip = join(dir.path, "deflate-large.zip");
    await download(local(gw, bigBody.data.urls.url), bigZip);
    const bigExpected: ExpectedEntry[] = [
      { name: "deflate-large/", dir: true },
      { name: "deflate-large/large.log", sha256: sha256(large) },
      { name: "deflate-large/medium.log", sha256: sha256(medium) },
    ];
    expect(await entryForms(bigZip)).toEqual({ classic: 1, descriptor: 1 });
    await verifyWithUnzippers(bigZip, bigExpected);
    // A deflated entry with a descriptor: Java, zip4j, bsdtar and fflate read it; Rust's zip 0.6 and busybox refuse any.
    await verifyWithStreamingReaders(bigZip, bigExpected, { readers: ["java ZipInputStream", "zip4j ZipInputStream", "bsdtar -xf -", "fflate Unzip"] });
    await expect(verifyWithStreamingReaders(bigZip, bigExpected, { readers: ["busybox unzip -"] })).rejects.toThrow(/flag 8/);
  });

  it("non-ASCII names and an empty folder, in the classic form, for every streaming reader", async () => {
    await writeTree(join(root, "names"), { "été/日本語.txt": "nihongo", "emoji-😀.txt": "smile", "Ωmega/ß.bin": randomBytes(400_000) }, MTIME);
    await mkdir(join(root, "names", "vide"));
    const zip = join(dir.path, "names.zip");
    await download(await zipballUrl(gw, { objects: [{ folder: "/names" }] }), zip);
    const expected: ExpectedEntry[] = [
      { name: "names/", dir: true },
      { name: "names/vide/", dir: true },
    ];
    for (const name of ["été/日本語.txt", "emoji-😀.txt", "Ωmega/ß.bin"])
      expected.push({ name: `names/${name}`, sha256: sha256(await readFile(join(root, "names", name))) });
    expected.push({ name: "names/été/", dir: true }, { name: "names/Ωmega/", dir: true });
    expect(await entryForms(zip)).toEqual({ classic: 3, descriptor: 0 });
    await verifyWithUnzippers(zip, expected);
    await verifyWithStreamingReaders(zip, expected);
  });

  it("zip64 by count: 65,537 entries, all classic, read by every streaming reader", async () => {
    const folder = join(root, "many");
    await mkdir(folder, { recursive: true });
    const expected: ExpectedEntry[] = [{ name: "many/", dir: true }];
    for (let i = 0; i < 65_536; i++) {
      const name = `f${String(i).padStart(5, "0")}`;
      const body = i % 100 === 0 ? name : "";
      await writeFile(join(folder, name), body);
      expected.push({ name: `many/${name}`, size: body.length, sha256: sha256(body) });
    }
    const zip = join(dir.path, "many.zip");
    await download(await zipballUrl(gw, { objects: [{ folder: "/many" }] }), zip);
    expect(await entryForms(zip)).toEqual({ classic: 65_536, descriptor: 0 });
    await verifyWithStreamingReaders(zip, expected, { extract: false });
    // busybox can only extract: 65,537 entries written to disk.
    await verifyWithStreamingReaders(zip, expected, { readers: ["busybox unzip -"] });
  });

  it("zip64 by size: an entry over 4 GiB with the caller's crc32 and entries past 4 GiB, all classic (sparse, not stored in git)", async () => {
    await mkdir(join(root, "big"), { recursive: true });
    const size = 2 ** 32 + 4096;
    const fh = await open(join(root, "big", "huge.bin"), "w");
    await fh.write(Buffer.from("start"), 0, 5, 0);
    await fh.write(Buffer.from("end"), 0, 3, size - 3);
    await fh.close();
    await utimes(join(root, "big", "huge.bin"), MTIME, MTIME);
    await writeTree(join(root, "big"), { "after.zip": tricky.nested, "after.txt": "after" }, MTIME);
    const zip = join(dir.path, "big.zip");
    // Its SHA-256 and CRC-32 without holding 4 GiB: the marker, zeros, the marker.
    const hash = createHash("sha256").update("start");
    let crc = crc32(Buffer.from("start"));
    const zeros = Buffer.alloc(64 * 1024 * 1024);
    for (let left = size - 8; left > 0; left -= zeros.length) {
      const piece = left >= zeros.length ? zeros : zeros.subarray(0, left);
      hash.update(piece);
      crc = crc32(piece, crc);
    }
    crc = crc32(Buffer.from("end"), crc);
    // The large entry's CRC given by the caller (prepare would read the 4 GiB at creation), the small ones learnt.
    const objects = [{ path: "/big/huge.bin", crc32: crc }, { path: "/big/after.zip" }, { path: "/big/after.txt" }];
    await download(await zipballUrl(gw, { objects }), zip);
    expect((await stat(zip)).size).toBeGreaterThan(2 ** 32);
    expect(await entryForms(zip)).toEqual({ classic: 3, descriptor: 0 });
    const expected: ExpectedEntry[] = [
      { name: "huge.bin", size, sha256: hash.update("end").digest("hex") },
      { name: "after.zip", sha256: sha256(tricky.nested) },
      { name: "after.txt", sha256: sha256("after") },
    ];
    // Each streaming reader reads 4 GiB from a pipe (rubyzip's and zip4j's would take minutes; busybox has no zip64).
    await verifyWithStreamingReaders(zip, expected, { extract: false, readers: ["java ZipInputStream", "bsdtar -xf -", "fflate Unzip", "rust zip stream"] });
  }, 600_000);
});

describe("streaming readers on the S3 store (Swift s3api): objects come as streams, two replicas share the recorded CRCs", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let client: S3Client;
  let a: RunningGateway;
  let b: RunningGateway;
  const objects: Record<string, Buffer> = {};

  beforeAll(async () => {
    dir = await tempDir();
    client = adminClient();
    const prefix = freshPrefix("streaming");
    const { nested, signature } = await trickyBytes();
    Object.assign(objects, {
      "set/a-inner.zip": nested,
      "set/b-signature.bin": signature,
      "set/c-medium.bin": randomBytes(200 * 1024),
      "set/d-large.bin": randomBytes(1024 * 1024 + 3),
      "set/e-empty.txt": Buffer.alloc(0),
    });
    await putObjects(client, prefix, objects);
    a = await startGateway({ storage: s3Storage(prefix), env: s3Env(prefix) });
    b = await startGateway({ storage: s3Storage(prefix), env: s3Env(prefix) });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    client?.destroy();
    await dir.cleanup();
  });

  it("every object is classic from the first download (large ones read in ranged parts at creation); the other replica reuses the recorded CRCs", async () => {
    const expected: ExpectedEntry[] = [
      { name: "set/", dir: true },
      ...Object.entries(objects).map(([name, data]) => ({ name, size: data.length, sha256: sha256(data) })),
    ];
    const first = join(dir.path, "s3-first.zip");
    await download(await zipballUrl(a, { objects: [{ folder: "/set" }] }), first);
    expect(await entryForms(first)).toEqual({ classic: 5, descriptor: 0 });
    await verifyWithUnzippers(first, expected);
    await verifyWithStreamingReaders(first, expected);

    // The other replica, told to read nothing at creation, finds the CRCs recorded by the first.
    const url = await zipballUrl(b, { objects: [{ folder: "/set" }], prepare: false });
    const again = join(dir.path, "s3-again.zip");
    await download(url, again);
    expect(await entryForms(again)).toEqual({ classic: 5, descriptor: 0 });
    await verifyWithStreamingReaders(again, expected);

    // A resume inside the small classic entries' headers and data, on the other replica.
    const bytes = await readFile(again);
    for (const cut of [20, 120, 5_000]) {
      const fresh = await zipballUrl(a, { objects: [{ folder: "/set" }] });
      const part = join(dir.path, `s3-${cut}.part`);
      const rest = join(dir.path, `s3-${cut}.rest`);
      await download(fresh, part, `0-${cut - 1}`);
      await download(fresh.replace(a.url, b.url), rest, `${cut}-`);
      expect(Buffer.concat([await readFile(part), await readFile(rest)]).equals(bytes), `cut at ${cut}`).toBe(true);
    }
  });

  it("past ZIPGATE_PREPARE_MS a slow store's objects keep descriptors: the creation answers on time and says why", async () => {
    // A real store made slow: Swift behind a relay that carries 256 KB/s per connection.
    const relay = await startFreezer(s3Server().endpoint, { downRate: 256e3 });
    const prefix = freshPrefix("slow-prepare");
    const big = randomBytes(4 * 1024 * 1024);
    await putObjects(client, prefix, { "slow/big.bin": big, "slow/small.txt": Buffer.from("small") });
    const slow = await startGateway({ storage: s3Storage(prefix, undefined, { endpoint: relay.url }), env: { ...s3Env(prefix), ZIPGATE_PREPARE_MS: "300" } });
    try {
      const res = await slow.post("/v2/zipball", { objects: [{ folder: "/slow" }] });
      const body = (await res.json()) as { data: { urls: { url: string }; entry_forms: Record<string, unknown> } };
      expect(res.status).toBe(201);
      expect(body.data.entry_forms).toMatchObject({ classic: 1, descriptor: 1, descriptor_reasons: { over_time_budget: 1 } });
      expect(body.data.entry_forms.notice).toMatch(/ZIPGATE_PREPARE_MS/);
    } finally {
      await slow.close();
      await relay.close();
    }
  });
});
