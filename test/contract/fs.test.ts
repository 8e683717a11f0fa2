import { mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
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
