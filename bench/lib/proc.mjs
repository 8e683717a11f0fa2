// Child processes of the bench (servers, clients) and what /proc says about them.
import { execFileSync, spawn } from "node:child_process";
import { openSync, readFileSync } from "node:fs";
import { connect, createServer } from "node:net";

const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

/** Every long-lived child we started; killed on the way out, whatever happens. */
const live = new Set();

function killAll(signal) {
  for (const child of live) {
    try {
      process.kill(child.pid, signal);
    } catch {}
  }
}
/** Synchronous clean-ups run on the way out (last registered first), after the kill. */
const cleanups = [];
export function atExit(fn) {
  cleanups.push(fn);
}
function cleanUp() {
  killAll("SIGKILL");
  while (cleanups.length > 0) {
    try {
      cleanups.pop()();
    } catch {}
  }
}
process.on("exit", cleanUp);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}, stopping the servers and removing the data\n`);
    process.exit(130); // runs cleanUp
  });
}

/** A free TCP port on loopback (asked of the kernel, then released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const sock = connect({ port, host: "127.0.0.1" });
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}

/**
 * Starts a server and waits until it accepts connections on `port`. Output goes to
 * `logFile`. Throws (with the log's tail) when it exits or does not listen in time.
 */
export async function startServer({ name, command, args, env, port, logFile, timeoutMs = 30_000 }) {
  const fd = openSync(logFile, "a");
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", fd, fd] });
  live.add(child);
  let exited = null;
  child.once("exit", (code, signal) => {
    exited = { code, signal };
    live.delete(child);
  });
  const deadline = Date.now() + timeoutMs;
  while (!(await canConnect(port))) {
    if (exited || Date.now() > deadline) {
      const why = exited ? `exited (${exited.code ?? exited.signal})` : `did not listen on ${port} within ${timeoutMs} ms`;
      await stopProcess(child);
      throw new Error(`${name} ${why}; log ${logFile}:\n${tail(logFile)}`);
    }
    await sleep(50);
  }
  return {
    name,
    pid: child.pid,
    port,
    child,
    logFile,
    get exited() {
      return exited;
    },
  };
}

export function tail(file, lines = 15) {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export async function stopProcess(child, graceMs = 3000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) {
    live.delete(child);
    return;
  }
  const gone = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await gone;
  clearTimeout(timer);
  live.delete(child);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** User + system CPU seconds of a process (all its threads). */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime (fields 14 and 15)
}

function statusKiB(pid, field) {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : 0;
}

/** Peak resident set since the process started, in MiB. */
export const peakRssMiB = (pid) => statusKiB(pid, "VmHWM") / 1024;
export const rssMiB = (pid) => statusKiB(pid, "VmRSS") / 1024;

/** Samples VmRSS every `everyMs`; stop() gives the highest seen, in MiB. */
export function sampleRss(pid, everyMs = 50) {
  let peak = 0;
  const take = () => {
    try {
      peak = Math.max(peak, rssMiB(pid));
    } catch {}
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return peak;
    },
  };
}

/** Bytes the process asked to read (read(2) and friends, sockets included) so far. */
export function readChars(pid) {
  const m = /^rchar:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/io`, "utf8"));
  return m ? Number(m[1]) : 0;
}

/** Runs a command to completion; resolves with its stdout (rejects on failure). */
export function run(command, args, { env, input, timeoutMs = 600_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
    live.add(child);
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      if (code === 0) resolve(out);
      else {
        const error = new Error(`${command} ${args.join(" ")} failed (${code ?? signal}): ${err.trim().slice(-2000)}`);
        reject(Object.assign(error, { exitCode: code, stdout: out }));
      }
    });
    child.stdin.end(input ?? "");
  });
}
