import { randomBytes } from "node:crypto";
import { get, type IncomingMessage } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir, writeTree } from "../helpers/archive.js";
import { type GatewayProcess, startGatewayProcess } from "../helpers/process.js";

/** A GET that reads the body at `bytesPerTick` every 10 ms, for a slow client. */
function slowGet(url: string, bytesPerTick: number): Promise<{ res: IncomingMessage; done: Promise<{ got: number; complete: boolean }> }> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let got = 0;
      const done = new Promise<{ got: number; complete: boolean }>((finish) => {
        res.on("data", (chunk: Buffer) => {
          got += chunk.length;
          if (got >= bytesPerTick) {
            res.pause();
            setTimeout(() => res.resume(), 10);
          }
        });
        res.on("end", () => finish({ got, complete: res.complete }));
        res.on("error", () => finish({ got, complete: false }));
        res.on("close", () => finish({ got, complete: res.complete }));
      });
      resolve({ res, done });
    }).on("error", reject);
  });
}

describe("shutdown that rolling deploys survive (SIGTERM to a real process)", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let root: string;

  beforeAll(async () => {
    dir = await tempDir();
    root = join(dir.path, "store");
    await writeTree(root, { "big/blob.bin": randomBytes(16 * 1024 * 1024), "docs/a.txt": "alpha" });
  });
  afterAll(async () => {
    await dir.cleanup();
  });

  async function zipball(gw: GatewayProcess, objects: unknown[]): Promise<string> {
    const res = await fetch(`${gw.url}/v2/zipball`, {
      method: "POST",
      headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" },
      body: JSON.stringify({ objects }),
    });
    expect(res.status).toBe(201);
    const u = new URL(((await res.json()) as { data: { urls: { url: string } } }).data.urls.url);
    return gw.url + u.pathname + u.search;
  }

  it("turns unready at once, closes kept-alive connections, refuses new work, lets downloads finish, exits 0", async () => {
    const gw = await startGatewayProcess({ ZIPGATE_STORAGE: root, ZIPGATE_DRAIN_TIMEOUT: "20s", ZIPGATE_SHUTDOWN_DELAY: "2s" });
    try {
      const url = await zipball(gw, [{ path: "/big/blob.bin" }]);
      // A connection that served a request and is kept alive, opened before the signal.
      const base = new URL(gw.url);
      const kept = connect(Number(base.port), base.hostname);
      let keptText = "";
      kept.on("data", (b: Buffer) => {
        keptText += b.toString("latin1");
      });
      const keptClosed = new Promise<void>((r) => kept.once("close", () => r()));
      await new Promise<void>((r) => kept.once("connect", () => r()));
      kept.write(`GET /livez HTTP/1.1\r\nhost: ${base.host}\r\n\r\n`);
      for (let i = 0; i < 100 && !keptText.includes("\r\n\r\n"); i++) await new Promise((r) => setTimeout(r, 20));
      expect(keptText).toMatch(/^HTTP\/1\.1 200/);

      const slow = await slowGet(url, 256 * 1024);
      expect(slow.res.statusCode).toBe(200);
      const slowClosed = new Promise<void>((r) => slow.res.socket.once("close", () => r()));
      gw.child.kill("SIGTERM");
      await keptClosed; // closed by the gateway, not by us
      await new Promise((r) => setTimeout(r, 200));
      // Within ZIPGATE_SHUTDOWN_DELAY the listener still answers: unready, and no new work.
      const ready = await fetch(`${gw.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ ready: false, reason: "shutting down" });
      const refused = await fetch(url);
      expect(refused.status).toBe(503);
      expect(refused.headers.get("connection")).toBe("close");
      expect(refused.headers.get("retry-after")).toBeTruthy();
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("shutting_down");
      // The download in flight finishes whole, and its connection is not kept.
      const { got, complete } = await slow.done;
      expect(complete).toBe(true);
      expect(got).toBe(Number(slow.res.headers["content-length"]));
      await slowClosed;
      expect(await gw.exited).toEqual({ code: 0, signal: null });
      // Once the delay is over the listener is closed.
      await expect(fetch(`${gw.url}/livez`)).rejects.toThrow();
      expect(gw.stdout()).toContain('"drained":true');
    } finally {
      await gw.stop();
    }
  });

  it("cuts what is still running at ZIPGATE_DRAIN_TIMEOUT, logs each cut download, and exits 1", async () => {
    const gw = await startGatewayProcess({ ZIPGATE_STORAGE: root, ZIPGATE_DRAIN_TIMEOUT: "1s" });
    try {
      const url = await zipball(gw, [{ path: "/big/blob.bin" }]);
      // 16 KiB every 10 ms: the 16 MiB would take ten seconds, longer than the drain allows
      // (socket buffers on loopback hold a few MiB of it).
      const slow = await slowGet(url, 16 * 1024);
      await new Promise((r) => setTimeout(r, 200));
      gw.child.kill("SIGTERM");
      const { got, complete } = await slow.done;
      expect(complete).toBe(false);
      expect(got).toBeLessThan(Number(slow.res.headers["content-length"]));
      expect(await gw.exited).toEqual({ code: 1, signal: null });
      const cut = gw
        .stdout()
        .split("\n")
        .find((l) => l.includes("download cut at shutdown"));
      expect(cut).toBeDefined();
      const fields = JSON.parse(cut as string) as { request_id: string; bytes_sent: number; bytes_expected: number };
      expect(fields.request_id).toMatch(/^[0-9a-f-]{36}$/);
      expect(fields.bytes_sent).toBeGreaterThan(0);
      expect(fields.bytes_expected).toBe(Number(slow.res.headers["content-length"]));
    } finally {
      await gw.stop();
    }
  });
});
