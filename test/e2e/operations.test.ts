import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VERSION } from "../../src/version.js";
import { runMain, startGatewayProcess } from "../helpers/process.js";
import { freshPrefix, s3Env, s3Server } from "../helpers/s3.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "zipgate-ops-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A process that must refuse to start: exit 2, one message naming the problem, no stack. */
async function refused(env: Record<string, string>): Promise<string> {
  const { code, stderr } = await runMain([], { ZIPGATE_STORAGE: join(dir, "never"), PORT: "0", ...env });
  expect(code, stderr).toBe(2);
  expect(stderr).toMatch(/^zipgate: invalid configuration:/);
  expect(stderr).not.toMatch(/\n\s+at /);
  return stderr;
}

describe("the process, as an operator runs it", () => {
  it("answers --help with every setting and --version with the package's version", async () => {
    const help = await runMain(["--help"]);
    expect(help.code).toBe(0);
    for (const name of [
      "PORT",
      "ZIPGATE_STORAGE",
      "ZIPGATE_API_KEYS",
      "ZIPGATE_CORS_ORIGINS",
      "ZIPGATE_TRUST_PROXY",
      "ZIPGATE_KEEPALIVE_TIMEOUT",
      "LOG_LEVEL",
      "_FILE",
    ]) {
      expect(help.stdout).toContain(name);
    }
    const version = await runMain(["--version"]);
    expect(version).toMatchObject({ code: 0, stdout: `${VERSION}\n` });
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
    const wrong = await runMain(["--port=8080"]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/unknown argument --port=8080/);
  });

  it("refuses a mistyped variable instead of generating a new key", async () => {
    const stderr = await refused({ ZIPGATE_API_KEY: "abcdefghijklmnopqrstuvwxyz" });
    expect(stderr).toContain("ZIPGATE_API_KEY is not a zipgate setting (did you mean ZIPGATE_API_KEYS?)");
    // The key given under the wrong name is not echoed.
    expect(stderr).not.toContain("abcdefghijklmnopqrstuvwxyz");
  });

  it("refuses ports that are not plain digits, and a CIDR with a fractional prefix, all at once with exit 2", async () => {
    for (const port of ["0x1F90", "1e3", " 8080 "]) expect(await refused({ PORT: port })).toContain(`PORT must be an integer from 0 to 65535 (got "${port}")`);
    const both = await refused({ PORT: "1e3", ZIPGATE_URL_ALLOW: "10.0.0.0/8.5" });
    expect(both).toContain("PORT must be");
    expect(both).toContain(`ZIPGATE_URL_ALLOW: "10.0.0.0/8.5" has a bad prefix length`);
  });

  it("reads its keys from a *_FILE (with = padding), says its version at start and in /livez, and keeps connections for the keep-alive timeout", async () => {
    const key = "c2VjcmV0LWtleS1mb3ItdGVzdHM=";
    await writeFile(join(dir, "keys"), `${key}\n`);
    await writeFile(join(dir, "signing"), "0123456789abcdef0123456789abcdef0123\n");
    const gw = await startGatewayProcess({
      ZIPGATE_STORAGE: join(dir, "data"),
      ZIPGATE_API_KEYS: "",
      ZIPGATE_API_KEYS_FILE: join(dir, "keys"),
      ZIPGATE_SIGNING_SECRET: "",
      ZIPGATE_SIGNING_SECRET_FILE: join(dir, "signing"),
      ZIPGATE_KEEPALIVE_TIMEOUT: "75s",
    });
    try {
      expect(gw.stderr()).toContain(`zipgate ${VERSION} listening on`);
      const live = await fetch(`${gw.url}/livez`);
      expect(await live.json()).toEqual({ ok: true, version: VERSION });
      const created = await fetch(`${gw.url}/v2/zipball`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ objects: [{ path: "/missing.txt" }] }),
      });
      // Authenticated: the object is missing, the key is not refused.
      expect(created.status).toBe(404);
      const keepAlive = await new Promise<string | undefined>((resolve, reject) => {
        const req = request(`${gw.url}/livez`, { agent: false, headers: { connection: "keep-alive" } }, (res) => {
          res.resume();
          resolve(res.headers["keep-alive"] as string | undefined);
        });
        req.on("error", reject);
        req.end();
      });
      expect(keepAlive).toBe("timeout=75");
      // The secrets never reach the log.
      expect(gw.stdout() + gw.stderr()).not.toContain(key);
    } finally {
      await gw.stop("SIGTERM");
    }
  });

  it("is not ready with a wrong S3 secret, says why, and logs probes only at debug level", async () => {
    const s3 = s3Server();
    const gw = await startGatewayProcess({ ...s3Env(freshPrefix("ops"), { accessKeyId: s3.admin.accessKeyId, secretAccessKey: "wrong-secret" }) });
    try {
      expect((await fetch(`${gw.url}/livez`)).status).toBe(200);
      const ready = await fetch(`${gw.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ ready: false, reason: "storage_credentials" });
      await fetch(`${gw.url}/metrics`).then((r) => r.text());
      const lines = gw
        .stdout()
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { msg: string; level: string; path?: string });
      expect(lines.filter((l) => l.msg === "request" && ["/livez", "/readyz", "/metrics"].includes(l.path ?? ""))).toEqual([]);
      expect(lines.some((l) => l.level === "warn" && l.msg.startsWith("readiness: the store does not answer"))).toBe(true);
      expect(gw.stdout()).not.toContain("wrong-secret");
    } finally {
      await gw.stop("SIGTERM");
    }
    const debug = await startGatewayProcess({ ZIPGATE_STORAGE: join(dir, "debug"), LOG_LEVEL: "debug" });
    try {
      await fetch(`${debug.url}/livez`).then((r) => r.text());
      await new Promise((r) => setTimeout(r, 100));
      expect(debug.stdout()).toMatch(/"level":"debug".*"path":"\/livez"/);
    } finally {
      await debug.stop("SIGTERM");
    }
  });
});
