import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { type AddressInfo, connect, createServer, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";

const execFileP = promisify(execFile);

/**
 * Throws (never skips) when a program the tests drive is not installed, naming
 * the Debian package: `./scripts/test.sh` installs them all.
 */
export function requireTools(tools: Record<string, string>): void {
  const missing = Object.entries(tools).filter(([cmd]) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status !== 0);
  if (missing.length > 0) {
    throw new Error(
      `missing programs: ${missing.map(([cmd, pkg]) => `${cmd} (Debian package ${pkg})`).join(", ")}; ./scripts/test.sh installs them (apt-get install ${missing.map(([, pkg]) => pkg).join(" ")})`,
    );
  }
}

/** Runs a program to completion; a non-zero exit throws with its stderr. */
export async function runTool(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  try {
    return await execFileP(cmd, args, { maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    const e = err as { code?: number; stderr?: string; stdout?: string };
    throw new Error(`${cmd} ${args.join(" ")} exited ${e.code}: ${e.stderr ?? ""}${e.stdout ?? ""}`);
  }
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code, signal) => resolve({ code, signal }));
  });
}

async function sizeOf(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch {
    return 0;
  }
}

/** A proxy that interrupts downloads; see `startInterrupter`. */
export interface Interrupter {
  mode: "cut" | "stall";
  after: number;
  /** `http://127.0.0.1:<port>`: use it in place of the origin's base URL. */
  url: string;
  /** Body bytes forwarded so far, over all connections. */
  forwarded(): number;
  close(): Promise<void>;
}

/**
 * A TCP proxy in front of an HTTP server that interrupts every response after
 * `after` body bytes, deterministically (no rate limits, no timing):
 * - `"cut"`: the connection is closed there, as a dropped network link would;
 *   the client sees a premature end and exits with an error.
 * - `"stall"`: nothing more is forwarded; the test then kills the client, as
 *   a user cancelling it or a crash would.
 * Either way the origin's connection is closed, so its response is aborted.
 */
export async function startInterrupter(origin: string, options: { mode: "cut" | "stall"; after: number }): Promise<Interrupter> {
  const target = new URL(origin);
  const sockets = new Set<Socket>();
  let forwarded = 0;
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    client.on("close", () => {
      sockets.delete(client);
      upstream.destroy();
    });
    upstream.on("close", () => sockets.delete(upstream));
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    client.pipe(upstream);
    let head = Buffer.alloc(0);
    let inBody = false;
    let body = 0;
    let stopped = false;
    upstream.on("data", (chunk: Buffer) => {
      if (stopped) return;
      let data = chunk;
      if (!inBody) {
        head = Buffer.concat([head, chunk]);
        const i = head.indexOf("\r\n\r\n");
        if (i < 0) return;
        client.write(head.subarray(0, i + 4));
        inBody = true;
        data = head.subarray(i + 4);
      }
      const part = data.subarray(0, Math.max(0, options.after - body));
      body += part.length;
      forwarded += part.length;
      if (part.length > 0 && !client.write(part)) {
        upstream.pause();
        client.once("drain", () => upstream.resume());
      }
      if (body >= options.after) {
        stopped = true;
        upstream.destroy();
        if (options.mode === "cut") client.end();
      }
    });
    upstream.on("end", () => {
      if (!stopped) client.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    ...options,
    url: `http://127.0.0.1:${port}`,
    forwarded: () => forwarded,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Runs a download client (writing `file`) through an interrupter and returns
 * the bytes left in `file`. `"cut"`: the client must fail by itself. `"stall"`:
 * once the interrupter has forwarded everything it will and the file holds it
 * (but what the client may still buffer, under 64 KiB), the client is killed.
 * Throws if the client succeeds: then nothing was interrupted.
 */
export async function interruptedDownload(cmd: string, args: string[], file: string, via: Interrupter): Promise<number> {
  const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  const done = exited(child);
  let result: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void done.then(
    (r) => {
      result = r;
    },
    () => {
      result = { code: -1, signal: null };
    },
  );
  if (via.mode === "stall") {
    try {
      while (via.forwarded() < via.after || (await sizeOf(file)) < via.after - 64 * 1024) {
        if (result) break;
        await sleep(10);
      }
    } finally {
      if (!result) child.kill("SIGKILL");
    }
  }
  const { code, signal } = await done;
  if (code === 0) throw new Error(`${cmd} completed: the download was not interrupted (${via.mode} after ${via.after} bytes)`);
  if (via.mode === "stall" && signal !== "SIGKILL") throw new Error(`${cmd} ended by itself (code ${code}) before it was killed: ${stderr}`);
  return sizeOf(file);
}

/** A file's SHA-256 and size, streamed. */
export async function sha256File(file: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * 1024 * 1024 }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest("hex"), size };
}

const HASHER = `
import base64, hashlib, json, sys
keep = int(sys.argv[1])
h = hashlib.sha256()
size = 0
tail = b""
while True:
    b = sys.stdin.buffer.read(1 << 22)
    if not b:
        break
    h.update(b)
    size += len(b)
    if keep:
        tail = (tail + b[-keep:])[-keep:]
print(json.dumps({"sha256": h.hexdigest(), "size": size, "tail": base64.b64encode(tail).decode()}))
`;

/**
 * Runs a client that writes the body to stdout and hashes it on the way in
 * another process (Python's hashlib), so neither a copy on disk nor the
 * test's event loop (which also runs the gateway) is involved. Keeps the
 * last `tailBytes` bytes.
 */
export async function sha256OfOutput(cmd: string, args: string[], tailBytes = 0): Promise<{ sha256: string; size: number; tail: Buffer }> {
  const client = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  const hasher = spawn("python3", ["-c", HASHER, String(tailBytes)], { stdio: [client.stdout, "pipe", "pipe"] });
  let stderr = "";
  let stdout = "";
  client.stderr?.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  hasher.stderr?.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  hasher.stdout?.on("data", (c: Buffer) => {
    stdout += c.toString();
  });
  const [c, h] = await Promise.all([exited(client), exited(hasher)]);
  if (c.code !== 0 || h.code !== 0) throw new Error(`${cmd} ${args.join(" ")} | hash: exited ${c.code ?? c.signal}, ${h.code ?? h.signal}: ${stderr}`);
  const out = JSON.parse(stdout) as { sha256: string; size: number; tail: string };
  return { sha256: out.sha256, size: out.size, tail: Buffer.from(out.tail, "base64") };
}

/** A TCP port that was free a moment ago, for servers that cannot listen on port 0 and report it (nginx). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** The gateway's JSON request log lines (msg "request"). */
export interface RequestLog {
  method: string;
  path: string;
  status: number;
}

export function requestLogs(logs: readonly string[]): RequestLog[] {
  return logs
    .flatMap((l) => l.split("\n"))
    .filter(Boolean)
    .map((l) => JSON.parse(l) as RequestLog & { msg: string })
    .filter((l) => l.msg === "request");
}

/** The GETs the gateway answered for one zipball (its log shortens the id to 8 characters). */
export function downloadGets(logs: readonly string[], ballId: string): RequestLog[] {
  return requestLogs(logs).filter((l) => l.method === "GET" && l.path.startsWith(`/${ballId.slice(0, 8)}`));
}
