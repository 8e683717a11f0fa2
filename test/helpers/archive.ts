import { mkdir, mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { computeLayout, type LayoutInput } from "../../src/archive/layout.js";
import { openArchiveRange } from "../../src/archive/stream.js";
import { createFsStorage } from "../../src/storage/fs.js";
import type { Storage } from "../../src/storage/types.js";
import { checkZip } from "./zip-rules.js";

export async function tempDir(prefix = "zipgate-test-"): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/** Writes files into a folder with fixed mtimes (seconds). */
export async function writeTree(root: string, files: Record<string, string | Buffer>, mtime = 1_700_000_000): Promise<void> {
  for (const [name, body] of Object.entries(files)) {
    const path = join(root, name);
    if (name.endsWith("/")) {
      await mkdir(path, { recursive: true });
      continue;
    }
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, body);
    await utimes(path, mtime, mtime);
  }
}

/** Streams a whole archive (or a range) of stored objects into one Buffer. */
export async function collect(iter: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of iter) chunks.push(c);
  return Buffer.concat(chunks);
}

/** Builds an archive straight from the layout and stream modules, from stored keys. */
export async function archiveOf(storage: Storage, items: Array<{ name: string; key?: string; kind?: "file" | "dir" }>, range?: { start: number; end: number }) {
  const inputs: LayoutInput[] = [];
  const sources: ({ key: string; etag: string } | null)[] = [];
  for (const item of items) {
    if (item.kind === "dir") {
      inputs.push({ name: item.name, kind: "dir", size: 0, mtimeMs: 1_700_000_000_000 });
      sources.push(null);
      continue;
    }
    const info = await storage.stat(item.key ?? item.name);
    inputs.push({ name: item.name, kind: "file", size: info.size, mtimeMs: info.mtimeMs });
    sources.push({ key: info.key, etag: info.etag });
  }
  const layout = computeLayout(inputs);
  const read = (i: number, r: { start: number; end: number } | undefined, signal: AbortSignal | undefined) => {
    const source = sources[i] as { key: string; etag: string };
    return storage.read(source.key, { etag: source.etag, range: r, signal });
  };
  const body = await collect(await openArchiveRange({ layout, read, ...range }));
  // A whole archive is checked against the structural rules (zip-rules.ts).
  if (range === undefined) await checkZip(body);
  return { layout, body };
}

export { createFsStorage };
