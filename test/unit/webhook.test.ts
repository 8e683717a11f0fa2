import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deliver, retryAfterMs } from "../../src/jobs/webhook.js";
import { UrlFetcher } from "../../src/sources/url.js";

describe("webhook deliveries", () => {
  const seen: Array<{ delivery: string; body: { id: string; type: string } }> = [];
  let answers: Array<{ status: number; headers?: Record<string, string> }> = [];
  const server = createServer((req, res) => {
    let text = "";
    req.setEncoding("utf8").on("data", (s: string) => {
      text += s;
    });
    req.on("end", () => {
      seen.push({ delivery: String(req.headers["x-zipgate-delivery"]), body: JSON.parse(text) });
      const next = answers.shift() ?? { status: 204 };
      res.writeHead(next.status, next.headers).end();
    });
  });
  let url = "";
  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("carries one delivery id through every attempt, honours Retry-After, and jitters its own backoff", async () => {
    seen.length = 0;
    answers = [{ status: 503, headers: { "retry-after": "7" } }, { status: 500 }, { status: 500 }];
    const waits: number[] = [];
    const result = await deliver(
      { url, secret: "s".repeat(16), attempts: 5, backoffMs: 1000, sleep: async (ms) => void waits.push(ms) },
      { type: "zip.completed", data: { uuid: "x" } },
    );
    expect(result).toMatchObject({ state: "delivered", attempts: 4, last_status: 204 });
    expect(new Set(seen.map((s) => s.delivery)).size).toBe(1);
    expect(seen.every((s) => s.body.id === result.id && s.delivery === result.id)).toBe(true);
    expect(waits[0]).toBe(7000);
    // Backoff steps of 2 s and 4 s, each between half and one and a half times the step.
    expect(waits[1]).toBeGreaterThanOrEqual(1000);
    expect(waits[1]).toBeLessThanOrEqual(3000);
    expect(waits[2]).toBeGreaterThanOrEqual(2000);
    expect(waits[2]).toBeLessThanOrEqual(6000);
  });

  it("reads Retry-After as seconds or as an HTTP date", () => {
    expect(retryAfterMs("120")).toBe(120_000);
    expect(retryAfterMs(new Date(10_000 + 30_000).toUTCString(), 10_000)).toBe(30_000);
    expect(retryAfterMs("soon")).toBeUndefined();
    expect(retryAfterMs(null)).toBeUndefined();
  });
});

describe("webhook answers", () => {
  /** A receiver per test: `handle` answers, `written` counts the answer bytes it got out. */
  async function receiver(handle: (req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse) => void) {
    const server = createServer((req, res) => {
      req.resume();
      req.on("end", () => handle(req, res));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    return {
      url,
      close: () =>
        new Promise<void>((r) => {
          server.closeAllConnections();
          server.close(() => r());
        }),
    };
  }
  const opts = (url: string) => ({ url, secret: "s".repeat(16), attempts: 2, backoffMs: 1, timeoutMs: 1500, sleep: async () => {} });

  it("reads a few KiB of an endless answer and closes the connection: delivered, nothing held", async () => {
    let written = 0;
    let closed!: () => void;
    const gone = new Promise<void>((r) => {
      closed = r;
    });
    const hook = await receiver((_req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      const chunk = Buffer.alloc(64 * 1024);
      const more = (): void => {
        while (!res.destroyed && written < 2 * 1024 ** 3 && res.write(chunk)) written += chunk.length;
      };
      res.on("drain", more);
      res.on("close", closed);
      more();
    });
    try {
      const result = await deliver(opts(hook.url), { type: "zip.completed", data: {} });
      expect(result).toMatchObject({ state: "delivered", attempts: 1, last_status: 200 });
      await gone;
      // Socket buffers hold a few MiB at most; a whole read would have been 2 GiB.
      expect(written).toBeLessThan(64 * 1024 * 1024);
    } finally {
      await hook.close();
    }
  });

  it("counts an answer whose body does not come in time as a failed attempt, not a delivery", async () => {
    const hook = await receiver((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.flushHeaders(); // the head, then nothing
    });
    try {
      const result = await deliver(opts(hook.url), { type: "zip.completed", data: {} });
      expect(result.state).toBe("failed");
      expect(result.attempts).toBe(2);
      expect(result.last_error).toMatch(/within 1500 ms/);
    } finally {
      await hook.close();
    }
  });

  it("checks every redirect's target like a URL object's (loopback refused), and follows only 307 and 308", async () => {
    const inner = await receiver((_req, res) => res.writeHead(204).end());
    const to = await receiver((_req, res) => res.writeHead(307, { location: inner.url }).end());
    const found = await receiver((_req, res) => res.writeHead(302, { location: inner.url }).end());
    try {
      const refused = await deliver(opts(to.url), { type: "zip.completed", data: {} });
      expect(refused.state).toBe("failed");
      expect(refused.last_error).toMatch(/not a public address/);
      const allowed = await deliver({ ...opts(to.url), urls: new UrlFetcher({ allow: ["127.0.0.1"] }) }, { type: "zip.completed", data: {} });
      expect(allowed).toMatchObject({ state: "delivered", last_status: 204 });
      const notFollowed = await deliver({ ...opts(found.url), urls: new UrlFetcher({ allow: ["127.0.0.1"] }) }, { type: "zip.completed", data: {} });
      expect(notFollowed).toMatchObject({ state: "failed", last_status: 302 });
      expect(notFollowed.last_error).toMatch(/only 307 and 308/);
    } finally {
      await Promise.all([inner.close(), to.close(), found.close()]);
    }
  });
});
