import { mkdir, rename, rm, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { createFsStorage } from "../../src/storage/fs.js";
import { tempDir } from "../helpers/archive.js";
import { describeStorageContract } from "./storage-contract.js";

describeStorageContract(
  "folder",
  async () => {
    const dir = await tempDir();
    const storage = await createFsStorage({ root: dir.path });
    return {
      storage,
      async put(key, body) {
        const path = join(dir.path, key);
        if (key.endsWith("/")) {
          await mkdir(path, { recursive: true });
          return;
        }
        await mkdir(dirname(path), { recursive: true });
        await writeFile(path, body);
      },
      remove: (key) => rm(join(dir.path, key), { recursive: true, force: true }),
      teardown: dir.cleanup,
    };
  },
  { manyObjects: 1_500 },
);

describe("folder store: links above a file", () => {
  it("refuses files whose folder is reached through a link at any depth, in the same batch as files it serves, and after a folder is swapped for one", async () => {
    const dir = await tempDir();
    const root = join(dir.path, "store");
    const outside = join(dir.path, "outside");
    await mkdir(join(outside, "deep"), { recursive: true });
    await writeFile(join(outside, "f.txt"), "OUTSIDE");
    await writeFile(join(outside, "deep", "g.txt"), "OUTSIDE");
    await mkdir(join(root, "real", "sub"), { recursive: true });
    await writeFile(join(root, "real", "a.txt"), "inside a");
    await writeFile(join(root, "real", "sub", "b.txt"), "inside b");
    await symlink(outside, join(root, "link"));
    const storage = await createFsStorage({ root });
    try {
      // One turn of the event loop: one batch for the worker thread, good and bad folders mixed.
      const reads = ["real/a.txt", "link/f.txt", "real/sub/b.txt", "link/deep/g.txt", "real/a.txt"].map((key) =>
        storage.read(key).then(
          (body) => (Buffer.isBuffer(body) ? body.toString() : "stream"),
          (err: unknown) => (err as Error).name,
        ),
      );
      expect(await Promise.all(reads)).toEqual(["inside a", "ObjectNotFound", "inside b", "ObjectNotFound", "inside a"]);
      // A folder read through before, swapped for a link: the next batch opens it anew.
      await rename(join(root, "real", "sub"), join(root, "real", "sub-old"));
      await symlink(join(outside, "deep"), join(root, "real", "sub"));
      await writeFile(join(outside, "deep", "b.txt"), "OUTSIDE");
      await expect(storage.read("real/sub/b.txt")).rejects.toMatchObject({ name: "ObjectNotFound" });
      expect((await storage.read("real/a.txt")).toString()).toBe("inside a");
    } finally {
      await storage.close();
      await dir.cleanup();
    }
  });
});
