import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedEvent {
  type: string;
  data: Record<string, unknown>;
  signatureValid: boolean;
}

/** A webhook receiver that verifies the HMAC signature; fails the first `failFirst` deliveries with 500. */
export async function startWebhookReceiver(secret: string, failFirst = 0) {
  const events: ReceivedEvent[] = [];
  let attempts = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      attempts += 1;
      if (attempts <= failFirst) return void res.writeHead(500).end();
      const body = Buffer.concat(chunks).toString("utf8");
      const header = String(req.headers["x-zipgate-signature"] ?? "");
      const t = /t=(\d+)/.exec(header)?.[1] ?? "";
      const v1 = Buffer.from(/v1=([0-9a-f]+)/.exec(header)?.[1] ?? "", "hex");
      const expected = createHmac("sha256", secret).update(`${t}.${body}`).digest();
      const fresh = Math.abs(Date.now() / 1000 - Number(t)) < 300;
      const parsed = JSON.parse(body) as { type: string; data: Record<string, unknown> };
      events.push({ ...parsed, signatureValid: fresh && v1.length === expected.length && timingSafeEqual(v1, expected) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/zipgate`,
    events,
    attempts: () => attempts,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
