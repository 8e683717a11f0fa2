import type { StorageConfig } from "../config.js";
import { createFsStorage } from "./fs.js";
import { createS3Storage } from "./s3.js";
import type { Storage } from "./types.js";

/** The store named by the configuration. */
export async function createStorage(config: StorageConfig): Promise<Storage> {
  switch (config.kind) {
    case "fs":
      return createFsStorage({ root: config.root });
    case "s3":
      return createS3Storage({
        bucket: config.bucket,
        prefix: config.prefix,
        region: config.region,
        endpoint: config.endpoint,
        forcePathStyle: config.forcePathStyle,
      });
  }
}
