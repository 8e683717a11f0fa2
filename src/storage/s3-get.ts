import { createHash, createHmac } from "node:crypto";
import { type Agent, request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { Readable } from "node:stream";
import { partBuffers } from "../util/buffer-pool.js";

/** Credentials as the AWS SDK's providers resolve them. */
export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | undefined;
}

export interface ObjectGetterOptions {
  /** `https://s3.us-east-1.amazonaws.com`, or a custom store's endpoint. */
  endpoint: string;
  bucket: string;
  region: string;
  /** Bucket in the path rather than in the host name. */
  forcePathStyle: boolean;
  /** Resolves the current credentials: the SDK's own chain, cached and refreshed by it. */
  credentials: () => Promise<Credentials>;
  /** Keep-alive agent, shared with the SDK client. */
  agent: Agent;
  /** Attempts for throttling, 5xx and network errors before the first byte. */
  maxAttempts: number;
  /** Time to connect, in ms. */
  connectTimeoutMs: number;
  /** Bodies up to this length are read whole before the read resolves. */
  bufferBelow: number;
}

export interface GetRequest {
  key: string;
  /** Inclusive start, exclusive end. */
  range?: { start: number; end: number } | undefined;
  etag?: string | undefined;
  signal: AbortSignal;
}

/** A failed request, shaped like the SDK's errors (`name`, `$metadata`) so one mapping serves both. */
export class S3RequestError extends Error {
  readonly $metadata: { httpStatusCode?: number | undefined };
  constructor(name: string, message: string, status: number | undefined, options?: { cause?: unknown }) {
    super(message, options);
    this.name = name;
    this.$metadata = { httpStatusCode: status };
  }
}

const EMPTY_SHA256 = createHash("sha256").update("").digest("hex");
const RETRY_STATUS = new Set([429, 500, 502, 503, 504]);
const RETRY_CODES = new Set(["SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestThrottled", "TooManyRequestsException"]);
const RETRY_NETWORK = new Set(["ECONNRESET", "EPIPE", "ETIMEDOUT", "ECONNREFUSED", "EAI_AGAIN", "ENOTFOUND", "UND_ERR_SOCKET"]);
/** The SDK's standard retry: full jitter over 100 ms × 2^attempt, at most 20 s. */
const BACKOFF_BASE_MS = 100;
const BACKOFF_MAX_MS = 20_000;

/**
 * GetObject on `node:http` with a SigV4 signature of our own: per object one SHA-256 and one
 * HMAC (the signing key is kept for the day), no middleware stack. Measured against the AWS
 * SDK's GetObject on this machine it costs a fraction of the CPU per small object (see the
 * bench); everything else (listing, HEAD, state, jobs) stays on the SDK.
 *
 * Same behaviour as the SDK path: retries of throttling, 5xx and network errors before the
 * first byte with the SDK's backoff, clock skew corrected from the store's `Date`, errors
 * carrying the S3 code so the one error mapping applies.
 */
export function createObjectGetter(options: ObjectGetterOptions): (req: GetRequest) => Promise<Readable | Buffer> {
  const endpoint = new URL(options.endpoint);
  const https = endpoint.protocol === "https:";
  const send = https ? httpsRequest : httpRequest;
  // Virtual-hosted unless told otherwise, or where the bucket cannot be a TLS host label.
  const pathStyle = options.forcePathStyle || (https && options.bucket.includes("."));
  const host = pathStyle ? endpoint.host : `${options.bucket}.${endpoint.host}`;
  const basePath = `${endpoint.pathname.replace(/\/+$/, "")}${pathStyle ? `/${encodeSegment(options.bucket)}` : ""}`;
  const scopeTail = `${options.region}/s3/aws4_request`;
  let skewMs = 0;
  let signingKey: { secret: string; day: string; key: Buffer } | undefined;

  const keyFor = (secret: string, day: string): Buffer => {
    if (signingKey?.secret === secret && signingKey.day === day) return signingKey.key;
    let k = hmac(`AWS4${secret}`, day);
    for (const part of [options.region, "s3", "aws4_request"]) k = hmac(k, part);
    signingKey = { secret, day, key: k };
    return k;
  };

  const once = async (req: GetRequest): Promise<{ res: IncomingMessage; attemptError?: undefined } | { res?: undefined; attemptError: unknown }> => {
    const creds = await options.credentials();
    const amzDate = new Date(Date.now() + skewMs)
      .toISOString()
      .replace(/[-:]/g, "")
      .replace(/\.\d{3}/, "");
    const day = amzDate.slice(0, 8);
    const path = `${basePath}/${req.key.split("/").map(encodeSegment).join("/")}`;
    const headers: Record<string, string> = { host, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": amzDate };
    if (req.range) headers.range = `bytes=${req.range.start}-${req.range.end - 1}`;
    if (req.etag) headers["if-match"] = req.etag;
    if (creds.sessionToken) headers["x-amz-security-token"] = creds.sessionToken;
    const names = Object.keys(headers).sort();
    const canonical = `GET\n${path}\n\n${names.map((n) => `${n}:${headers[n]}\n`).join("")}\n${names.join(";")}\n${EMPTY_SHA256}`;
    const scope = `${day}/${scopeTail}`;
    const toSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${createHash("sha256").update(canonical).digest("hex")}`;
    const signature = createHmac("sha256", keyFor(creds.secretAccessKey, day)).update(toSign).digest("hex");
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${names.join(";")}, Signature=${signature}`;
    return new Promise((resolve) => {
      const r = send({
        protocol: endpoint.protocol,
        hostname: endpoint.hostname,
        port: endpoint.port,
        path,
        method: "GET",
        headers,
        agent: options.agent,
        signal: req.signal,
      });
      let connectTimer: NodeJS.Timeout | undefined;
      r.once("socket", (socket) => {
        if (!socket.connecting) return;
        connectTimer = setTimeout(
          () => r.destroy(Object.assign(new Error("connecting to the object store timed out"), { code: "ETIMEDOUT" })),
          options.connectTimeoutMs,
        );
        socket.once("connect", () => clearTimeout(connectTimer));
      });
      r.once("response", (res) => {
        clearTimeout(connectTimer);
        resolve({ res });
      });
      r.once("error", (err) => {
        clearTimeout(connectTimer);
        resolve({ attemptError: err });
      });
      r.end();
    });
  };

  return async (req) => {
    for (let attempt = 1; ; attempt++) {
      req.signal.throwIfAborted();
      const outcome = await once(req);
      let failure: unknown;
      let retryable = false;
      if (outcome.res) {
        const res = outcome.res;
        const status = res.statusCode ?? 0;
        if (status === 200 || status === 206) return body(res, req, options.bufferBelow);
        const text = await collect(res, 64 * 1024).catch(() => Buffer.alloc(0));
        const code = /<Code>([^<]+)<\/Code>/.exec(text.toString("utf8"))?.[1] ?? statusName(status);
        const message = /<Message>([^<]*)<\/Message>/.exec(text.toString("utf8"))?.[1] ?? `the object store answered ${status}`;
        failure = new S3RequestError(code, message, status);
        if (code === "RequestTimeTooSkewed" && attempt === 1) {
          const date = Date.parse(String(res.headers.date ?? ""));
          if (Number.isFinite(date)) {
            skewMs = date - Date.now();
            continue;
          }
        }
        retryable = RETRY_STATUS.has(status) || RETRY_CODES.has(code);
      } else {
        failure = outcome.attemptError;
        if (req.signal.aborted) throw req.signal.reason;
        retryable = RETRY_NETWORK.has((failure as { code?: string }).code ?? "");
      }
      if (!retryable || attempt >= options.maxAttempts) throw failure;
      const wait = Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
      await new Promise((resolve, reject) => {
        const timer = setTimeout(resolve, wait);
        req.signal.addEventListener(
          "abort",
          () => {
            clearTimeout(timer);
            reject(req.signal.reason);
          },
          { once: true },
        );
      });
    }
  };
}

/** A body of the expected length: small ones read whole now, others handed on as the stream. */
async function body(res: IncomingMessage, req: GetRequest, bufferBelow: number): Promise<Readable | Buffer> {
  const expected = req.range ? req.range.end - req.range.start : undefined;
  const length = Number(res.headers["content-length"]);
  if (expected !== undefined && res.statusCode === 200 && req.range?.start !== 0) {
    res.destroy();
    throw new S3RequestError("InvalidRange", "the object store ignored the byte range", 416);
  }
  // A store that ignored If-Match must not pass another version off as the pinned one.
  const etag = res.headers.etag;
  if (req.etag && etag !== undefined && unquoted(etag) !== unquoted(req.etag)) {
    res.destroy();
    throw new S3RequestError("PreconditionFailed", "the object store answered another version", 412);
  }
  if (req.etag && confirmsEtag(etag, req.etag)) confirmed.add(res);
  if (Number.isFinite(length) && expected !== undefined && length !== expected) {
    res.destroy();
    // Shorter or longer than asked: the object is not the one pinned.
    throw new S3RequestError("PreconditionFailed", "the object's length changed", 412);
  }
  if (Number.isFinite(length) && length <= bufferBelow) return collect(res, length);
  return res as Readable;
}

/** Bodies whose answer carried the strong ETag they were asked for (If-Match): see `etagConfirmed`. */
const confirmed = new WeakSet<object>();

/**
 * Whether the store confirmed that `body` is the version asked for: its answer (the first
 * part's, for an object read in parts) carried the strong ETag the request named in If-Match. A store
 * or proxy that drops the ETag proves nothing, and such bodies are hashed as they are sent.
 */
export function etagConfirmed(body: Readable | Buffer): boolean {
  return confirmed.has(body);
}

const unquoted = (etag: string): string => etag.replace(/^W\//, "").replace(/^"|"$/g, "");

/** Whether an answer's ETag names the version asked for, strongly: the bytes are that version's. */
export function confirmsEtag(answered: string | undefined, asked: string): boolean {
  return answered !== undefined && !answered.startsWith("W/") && unquoted(answered) === unquoted(asked);
}

async function collect(res: Readable, max: number): Promise<Buffer> {
  const { chunks, total } = await chunksUpTo(res, max);
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total);
}

/** A body's chunks as they arrived; PreconditionFailed once it runs past `max` bytes. */
async function chunksUpTo(body: Readable, max: number): Promise<{ chunks: Buffer[]; total: number }> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > max) {
      body.destroy();
      throw new S3RequestError("PreconditionFailed", "the object is longer than its length", 412);
    }
    chunks.push(chunk);
  }
  return { chunks, total };
}

function statusName(status: number): string {
  if (status === 404) return "NotFound";
  if (status === 412) return "PreconditionFailed";
  if (status === 403) return "AccessDenied";
  return `Http${status}`;
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

/** RFC 3986 encoding of one path segment, as SigV4 wants it for S3 (no double encoding). */
function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * Memory for parts read ahead of large objects, shared by every download of the process.
 * A download that finds it spent reads on as one stream: slower, never more memory.
 */
export class PartPool {
  #free: number;
  constructor(bytes: number) {
    this.#free = bytes;
  }
  take(bytes: number): boolean {
    if (bytes > this.#free) return false;
    this.#free -= bytes;
    return true;
  }
  give(bytes: number): void {
    this.#free += bytes;
  }
}

export interface PartOptions {
  /** Bytes per ranged GET. */
  partSize: number;
  /** Ranged GETs in flight per object, the one being sent included. */
  depth: number;
  pool: PartPool;
}

/**
 * How many ranged GETs keep a reader fed: its pace against one connection's, with headroom
 * (a new GET starts slowly). Below `ONE_STREAM` times one connection's pace, one will do.
 */
const HEADROOM = 1.5;
const ONE_STREAM = 1.25;
/** Weight of the latest stretch in the paces compared. */
const SMOOTHING = 0.3;

/**
 * A large object read as ranged GETs of `partSize`, each with `If-Match` so that a change
 * mid-object fails loudly. The first part streams as it arrives (the read resolves with its
 * headers, so a missing object fails before any byte). Parts after it are read into memory from
 * the pool, several in flight, and handed on in order, as many as keep the reader fed: measured
 * as the object is handed on, the reader's pace (bytes per ms it held the stream) against one
 * GET's (bytes per ms it took to bring them). A reader that one connection keeps up with (a
 * slow client) reads the rest as one stream: parts would only hold the pool's memory, and cost
 * about 1 CPU-s per GB more (V8 runs full collections for the parts held: 38 per GB against 1;
 * bench/s3.mjs, large, loopback).
 */
export async function readInParts(
  get: (req: GetRequest) => Promise<Readable | Buffer>,
  req: GetRequest & { etag: string },
  start: number,
  end: number,
  parts: PartOptions,
): Promise<Readable> {
  const controller = new AbortController();
  const signal = AbortSignal.any([req.signal, controller.signal]);
  const firstEnd = Math.min(end, start + parts.partSize);
  const first = await get({ key: req.key, etag: req.etag, range: { start, end: firstEnd }, signal });
  let next = firstEnd;
  /** Ranged GETs in flight wanted, the one being handed on included. */
  let want = 1;
  const ahead: Array<{ part: Promise<{ data: Buffer[]; ms: number }>; size: number }> = [];
  const launch = (): boolean => {
    const size = Math.min(parts.partSize, end - next);
    if (size <= 0 || ahead.length >= want - 1 || !parts.pool.take(size)) return false;
    const range = { start: next, end: next + size };
    next += size;
    const launched = performance.now();
    const part = get({ key: req.key, etag: req.etag, range, signal })
      .then((body) => (Buffer.isBuffer(body) ? [body] : whole(body, size)))
      .then((data) => ({ data, ms: performance.now() - launched }));
    part.catch(() => {}); // awaited in turn
    ahead.push({ part, size });
    return true;
  };
  // Smoothed: a socket that frees its buffer in bursts takes a whole part at once now and then.
  let heldAvg: number | undefined;
  let fetchAvg = 0;
  /** The reader held the stream `held` ms for bytes one GET brought in `fetchMs`. */
  const decide = (held: number, fetchMs: number): void => {
    heldAvg = heldAvg === undefined ? held : (1 - SMOOTHING) * heldAvg + SMOOTHING * held;
    fetchAvg = fetchAvg === 0 ? fetchMs : (1 - SMOOTHING) * fetchAvg + SMOOTHING * fetchMs;
    const ratio = fetchAvg / Math.max(heldAvg, 0.01);
    want = ratio < ONE_STREAM ? 1 : Math.min(parts.depth, Math.ceil(ratio * HEADROOM));
    while (launch());
  };
  /** Pool bytes of the part being sent. */
  let holding = 0;
  async function* chunks(): AsyncGenerator<Buffer> {
    try {
      if (Buffer.isBuffer(first)) yield first;
      else {
        // Decided every eighth of the first part: its GET took the whole time, the reader held
        // the stream for part of it (at least one connection's pace, as far as it was asked).
        const window = (firstEnd - start) / 8;
        let since = performance.now();
        let held = 0;
        let got = 0;
        for await (const chunk of first as AsyncIterable<Buffer>) {
          got += chunk.length;
          const at = performance.now();
          yield chunk;
          const now = performance.now();
          held += now - at;
          if (got >= window) {
            decide(held, now - since);
            since = now;
            held = 0;
            got = 0;
          }
        }
      }
      while (ahead.length > 0 || next < end) {
        if (ahead.length === 0) {
          // A reader one connection keeps up with, or nothing left in the pool: the rest as one stream.
          const range = { start: next, end };
          next = end;
          const rest = await get({ key: req.key, etag: req.etag, range, signal });
          if (Buffer.isBuffer(rest)) yield rest;
          else for await (const chunk of rest as AsyncIterable<Buffer>) yield chunk;
          continue;
        }
        const { part, size } = ahead.shift() as (typeof ahead)[number];
        holding = size;
        const { data, ms: fetchMs } = await part;
        while (launch());
        let held = 0;
        for (const chunk of data) {
          const at = performance.now();
          yield chunk;
          held += performance.now() - at;
        }
        holding = 0;
        parts.pool.give(size);
        decide(held, fetchMs);
      }
    } finally {
      controller.abort(new Error("the object's read ended"));
      parts.pool.give(holding);
      if (!Buffer.isBuffer(first)) first.destroy();
      for (const { part, size } of ahead.splice(0))
        void part.then(
          () => parts.pool.give(size),
          () => parts.pool.give(size),
        );
    }
  }
  const out = Readable.from(chunks(), { objectMode: false, highWaterMark: 64 * 1024 });
  // Confirmed as its first part's answer was (every part is asked for with If-Match, and an
  // answer naming another ETag fails the read).
  if (!Buffer.isBuffer(first) && confirmed.has(first)) confirmed.add(out);
  // Destroyed before its first read, the generator never runs its cleanup: the first part's
  // response (and its socket) is let go here.
  out.once("close", () => {
    controller.abort(new Error("the object's read ended"));
    if (!Buffer.isBuffer(first)) first.destroy();
  });
  return out;
}

/**
 * A part's body, all of it, as the chunks it arrived in: copying them into one buffer cost
 * more CPU than the rest of the part's way (a sixth of a profile) and made garbage of 8 MiB;
 * copying them into the pooled read buffers measured no better than keeping them.
 */
async function whole(body: Readable, size: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  let buf: Buffer | undefined;
  let used = 0;
  let total = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > size) {
        body.destroy();
        throw new S3RequestError("PreconditionFailed", "the object is longer than its length", 412);
      }
      // Copied into pooled buffers at once: the socket's chunk dies young (a scavenge frees
      // it), where one held until its part's turn would be promoted and need a full collection.
      let from = 0;
      while (from < chunk.length) {
        // Whole pooled buffers, and the part's tail in one of its own size: the part pool counts the part's bytes.
        buf ??= size - total + chunk.length - from >= partBuffers.size ? partBuffers.take() : Buffer.allocUnsafe(size - total + chunk.length - from);
        const n = Math.min(chunk.length - from, buf.length - used);
        chunk.copy(buf, used, from, from + n);
        used += n;
        from += n;
        if (used === buf.length) {
          out.push(buf);
          buf = undefined;
          used = 0;
        }
      }
    }
  } catch (err) {
    for (const b of out) partBuffers.release(b);
    if (buf) partBuffers.release(buf);
    throw err;
  }
  if (buf) out.push(buf.subarray(0, used));
  if (total !== size) {
    for (const b of out) partBuffers.release(b);
    throw new S3RequestError("PreconditionFailed", "the object is shorter than its length", 412);
  }
  return out;
}
