// The gateway's own object GET (dist/storage/s3-get.js) for the S3 bench's baseline processes,
// set up from the environment that bench/s3.mjs gives them (getterEnv there).
import { Agent } from "node:http";
import { createObjectGetter } from "../../dist/storage/s3-get.js";

/** `agentOptions`: for the keep-alive agent (e.g. `maxSockets`). */
export function getterFromEnv(agentOptions = {}) {
  return createObjectGetter({
    endpoint: process.env.ENDPOINT,
    bucket: process.env.BUCKET,
    region: process.env.REGION,
    forcePathStyle: true,
    credentials: async () => ({ accessKeyId: process.env.AK, secretAccessKey: process.env.SK }),
    agent: new Agent({ keepAlive: true, ...agentOptions }),
    maxAttempts: 4,
    connectTimeoutMs: 5000,
    bufferBelow: 0,
  });
}
