import type { StorageConfig } from "../config.js";
import { createFsStorage } from "./fs.js";
import type { Storage } from "./types.js";

/** The store named by the configuration. */
export async function createStorage(config: StorageConfig, timeouts: { connectTimeoutMs: number; timeoutMs: number }): Promise<Storage> {
  switch (config.kind) {
    case "fs":
      return createFsStorage({ root: config.root, timeoutMs: timeouts.timeoutMs });
    case "s3": {
      // Loaded only for an S3 store: the SDK adds ~20 MiB to a gateway that does not use it.
      const { createS3Storage } = await import("./s3.js");
      return createS3Storage({
        bucket: config.bucket,
        prefix: config.prefix,
        region: config.region,
        endpoint: config.endpoint,
        forcePathStyle: config.forcePathStyle,
        read: config.read,
        partSize: config.partSize,
        partDepth: config.partDepth,
        partMemory: config.partMemory,
        credentials: config.credentials,
        connectTimeoutMs: timeouts.connectTimeoutMs,
        timeoutMs: timeouts.timeoutMs,
      });
    }
  }
}
