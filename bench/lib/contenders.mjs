// The servers under test: zipgate (dist/main.js) and its comparisons, each started as its
// own process on loopback so its CPU, memory and reads can be read from /proc.
import { request } from "node:http";
import { join } from "node:path";
import { freePort, startServer, stopProcess } from "./proc.mjs";

export const API_KEY = "bench-key-0123456789abcdef";
const SIGNING_SECRET = "bench-signing-secret-0123456789abcdef-0123456789";

/**
 * ctx: { repo, work, setsFile, root, s3 } — s3 (optional): { endpoint, region, credentials,
 * bucket, prefix } for the S3 flavour of each server.
 */
export const CONTENDERS = {
  zipgate: {
    label: "zipgate",
    async start(ctx, s3) {
      const port = await freePort();
      const env = {
        PORT: String(port),
        HOST: "127.0.0.1",
        ZIPGATE_API_KEYS: API_KEY,
        ZIPGATE_SIGNING_SECRET: SIGNING_SECRET,
        ZIPGATE_MAX_FILES: "200000",
        ZIPGATE_MAX_BYTES: "100 GiB",
        ZIPGATE_STORAGE: ctx.root,
      };
      if (s3) {
        Object.assign(env, {
          ZIPGATE_STORAGE: `s3://${s3.bucket}/${s3.prefix.replace(/\/$/, "")}`,
          AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
          AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
          AWS_REGION: s3.region,
          AWS_ENDPOINT_URL_S3: s3.endpoint,
          ZIPGATE_S3_FORCE_PATH_STYLE: "true",
        });
      }
      const name = s3 ? "zipgate-s3" : "zipgate";
      const srv = await startServer({
        name,
        command: process.execPath,
        args: [join(ctx.repo, "dist/main.js")],
        env,
        port,
        logFile: join(ctx.work, "logs", `${name}.log`),
      });
      return Object.assign(srv, {
        /** Creates a zipball of the set; its URL and how long the POST took. */
        async prepare(set) {
          const t0 = performance.now();
          const res = await fetch(`http://127.0.0.1:${port}/v2/zipball`, {
            method: "POST",
            headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" },
            body: JSON.stringify({ objects: ctx.sets[set].objects }),
          });
          const body = await res.json();
          const createMs = performance.now() - t0;
          if (res.status !== 201) throw new Error(`zipgate POST /v2/zipball answered ${res.status}: ${JSON.stringify(body).slice(0, 500)}`);
          return { url: body.data.urls.url, createMs };
        },
      });
    },
  },
  copy: {
    label: "copy limit",
    async start(ctx, s3) {
      return nodeServer(ctx, s3, "copy-server.mjs", s3 ? "copy-s3" : "copy", "files");
    },
  },
  naive: {
    label: "naive (archiver)",
    async start(ctx, s3) {
      return nodeServer(ctx, s3, "naive-gateway.mjs", s3 ? "naive-s3" : "naive", "zip");
    },
  },
  zipstream: {
    label: "zipstream-ng",
    async start(ctx, s3) {
      if (s3) throw new Error("zipstream-ng serves local files only");
      if (!ctx.zipstreamNg) throw new Error(ctx.zipstreamSkip ?? "python3-zipstream-ng unavailable");
      const port = await freePort();
      const srv = await startServer({
        name: "zipstream-ng",
        command: "/usr/bin/python3",
        args: ["-u", join(ctx.repo, "bench/zipstream_server.py")],
        env: { PORT: String(port), BENCH_ROOT: ctx.root, BENCH_SETS: ctx.setsFile },
        port,
        logFile: join(ctx.work, "logs", "zipstream-ng.log"),
      });
      return Object.assign(srv, { prepare: async (set) => ({ url: `http://127.0.0.1:${port}/zip/${set}` }) });
    },
  },
};

async function nodeServer(ctx, s3, script, name, route) {
  const port = await freePort();
  const env = { PORT: String(port), BENCH_ROOT: ctx.root, BENCH_SETS: ctx.setsFile };
  if (s3) env.BENCH_S3 = JSON.stringify(s3);
  const srv = await startServer({
    name,
    command: process.execPath,
    args: [join(ctx.repo, "bench", script)],
    env,
    port,
    logFile: join(ctx.work, "logs", `${name}.log`),
  });
  return Object.assign(srv, { prepare: async (set) => ({ url: `http://127.0.0.1:${port}/${route}/${set}` }) });
}

export async function stopServer(srv) {
  if (srv) await stopProcess(srv.child);
}

/** Content-Length of a HEAD request. */
export function contentLength(url) {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, method: "HEAD" }, (res) => {
      const len = Number(res.headers["content-length"]);
      req.destroy();
      resolve(Number.isFinite(len) ? len : undefined);
    });
    req.once("error", (err) => (req.destroyed ? undefined : reject(err)));
    req.end();
  });
}
