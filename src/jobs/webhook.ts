import { createHmac } from "node:crypto";

export interface WebhookOptions {
  url: string;
  /** HMAC-SHA256 key for the signature header. */
  secret: string;
  /** Attempts in all. @default 5 */
  attempts?: number;
  /** First retry delay; doubled each time. @default 1000 */
  backoffMs?: number;
  /** Per-attempt timeout. @default 10000 */
  timeoutMs?: number;
}

export interface Delivery {
  state: "delivered" | "failed";
  attempts: number;
  last_status?: number | undefined;
  last_error?: string | undefined;
  delivered_at?: string | undefined;
}

/**
 * `X-Zipgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`:
 * the receiver recomputes it over the raw body and rejects stale timestamps.
 */
export function signature(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

/** Posts an event, retrying non-2xx answers and network errors with exponential backoff. */
export async function deliver(options: WebhookOptions, event: { type: string; data: unknown }): Promise<Delivery> {
  const body = JSON.stringify({ type: event.type, created_at: new Date().toISOString(), data: event.data });
  const attempts = options.attempts ?? 5;
  let last: Pick<Delivery, "last_status" | "last_error"> = {};
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const timestamp = Math.floor(Date.now() / 1000);
    try {
      const res = await fetch(options.url, {
        method: "POST",
        headers: { "content-type": "application/json", "x-zipgate-event": event.type, "x-zipgate-signature": signature(options.secret, timestamp, body) },
        body,
        signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
      });
      await res.arrayBuffer().catch(() => {});
      last = { last_status: res.status };
      if (res.ok) return { state: "delivered", attempts: attempt, last_status: res.status, delivered_at: new Date().toISOString() };
    } catch (err) {
      last = { last_error: err instanceof Error ? err.message : String(err) };
    }
    if (attempt < attempts) await new Promise((r) => setTimeout(r, (options.backoffMs ?? 1000) * 2 ** (attempt - 1)));
  }
  return { state: "failed", attempts, ...last };
}
