import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { TEST_KEY } from "./gateway.js";

const MAIN = fileURLToPath(new URL("../../dist/main.js", import.meta.url));

/** A gateway running as its own process (`node dist/main.js`, built by the global setup). */
export interface GatewayProcess {
  url: string;
  key: string;
  child: ChildProcess;
  /** Everything the process wrote, as it arrives. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or signal) once the process has ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Ends the process (SIGKILL unless told otherwise) and waits for it. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `node dist/main.js` on port 0 with the given environment (the test key and
 * signing secret unless overridden) and waits for the line that names its address.
 */
export async function startGatewayProcess(env: Record<string, string>): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [MAIN], {
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      PORT: "0",
      HOST: "127.0.0.1",
      ZIPGATE_API_KEYS: TEST_KEY,
      ZIPGATE_SIGNING_SECRET: "test-signing-secret-0123456789abcdef",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout?.setEncoding("utf8").on("data", (s: string) => {
    out += s;
  });
  child.stderr?.setEncoding("utf8").on("data", (s: string) => {
    err += s;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the gateway did not start in time:\n${err}`)), 30_000);
    const look = (): void => {
      const m = /listening on (\S+):(\d+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(`http://${m[1]}:${m[2]}`);
      }
    };
    child.stderr?.on("data", look);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the gateway exited (${code ?? signal}) before listening:\n${err}`));
    });
  });
  return {
    url,
    key: TEST_KEY,
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    stop: async (signal = "SIGKILL") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Runs `node dist/main.js args…` to its end (it must end within 30 s): exit code and output. */
export async function runMain(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (s: string) => {
    stdout += s;
  });
  child.stderr?.setEncoding("utf8").on("data", (s: string) => {
    stderr += s;
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const code = await new Promise<number | null>((resolve) => child.once("close", (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/**
 * Open descriptors of a process, leaving out TCP sockets connected to `ignorePorts`
 * (a store's keep-alive pool grows and shrinks with load, and is bounded by its agent).
 */
export function openDescriptors(pid: number, ignorePorts: number[] = []): number {
  return descriptorTargets(pid, ignorePorts).length;
}

/** What each counted descriptor points at (`/proc/<pid>/fd/*` link targets). */
export function descriptorTargets(pid: number, ignorePorts: number[] = []): string[] {
  const ignored = new Set<string>();
  if (ignorePorts.length > 0) {
    for (const table of ["tcp", "tcp6"]) {
      let text = "";
      try {
        text = readFileSync(`/proc/${pid}/net/${table}`, "utf8");
      } catch {
        continue;
      }
      for (const line of text.split("\n").slice(1)) {
        const cols = line.trim().split(/\s+/);
        const remote = cols[2];
        const inode = cols[9];
        if (!remote || !inode) continue;
        const port = Number.parseInt(remote.split(":")[1] ?? "", 16);
        if (ignorePorts.includes(port)) ignored.add(inode);
      }
    }
  }
  const targets: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target = "";
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m && ignored.has(m[1] as string)) continue;
    targets.push(target);
  }
  return targets;
}

/** Resident memory of a process, in MiB. */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : 0;
}
