import { randomBytes } from "node:crypto";
import { open, stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { zipballKey } from "../../src/manifest/store.js";
import { tempDir, writeTree } from "../helpers/archive.js";
import { type RunningGateway, startGateway, zipballUrl } from "../helpers/gateway.js";

const SIZE = 24 * 1024 * 1024;

/**
 * Reads a download's first chunk, lets `meanwhile` run while the client is paused, then
 * reads the rest: whether the transfer completed, and the bytes it got.
 */
async function throttled(url: string, meanwhile: () => Promise<void>): Promise<{ complete: boolean; got: number; length: number }> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  const length = Number(res.headers.get("content-length"));
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  let got = (await reader.read()).value?.length ?? 0;
  await new Promise((r) => setTimeout(r, 200));
  await meanwhile();
  try {
    for (;;) {
      const step = await reader.read();
      if (step.done) break;
      got += step.value.length;
    }
    return { complete: got === length, got, length };
  } catch {
    return { complete: false, got, length };
  }
}

/** A download that starts (200) and is cut short of its length, never completed. */
async function expectCut(url: string): Promise<void> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  const body = await res.arrayBuffer().then(
    (b) => b.byteLength,
    () => -1,
  );
  expect(body).not.toBe(Number(res.headers.get("content-length")));
}

/** Overwrites 1 MiB at `at` in place and puts the mtime back, as `touch -r` would. */
async function rewriteInPlace(path: string, at: number): Promise<void> {
  const before = await stat(path);
  const fh = await open(path, "r+");
  await fh.write(randomBytes(1024 * 1024), 0, 1024 * 1024, at);
  await fh.close();
  await utimes(path, before.atime, before.mtime);
  const after = await stat(path);
  expect(after.mtimeMs).toBe(before.mtimeMs);
  expect(after.size).toBe(before.size);
}

describe("a file rewritten in place while it streams", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let root: string;
  let gw: RunningGateway;

  beforeAll(async () => {
    dir = await tempDir();
    root = join(dir.path, "store");
    await writeTree(root, { "a/big.bin": randomBytes(SIZE), "b/big.bin": randomBytes(SIZE), "c/big.bin": randomBytes(SIZE) });
    gw = await startGateway({ root });
  });
  afterAll(async () => {
    await gw.close();
    await dir.cleanup();
  });

  it("cuts the download instead of sending a valid zip of neither version (CRC computed while sending)", async () => {
    const url = await zipballUrl(gw, { objects: [{ path: "/a/big.bin" }] });
    const path = join(root, "a/big.bin");
    const result = await throttled(url, async () => {
      await rewriteInPlace(path, 0); // behind the cursor
      await rewriteInPlace(path, SIZE - 2 * 1024 * 1024); // ahead of it
    });
    expect(result.complete).toBe(false);
  });

  it("cuts the download when the bytes sent do not match the CRC recorded by an earlier download", async () => {
    const url = await zipballUrl(gw, { objects: [{ path: "/b/big.bin" }] });
    const first = await fetch(url);
    expect((await first.arrayBuffer()).byteLength).toBe(Number(first.headers.get("content-length")));
    // Once the CRC is recorded, a rewrite with the mtime put back keeps the pinned identity.
    const id = new URL(url).pathname.slice(1, -".zip".length);
    for (let i = 0; i < 100 && !(await gw.storage.get(zipballKey(id, "crcs"))); i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 50));
    await rewriteInPlace(join(root, "b/big.bin"), SIZE - 2 * 1024 * 1024);
    await expectCut(url);
  });

  it("hashes a repeat download again once the file was rewritten, also after its ctime has settled, and cuts it", async () => {
    // A repeat download of a settled file is not hashed (its inode, size, mtime and ctime prove
    // the bytes whose CRC is known); a rewrite moves the ctime, so the proof no longer holds.
    const settle = () => new Promise((r) => setTimeout(r, 10_200));
    await settle();
    const url = await zipballUrl(gw, { objects: [{ path: "/c/big.bin" }] });
    for (let i = 0; i < 2; i++) {
      const res = await fetch(url);
      expect((await res.arrayBuffer()).byteLength).toBe(Number(res.headers.get("content-length")));
    }
    await rewriteInPlace(join(root, "c/big.bin"), SIZE / 2);
    await settle();
    await expectCut(url);
  });
});
