// The naive gateway: what a user would write today in a few lines with hono + archiver
// (store mode), objects opened one after another. Serves GET /zip/<set> for the sets in
// $BENCH_SETS (keys relative to $BENCH_ROOT, or to the S3 bucket/prefix in $BENCH_S3).
// The body goes out through hono's stream() helper: `c.body(Readable.toWeb(archive))`
// is as short but about 6x slower for 10,000 small files on Node 20 (its web-stream queue
// grows without backpressure and dequeues in O(n)), which would flatter zipgate.
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { serve } from "@hono/node-server";
import { ZipArchive } from "archiver";
import { Hono } from "hono";
import { stream } from "hono/streaming";

const sets = JSON.parse(readFileSync(process.env.BENCH_SETS, "utf8"));
const s3 = process.env.BENCH_S3 && JSON.parse(process.env.BENCH_S3);
const client = s3 && new S3Client({ endpoint: s3.endpoint, region: s3.region, credentials: s3.credentials, forcePathStyle: true });
const app = new Hono();

app.get("/zip/:set", (c) => {
  const keys = sets[c.req.param("set")];
  if (!keys) return c.notFound();
  const archive = new ZipArchive({ store: true });
  if (client) {
    (async () => {
      for (const key of keys) {
        const { Body } = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: s3.prefix + key }));
        archive.append(Body, { name: key });
        await once(archive, "entry");
      }
      await archive.finalize();
    })().catch((err) => archive.destroy(err));
  } else {
    for (const key of keys) archive.file(join(process.env.BENCH_ROOT, key), { name: key });
    archive.finalize();
  }
  c.header("Content-Type", "application/zip");
  return stream(c, async (s) => {
    s.onAbort(() => archive.destroy());
    for await (const chunk of archive) await s.write(chunk);
  });
});

serve({ fetch: app.fetch, hostname: "127.0.0.1", port: Number(process.env.PORT) });
