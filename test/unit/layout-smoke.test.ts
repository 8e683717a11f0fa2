import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { archiveOf, createFsStorage, tempDir, writeTree } from "../helpers/archive.js";
import { sha256, verifyWithUnzippers } from "../helpers/unzippers.js";

describe("smoke", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    dir = await tempDir();
  });
  afterAll(() => dir.cleanup());

  it("writes an archive every unzipper opens", async () => {
    const root = join(dir.path, "store");
    await writeTree(root, { "a.txt": "hello", "b/ü n.txt": "world!", "empty.bin": "" });
    const storage = await createFsStorage({ root });
    const { layout, body } = await archiveOf(storage, [
      { name: "a.txt" },
      { name: "b/", kind: "dir" },
      { name: "b/ü n.txt", key: "b/ü n.txt" },
      { name: "empty.bin" },
    ]);
    expect(body.length).toBe(layout.total);
    const zip = join(dir.path, "a.zip");
    await writeFile(zip, body);
    await verifyWithUnzippers(zip, [
      { name: "a.txt", sha256: sha256("hello"), mtime: 1_700_000_000 },
      { name: "b/", dir: true },
      { name: "b/ü n.txt", sha256: sha256("world!"), mtime: 1_700_000_000 },
      { name: "empty.bin", size: 0, mtime: 1_700_000_000 },
    ]);
  });
});
