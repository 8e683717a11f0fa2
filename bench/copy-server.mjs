// The copy limit: the same bytes as the archive's contents, served as one plain download
// (the objects of a set concatenated, no zip framing) through the same HTTP stack as zipgate
// (hono + @hono/node-server, body written straight to the Node response). A file stream per
// object for the folder store, a GetObject pass-through for S3. Objects are opened READ_AHEAD
// ahead of the one streaming, like zipgate's default, so this stays a ceiling for many small
// objects too. Serves GET /files/<set>, with `Range: bytes=N-` (206).
import { createReadStream, readFileSync } from "node:fs";
import { open, stat } from "node:fs/promises";
import { createServer } from "node:http";
import { join } from "node:path";
import { GetObjectCommand, HeadObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { getRequestListener } from "@hono/node-server";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { Hono } from "hono";

const READ_AHEAD = 8;
const CHUNK = 256 * 1024;
const sets = JSON.parse(readFileSync(process.env.BENCH_SETS, "utf8"));
const root = process.env.BENCH_ROOT;
const s3 = process.env.BENCH_S3 && JSON.parse(process.env.BENCH_S3);
const client = s3 && new S3Client({ endpoint: s3.endpoint, region: s3.region, credentials: s3.credentials, forcePathStyle: true });
const sizes = new Map(); // set name -> object sizes (stat once, like a listing kept by an app)

async function sizesOf(name) {
  if (!sizes.has(name)) {
    const keys = sets[name];
    const out = new Array(keys.length);
    let next = 0;
    const worker = async () => {
      while (next < keys.length) {
        const i = next++;
        out[i] = client
          ? Number((await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: s3.prefix + keys[i] }))).ContentLength)
          : (await stat(join(root, keys[i]))).size;
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    sizes.set(name, out);
  }
  return sizes.get(name);
}

/** Opens object `i` from byte `from`: a promise of an async iterable of buffers. */
async function openObject(key, from, size) {
  if (client) {
    const r = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: s3.prefix + key, Range: from > 0 ? `bytes=${from}-` : undefined }));
    return r.Body;
  }
  const fd = await open(join(root, key), "r");
  if (size - from <= CHUNK) {
    // One read for a small object (what createReadStream would do, without the stream).
    const buf = Buffer.allocUnsafe(size - from);
    await fd.read(buf, 0, buf.length, from).finally(() => fd.close());
    return [buf];
  }
  return createReadStream("", { fd, start: from, highWaterMark: CHUNK });
}

function drained(out) {
  return new Promise((resolve) => {
    const done = () => {
      out.off("drain", done).off("close", done);
      resolve();
    };
    out.on("drain", done).on("close", done);
  });
}

const app = new Hono();
app.get("/files/:set", async (c) => {
  const name = c.req.param("set");
  const keys = sets[name];
  if (!keys) return c.notFound();
  const lens = await sizesOf(name);
  const total = lens.reduce((a, b) => a + b, 0);
  const m = /^bytes=(\d+)-$/.exec(c.req.header("range") ?? "");
  const start = m ? Math.min(Number(m[1]), total) : 0;
  // First object that holds byte `start`, and the offset in it.
  let first = 0;
  let skip = start;
  while (first < keys.length && skip >= lens[first]) skip -= lens[first++];
  const out = c.env.outgoing;
  out.writeHead(m ? 206 : 200, {
    "Content-Type": "application/octet-stream",
    "Content-Length": String(total - start),
    ...(m ? { "Content-Range": `bytes ${start}-${total - 1}/${total}` } : {}),
  });
  const pending = [];
  let next = first;
  const fill = () => {
    while (pending.length < READ_AHEAD && next < keys.length) {
      const i = next++;
      const p = openObject(keys[i], i === first ? skip : 0, lens[i]);
      p.catch(() => {});
      pending.push(p);
    }
  };
  void (async () => {
    try {
      fill();
      while (pending.length > 0) {
        const body = await pending.shift();
        fill();
        for await (const chunk of body) {
          if (out.destroyed) throw new Error("client went away");
          if (!out.write(chunk)) await drained(out);
        }
      }
      out.end();
    } catch {
      out.destroy();
      // Objects opened ahead and never read: release them.
      for (const p of pending.splice(0))
        p.then(
          (body) => body.destroy?.(),
          () => {},
        );
    }
  })();
  return RESPONSE_ALREADY_SENT;
});

createServer(getRequestListener(app.fetch)).listen(Number(process.env.PORT), "127.0.0.1");
