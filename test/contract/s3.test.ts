import { DeleteObjectCommand } from "@aws-sdk/client-s3";
import { adminClient, freshPrefix, putObjects, s3Server, s3Storage } from "../helpers/s3.js";
import { describeStorageContract } from "./storage-contract.js";

describeStorageContract(
  "S3 (Swift s3api over HTTP)",
  async () => {
    const prefix = freshPrefix("contract");
    const client = adminClient();
    return {
      storage: s3Storage(prefix),
      put: (key, body) => putObjects(client, prefix, { [key]: body }),
      remove: async (key) => {
        await client.send(new DeleteObjectCommand({ Bucket: s3Server().bucket, Key: prefix + key }));
      },
      teardown: async () => client.destroy(),
    };
  },
  { manyObjects: 1_001 },
);
