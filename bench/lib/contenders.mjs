// The servers under test: zipgate (dist/main.js), the build of another ref (--against) and
// the comparisons, each started as its own process on loopback so its CPU, memory and reads
// can be read from /proc.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { NGINX } from "./nginx.mjs";
import { freePort, startServer, stopProcess } from "./proc.mjs";

export const API_KEY = "bench-key-0123456789abcdef";
const SIGNING_SECRET = "bench-signing-secret-0123456789abcdef-0123456789";

/** The build --against names: its checkout (with dist/ built) and its label. Set by run.mjs. */
export const AGAINST = { checkout: "", label: "against" };

/**
 * ctx: { repo, work, setsFile, root, s3 } — s3 (optional): { endpoint, region, credentials,
 * bucket, prefix } for the S3 flavour of each server.
 */
export const CONTENDERS = {
  zipgate: {
    label: "zipgate",
    start: (ctx, s3) => startZipgate(ctx, s3, ctx.repo, "zipgate"),
  },
  against: {
    get label() {
      return AGAINST.label;
    },
    start: (ctx, s3) => startZipgate(ctx, s3, AGAINST.checkout, "against"),
  },
  nginx: {
    label: "nginx sendfile",
    async start(ctx, s3) {
      if (s3) throw new Error("serves local files only");
      return startNginx(ctx);
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

/** A zipgate process of the build in `checkout`, on the folder store or S3. */
async function startZipgate(ctx, s3, checkout, role) {
  const port = await freePort();
  // Each build keeps its own state (CRC index, manifests): on the folder store a root of its
  // own whose files are hard links of the same data (same inodes, same page cache); on S3 a
  // signing secret of its own, so neither trusts the other's records.
  const root = role === "zipgate" ? ctx.root : (ctx.roots?.[role] ?? ctx.root);
  const env = {
    PORT: String(port),
    HOST: "127.0.0.1",
    ZIPGATE_API_KEYS: API_KEY,
    ZIPGATE_SIGNING_SECRET: role === "zipgate" ? SIGNING_SECRET : `${SIGNING_SECRET}-${role}`,
    ZIPGATE_MAX_FILES: "200000",
    ZIPGATE_MAX_BYTES: "100 GiB",
    ZIPGATE_STORAGE: root,
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
  const name = s3 ? `${role}-s3` : role;
  // Each build started the way `npm start` starts it: through its bin/zipgate where it has one
  // (which picks Node flags for its store), else `node dist/main.js`. GATEWAY_NODE_ARGS adds
  // Node options for both builds (--cpu-prof; through NODE_OPTIONS for the launcher).
  const launcher = join(checkout, "bin/zipgate");
  const extra = (process.env.GATEWAY_NODE_ARGS ?? "").split(" ").filter(Boolean);
  if (existsSync(launcher) && extra.length > 0) env.NODE_OPTIONS = extra.join(" ");
  const srv = await startServer({
    name,
    command: existsSync(launcher) ? launcher : process.execPath,
    args: existsSync(launcher) ? [] : [...extra, join(checkout, "dist/main.js")],
    env,
    port,
    logFile: join(ctx.work, "logs", `${name}.log`),
  });
  return Object.assign(srv, {
    /** Creates a zipball of the set; its URL and how long the POST took. */
    async prepare(set, options = {}) {
      const t0 = performance.now();
      const res = await fetch(`http://127.0.0.1:${port}/v2/zipball`, {
        method: "POST",
        headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" },
        body: JSON.stringify({ objects: ctx.sets[set].objects, ...options }),
      });
      const body = await res.json();
      const createMs = performance.now() - t0;
      if (res.status !== 201) throw new Error(`zipgate POST /v2/zipball answered ${res.status}: ${JSON.stringify(body).slice(0, 500)}`);
      return { url: body.data.urls.url, createMs };
    },
  });
}

/**
 * nginx serving the folder with sendfile (the copy limit for plain files): one process
 * (master_process off, so its CPU is the pid's), access log off; `srv.url` is the list of
 * the set's files, fetched one after another by one curl over one connection.
 */
async function startNginx(ctx) {
  const port = await freePort();
  const dir = join(ctx.work, "nginx");
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, "nginx.conf");
  writeFileSync(
    conf,
    `daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, "nginx.pid")};
error_log ${join(dir, "error.log")} warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    root ${ctx.root};
    default_type application/octet-stream;
  }
}
`,
  );
  const srv = await startServer({ name: "nginx", command: NGINX, args: ["-p", dir, "-c", conf], env: {}, port, logFile: join(ctx.work, "logs", "nginx.log") });
  return Object.assign(srv, {
    prepare: async (set) => ({ url: ctx.sets[set].keys.map((k) => `http://127.0.0.1:${port}/${k}`) }),
  });
}

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
