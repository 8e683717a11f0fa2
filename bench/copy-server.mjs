// The copy limit: the same bytes as the archive's contents, served as one plain download
// (the objects of a set concatenated, no zip framing) through the same HTTP stack as zipgate
// (hono + @hono/node-server, body written straight to the Node response). A file stream per
// object for the folder store, a GetObject pass-through for S3. Objects are opened READ_AHEAD
// ahead of the one streaming, like zipgate's default, so this stays a ceiling for many small
// objects too. Serves GET /files/<set>, with one `Range: bytes=A-B` or `bytes=A-` (206).
import { createReadStream, readFileSync } from "node:fs";
import { open, stat } from "node:fs/promises";
import { createServer } from "node:http";
import { join } from "node:path";
import { GetObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { getRequestListener } from "@hono/node-server";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { Hono } from "hono";

const READ_AHEAD = 8;
const CHUNK = 256 * 1024;
const sets = JSON.parse(readFileSync(process.env.BENCH_SETS, "utf8"));
const root = process.env.BENCH_ROOT;
const s3 = process.env.BENCH_S3 && JSON.parse(process.env.BENCH_S3);
const client = s3 && new S3Client({ endpoint: s3.endpoint, region: s3.region, credentials: s3.credentials, forcePathStyle: true });

/** Object sizes per set, known before the first request (like a listing an app keeps). */
async function listSizes() {
  const size = new Map();
  if (client) {
    let token;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: s3.prefix, ContinuationToken: token }));
      for (const o of page.Contents ?? []) size.set(o.Key.slice(s3.prefix.length), o.Size);
      token = page.NextContinuationToken;
    } while (token);
  } else {
    const all = [...new Set(Object.values(sets).flat())];
    let next = 0;
    const worker = async () => {
      while (next < all.length) {
        const key = all[next++];
        const st = await stat(join(root, key)).catch(() => null); // sets not generated this run
        if (st) size.set(key, st.size);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
  }
  // Sets whose objects are not all there (not generated, or not uploaded to S3) are not served.
  return new Map(
    Object.entries(sets)
      .filter(([, keys]) => keys.every((k) => size.has(k)))
      .map(([name, keys]) => [name, keys.map((k) => size.get(k))]),
  );
}
const sizes = await listSizes();

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
  const lens = sizes.get(name);
  if (!keys || !lens) return c.notFound();
  const total = lens.reduce((a, b) => a + b, 0);
  const m = /^bytes=(\d+)-(\d*)$/.exec(c.req.header("range") ?? "");
  const start = m ? Math.min(Number(m[1]), total) : 0;
  const end = m?.[2] ? Math.min(Number(m[2]) + 1, total) : total; // exclusive
  // First object that holds byte `start`, and the offset in it.
  let first = 0;
  let skip = start;
  while (first < keys.length && skip >= lens[first]) skip -= lens[first++];
  const out = c.env.outgoing;
  out.writeHead(m ? 206 : 200, {
    "Content-Type": "application/octet-stream",
    "Content-Length": String(end - start),
    ...(m ? { "Content-Range": `bytes ${start}-${end - 1}/${total}` } : {}),
  });
  let left = end - start;
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
      while (pending.length > 0 && left > 0) {
        const body = await pending.shift();
        fill();
        for await (const chunk of body) {
          if (out.destroyed) throw new Error("client went away");
          const piece = chunk.length <= left ? chunk : chunk.subarray(0, left);
          left -= piece.length;
          if (!out.write(piece)) await drained(out);
          if (left === 0) break;
        }
      }
      for (const p of pending.splice(0))
        p.then(
          (body) => body.destroy?.(),
          () => {},
        );
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
