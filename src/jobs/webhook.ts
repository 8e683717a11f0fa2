import { createHmac, randomUUID } from "node:crypto";

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
  /** Stops retrying (the gateway is stopping); the delivery then reports what it got. */
  signal?: AbortSignal | undefined;
  /** How a wait between attempts is made; tests observe the delays through it. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** Longest wait between attempts, whatever an answer's Retry-After asks. */
const MAX_WAIT_MS = 10 * 60 * 1000;

export interface Delivery {
  /** The same for every attempt of one event: receivers deduplicate on it. */
  id: string;
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

/**
 * Posts an event, retrying non-2xx answers and network errors with exponential backoff and
 * full jitter (a wait between half and one and a half times the step), or what an answer's
 * `Retry-After` asks, up to ten minutes. Every attempt carries the same delivery id
 * (`X-Zipgate-Delivery`, and `id` in the body).
 */
export async function deliver(options: WebhookOptions, event: { type: string; data: unknown }): Promise<Delivery> {
  const id = randomUUID();
  const body = JSON.stringify({ id, type: event.type, created_at: new Date().toISOString(), data: event.data });
  const attempts = options.attempts ?? 5;
  const sleep = options.sleep ?? wait;
  let last: Pick<Delivery, "last_status" | "last_error"> = {};
  let retryAfter: number | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const timestamp = Math.floor(Date.now() / 1000);
    retryAfter = undefined;
    try {
      const res = await fetch(options.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-zipgate-event": event.type,
          "x-zipgate-delivery": id,
          "x-zipgate-signature": signature(options.secret, timestamp, body),
        },
        body,
        signal: options.signal
          ? AbortSignal.any([options.signal, AbortSignal.timeout(options.timeoutMs ?? 10_000)])
          : AbortSignal.timeout(options.timeoutMs ?? 10_000),
      });
      await res.arrayBuffer().catch(() => {});
      last = { last_status: res.status };
      if (res.ok) return { id, state: "delivered", attempts: attempt, last_status: res.status, delivered_at: new Date().toISOString() };
      retryAfter = retryAfterMs(res.headers.get("retry-after"));
    } catch (err) {
      last = { last_error: err instanceof Error ? err.message : String(err) };
    }
    if (attempt === attempts || options.signal?.aborted) return { id, state: "failed", attempts: attempt, ...last };
    const step = (options.backoffMs ?? 1000) * 2 ** (attempt - 1);
    await sleep(Math.min(MAX_WAIT_MS, retryAfter ?? Math.round(step * (0.5 + Math.random()))), options.signal).catch(() => {});
    if (options.signal?.aborted) return { id, state: "failed", attempts: attempt, ...last };
  }
  return { id, state: "failed", attempts, ...last };
}

/** `Retry-After` as seconds or an HTTP date, in ms from now; undefined when absent or unreadable. */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function wait(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}
