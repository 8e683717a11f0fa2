import { createHmac, randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { safeUrl, UrlFetcher } from "../sources/url.js";

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
  /**
   * The guard for addresses reached by redirects (the configured URL itself is the
   * operator's): the URL objects' one, with its allow list. @default one with no allow list
   */
  urls?: UrlFetcher | undefined;
}

/** Bytes of a receiver's answer read (and discarded); past them the connection is closed. */
export const WEBHOOK_ANSWER_BYTES = 4096;
/** Redirects followed per attempt: only 307 and 308, which keep the POST and its body. */
const MAX_REDIRECTS = 3;

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
  const urls = options.urls ?? new UrlFetcher();
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const timestamp = Math.floor(Date.now() / 1000);
    retryAfter = undefined;
    // One deadline for the whole attempt: connecting, every redirect, the answer's head and
    // its first bytes. An answer not read by then is a failed attempt, whatever its status.
    const timeout = AbortSignal.timeout(options.timeoutMs ?? 10_000);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    try {
      const res = await post(urls, new URL(options.url), {
        headers: {
          "content-type": "application/json",
          "x-zipgate-event": event.type,
          "x-zipgate-delivery": id,
          "x-zipgate-signature": signature(options.secret, timestamp, body),
        },
        body,
        signal,
      });
      const status = res.statusCode ?? 0;
      last = { last_status: status };
      if (status >= 200 && status < 300) return { id, state: "delivered", attempts: attempt, last_status: status, delivered_at: new Date().toISOString() };
      if (status >= 300 && status < 400) last.last_error = `answered ${status}; only 307 and 308 redirects are followed, at most ${MAX_REDIRECTS}`;
      retryAfter = retryAfterMs(headerText(res.headers["retry-after"]));
    } catch (err) {
      last = { last_error: timeout.aborted ? `no answer within ${options.timeoutMs ?? 10_000} ms` : err instanceof Error ? err.message : String(err) };
    }
    if (attempt === attempts || options.signal?.aborted) return { id, state: "failed", attempts: attempt, ...last };
    const step = (options.backoffMs ?? 1000) * 2 ** (attempt - 1);
    await sleep(Math.min(MAX_WAIT_MS, retryAfter ?? Math.round(step * (0.5 + Math.random()))), options.signal).catch(() => {});
    if (options.signal?.aborted) return { id, state: "failed", attempts: attempt, ...last };
  }
  return { id, state: "failed", attempts, ...last };
}

/**
 * POSTs the event and reads at most WEBHOOK_ANSWER_BYTES of the answer before closing the
 * connection, so a receiver answering with gigabytes costs a few KiB. Follows 307 and 308
 * (each hop past the first checked by the URL guard), nothing else.
 */
async function post(urls: UrlFetcher, start: URL, init: { headers: Record<string, string>; body: string; signal: AbortSignal }): Promise<IncomingMessage> {
  let url = start;
  for (let hop = 0; ; hop++) {
    const res = await urls.send(url, { method: "POST", ...init, guarded: hop > 0 });
    const location = res.headers.location;
    if ((res.statusCode === 307 || res.statusCode === 308) && location && hop < MAX_REDIRECTS) {
      res.destroy();
      url = urls.parse(new URL(location, url).href);
      continue;
    }
    let read = 0;
    try {
      for await (const chunk of res) {
        read += (chunk as Buffer).length;
        if (read >= WEBHOOK_ANSWER_BYTES) break;
      }
    } finally {
      res.destroy();
    }
    if (init.signal.aborted) throw new Error(`the answer of ${safeUrl(url)} was not read in time`);
    return res;
  }
}

function headerText(value: string | string[] | undefined): string | null {
  return Array.isArray(value) ? (value[0] ?? null) : (value ?? null);
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
