import { DeleteObjectCommand } from "@aws-sdk/client-s3";
import { adminClient, freshPrefix, putObjects, s3Server, s3Storage } from "../helpers/s3.js";
import { describeStorageContract } from "./storage-contract.js";

// Both read paths: the lean GET (parts of 1 MiB here, so a 5 MiB object is read in parts) and
// the SDK's GetObject.
for (const read of ["lean", "sdk"] as const) {
  describeStorageContract(
    `S3 (Swift s3api over HTTP), ${read} reads`,
    async () => {
      const prefix = freshPrefix("contract");
      const client = adminClient();
      return {
        storage: s3Storage(prefix, undefined, { read, partSize: 1024 * 1024, partDepth: 3 }),
        put: (key, body) => putObjects(client, prefix, { [key]: body }),
        remove: async (key) => {
          await client.send(new DeleteObjectCommand({ Bucket: s3Server().bucket, Key: prefix + key }));
        },
        teardown: async () => client.destroy(),
      };
    },
    { manyObjects: 1_001 },
  );
}
