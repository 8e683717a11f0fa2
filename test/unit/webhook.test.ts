import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deliver, retryAfterMs } from "../../src/jobs/webhook.js";

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
