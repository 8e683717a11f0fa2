import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "./clients.js";

/** Debian installs nginx in /usr/sbin, which is not on every user's PATH. */
export const NGINX = existsSync("/usr/sbin/nginx") ? "/usr/sbin/nginx" : "nginx";

export interface RunningNginx {
  url: string;
  /** The access log: one line per client request, `<request> "<range>" <status> <cache status> <bytes>`. */
  accessLog(): Promise<string>;
  errorLog(): Promise<string>;
  close(): Promise<void>;
}

/** Slice size of the cache in front, in bytes (`slice 1m`). */
export const SLICE = 1024 * 1024;

/**
 * nginx as a caching reverse proxy (a CDN edge) in front of `upstream`, run
 * in the foreground from its own prefix in `dir` with its own config: the
 * slice module fetches the origin in 1 MiB ranges and caches every slice
 * under its own key, the way CDNs cache large files.
 */
export async function startNginx(options: { upstream: string; dir: string }): Promise<RunningNginx> {
  const { upstream, dir } = options;
  const version = spawnSync(NGINX, ["-V"], { encoding: "utf8" });
  if (version.error) throw new Error(`nginx cannot run (Debian package nginx; ./scripts/test.sh installs it): ${version.error.message}`);
  if (!/--with-http_slice_module/.test(version.stderr)) throw new Error(`this nginx has no slice module:\n${version.stderr}`);
  for (const sub of ["cache", "tmp"]) await mkdir(join(dir, sub), { recursive: true });
  const errorLog = join(dir, "error.log");
  const accessLog = join(dir, "access.log");
  const upstreamHost = new URL(upstream).host;

  // Listening on port 0 would work, but nginx does not say which port it got:
  // take a free one, and try again if another process took it meanwhile.
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const conf = join(dir, "nginx.conf");
    await writeFile(
      conf,
      `${process.getuid?.() === 0 ? "user root;\n" : ""}worker_processes 1;
error_log ${errorLog} info;
pid ${join(dir, "nginx.pid")};
events { worker_connections 256; }
http {
  default_type application/octet-stream;
  log_format edge '$request "$http_range" $status $upstream_cache_status $body_bytes_sent';
  access_log ${accessLog} edge;
  client_body_temp_path ${join(dir, "tmp", "body")};
  proxy_temp_path ${join(dir, "tmp", "proxy")};
  fastcgi_temp_path ${join(dir, "tmp", "fastcgi")};
  uwsgi_temp_path ${join(dir, "tmp", "uwsgi")};
  scgi_temp_path ${join(dir, "tmp", "scgi")};
  proxy_cache_path ${join(dir, "cache")} levels=1:2 keys_zone=edge:10m max_size=2g inactive=1h use_temp_path=off;
  server {
    listen 127.0.0.1:${port};
    location / {
      slice 1m;
      proxy_cache edge;
      proxy_cache_key $uri$is_args$args$slice_range;
      proxy_set_header Range $slice_range;
      proxy_cache_valid 200 206 1h;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://${upstreamHost};
      add_header X-Cache-Status $upstream_cache_status always;
    }
  }
}
`,
    );
    const child = spawn(NGINX, ["-e", errorLog, "-p", dir, "-c", conf, "-g", "daemon off;"], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr?.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    if (await listening(port, child, join(dir, "nginx.pid"))) {
      return {
        url: `http://127.0.0.1:${port}`,
        accessLog: () => readFile(accessLog, "utf8").catch(() => ""),
        errorLog: () => readFile(errorLog, "utf8").catch(() => ""),
        close: async () => {
          if (child.exitCode === null && child.signalCode === null) {
            // SIGQUIT: graceful shutdown of master and workers.
            child.kill("SIGQUIT");
            const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
            await exit;
            clearTimeout(timer);
          }
        },
      };
    }
    child.kill("SIGKILL");
    await exit;
    const log = await readFile(errorLog, "utf8").catch(() => "");
    if (attempt >= 3 || !/Address already in use/.test(log + stderr)) {
      throw new Error(`nginx did not start: ${stderr}\n${log}`);
    }
  }
}

/**
 * True once this nginx has written its pid file (it has bound its port) and
 * the port accepts connections; false if it exited first.
 */
async function listening(port: number, child: ChildProcess, pidFile: string): Promise<boolean> {
  for (let i = 0; i < 500; i++) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    const pid = (await readFile(pidFile, "utf8").catch(() => "")).trim();
    const ok =
      pid === String(child.pid) &&
      (await new Promise<boolean>((resolve) => {
        const socket = connect(port, "127.0.0.1");
        socket.once("connect", () => {
          socket.destroy();
          resolve(true);
        });
        socket.once("error", () => resolve(false));
      }));
    if (ok) return true;
    await sleep(20);
  }
  return false;
}
