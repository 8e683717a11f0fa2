import type { StorageConfig } from "../config.js";
import { createFsStorage } from "./fs.js";
import type { Storage } from "./types.js";

/** The store named by the configuration. */
export async function createStorage(config: StorageConfig): Promise<Storage> {
  switch (config.kind) {
    case "fs":
      return createFsStorage({ root: config.root });
    case "s3":
      throw new Error("the S3 store is not built yet");
  }
}
