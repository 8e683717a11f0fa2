// The plain baselines for the S3 bench's large object: KEY read with the gateway's own signer on
// node:http and piped as it is to the HTTP client (no zip framing, no CRC): as one GET, or with
// PARTS > 1 as the gateway's ranged parts reader with that many in flight. Their CPU-seconds per
// GB are what passing the object through costs at the least, each way.
import { createServer } from "node:http";
import { pipeline } from "node:stream/promises";
import { PartPool, readInParts } from "../../dist/storage/s3-get.js";
import { getterFromEnv } from "./getter.mjs";

const get = getterFromEnv();
const key = process.env.KEY;
const depth = Number(process.env.PARTS ?? 1);
const parts = { partSize: 8 * 1024 * 1024, depth, pool: new PartPool(256 * 1024 * 1024) };

// Size and ETag, as the gateway pins them at creation.
const probe = await get({ key, range: { start: 0, end: 1 }, signal: new AbortController().signal });
const size = Number(probe.headers["content-range"].split("/")[1]);
const etag = probe.headers.etag;
probe.destroy();

createServer(async (_req, res) => {
  const controller = new AbortController();
  res.once("close", () => controller.abort());
  try {
    const body = depth > 1 ? await readInParts(get, { key, etag, signal: controller.signal }, 0, size, parts) : await get({ key, signal: controller.signal });
    res.writeHead(200, { "content-length": String(size), "content-type": "application/octet-stream" });
    await pipeline(body, res);
  } catch {
    res.destroy();
  }
}).listen(Number(process.env.PORT), "127.0.0.1");
