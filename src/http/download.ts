import type { ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import type { HttpBindings } from "@hono/node-server";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import type { Context } from "hono";
import type { AppEnv } from "../api/deps.js";
import { CLASSIC_INLINE_MAX } from "../archive/stream.js";
import { streamedArchive } from "../archive/streamed.js";
import { toGatewayError } from "../errors.js";
import { describeError, type Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import { giveBack } from "../util/buffer-pool.js";
import type { Download, ZipballService } from "../zipball/service.js";
import { contentDisposition } from "./disposition.js";
import type { Lifecycle, Slot } from "./lifecycle.js";
import { evaluatePreconditions, parseRange } from "./range.js";

export interface DownloadHooks {
  /** The body ended: all bytes sent, or the transfer failed or was cut. */
  onEnd?(outcome: { ok: boolean; bytes: number; error?: unknown }): void;
  /** A file entry's data was streamed whole. */
  onFileDone?(index: number): void;
}

export interface ServeOptions {
  method: string;
  headers: Headers;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
  /** The Node response the body is written to. */
  outgoing: ServerResponse;
  requestId: string;
  logger: Logger;
  metrics: Metrics;
  /** performance.now() when the request came in: duration and time to first byte count from it. */
  startedAt: number;
  /** The client's address, as the app determined it (ZIPGATE_TRUST_PROXY). */
  client: string | undefined;
  /** The caller's W3C trace context, logged with the download. */
  trace: { trace_id: string; parent_id: string } | undefined;
  /** Headers the app prepared for every answer (CORS, X-Request-Id), added to the head written here. */
  extraHeaders?: Headers | undefined;
  /** Download slots (admission) and the drain at shutdown. */
  lifecycle: Lifecycle;
  /** A body whose client takes nothing for this long is cut, in ms. */
  sendTimeoutMs: number;
  /** A body whose client takes less than this over the window, while waited on, is cut (`too_slow`). */
  minRate?: { bytesPerSecond: number; windowMs: number } | undefined;
  hooks?: DownloadHooks | undefined;
}

/** What a request for an archive gets: an answer without a body, or a body to send. */
export type DownloadPlan =
  | { kind: "answer"; response: Response }
  | { kind: "body"; status: number; headers: Headers; start: number; end: number; chunked: boolean; deflate: boolean };

/**
 * Decides the answer to GET or HEAD from the request alone: validators, conditional
 * requests, a single byte range. HEAD, 304, 412 and 416 are answered here, before
 * anything is claimed or read.
 */
export function planDownload(download: Download, req: { method: string; headers: Headers; requestId: string; oneShot?: boolean }): DownloadPlan {
  const now = Date.now();
  const deflate = download.zipball.manifest.compression === "deflate";
  const chunked = deflate || download.chunked;
  const maxAge = Math.max(0, Math.floor((download.expiresAt.getTime() - now) / 1000));
  const headers = new Headers({
    "Content-Type": "application/zip",
    "Content-Disposition": contentDisposition(download.filename),
    // A one-shot URL (Box) is one user's and is used up: no cache may keep or share it.
    "Cache-Control": req.oneShot ? "private, no-store" : `public, max-age=${maxAge}, immutable`,
    Expires: download.expiresAt.toUTCString(),
    "X-Content-Type-Options": "nosniff",
    "X-Request-Id": req.requestId,
  });
  const answer = (status: number): DownloadPlan => ({ kind: "answer", response: new Response(null, { status, headers }) });
  if (chunked) {
    // Compressed output, or an origin that gave no length: no exact length, no validators, no ranges.
    headers.set("Accept-Ranges", "none");
    headers.set("Cache-Control", "private, no-store");
    if (req.method === "HEAD") return answer(200);
    return { kind: "body", status: 200, headers, start: 0, end: 0, chunked, deflate };
  }

  headers.set("Accept-Ranges", "bytes");
  headers.set("ETag", download.etag);
  headers.set("Last-Modified", download.lastModified.toUTCString());

  const pre = evaluatePreconditions(req.headers, download.etag, download.lastModified);
  if (pre === 412) return answer(412);
  if (pre === 304) {
    for (const h of ["Content-Type", "Content-Disposition", "Accept-Ranges", "X-Content-Type-Options"]) headers.delete(h);
    return answer(304);
  }

  const total = download.layout.total;
  const range = parseRange(req.headers, total, download.etag, download.lastModified);
  if (range === "unsatisfiable") {
    headers.set("Content-Range", `bytes */${total}`);
    headers.delete("Content-Disposition");
    return answer(416);
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? total;
  headers.set("Content-Length", String(end - start));
  if (range) headers.set("Content-Range", `bytes ${start}-${end - 1}/${total}`);
  const status = range ? 206 : 200;
  if (req.method === "HEAD") return answer(status);
  return { kind: "body", status, headers, start, end, chunked, deflate };
}

/**
 * Answers GET or HEAD for an archive. Everything that can fail before the first
 * byte throws (and becomes the flavour's JSON error); a failure after it
 * destroys the response, aborting the connection.
 */
export async function serveDownload(service: ZipballService, download: Download, opts: ServeOptions): Promise<Response> {
  const plan = planDownload(download, opts);
  if (plan.kind === "answer") return plan.response;
  return sendDownload(service, download, plan, opts);
}

/**
 * Sends a planned body in a download slot: `slot` when the caller reserved one (to claim
 * something only once admitted), else one reserved here (503 when none is free).
 */
export async function sendDownload(
  service: ZipballService,
  download: Download,
  plan: Extract<DownloadPlan, { kind: "body" }>,
  opts: ServeOptions,
  reserved?: Slot,
): Promise<Response> {
  let slot: Slot;
  try {
    // A client already gone gets nothing started for it.
    opts.signal.throwIfAborted();
    slot = reserved ?? opts.lifecycle.admit(opts.client);
  } catch (err) {
    reserved?.release();
    throw err;
  }
  const controller = new AbortController();
  const unlink = linkAbort(opts.signal, controller);
  if (plan.chunked) return streamChunked(service, download, plan.headers, opts, { store: !plan.deflate }, slot, controller);
  // Reserved before any work: computing CRCs for a range reads objects too.
  const iter = await service.stream(download, { start: plan.start, end: plan.end }, controller.signal, opts.hooks?.onFileDone).catch((err: unknown) => {
    unlink();
    controller.abort(err);
    slot.release();
    throw err;
  });
  return sendBody(opts.outgoing, plan.status, plan.headers, iter, plan.end - plan.start, controller, opts, slot, download);
}

/**
 * Writes the body straight to the Node response, honouring backpressure. A
 * failure after the first byte destroys the response, so the client sees a
 * failed transfer; a client that goes away aborts `controller`, which stops
 * the storage reads. Node's strict length check guards a body of known length.
 */
async function sendBody(
  outgoing: ServerResponse,
  status: number,
  headers: Headers,
  iter: AsyncIterable<Buffer> & Partial<AsyncIterator<Buffer>>,
  expected: number | undefined,
  controller: AbortController,
  opts: ServeOptions,
  slot: Slot,
  download: Download,
): Promise<Response> {
  const started = opts.startedAt;
  const zipball = `${download.zipball.manifest.id.slice(0, 8)}…`;
  const flavour = download.zipball.manifest.flavour;
  let firstByteAt: number | undefined;
  let outcome: "complete" | "client_gone" | "failed" | "cut_at_shutdown" | "stalled" | "too_slow" = "complete";
  /** Time spent waiting for the client to take bytes ('drain'), for the minimum rate. */
  let waitedMs = 0;
  let drainSince: number | undefined;
  let rateTimer: NodeJS.Timeout | undefined;
  const active = {
    requestId: opts.requestId,
    zipball,
    sent: 0,
    expected,
    cut: (reason: Error) => {
      outcome = "cut_at_shutdown";
      controller.abort(reason);
      outgoing.destroy();
    },
  };
  let finished = false;
  opts.metrics.downloadsStarted.inc({ flavour });
  /** Runs once however the body ends: the flavour's hook, the slot back, metrics, one log line. */
  const finish = (error?: unknown): void => {
    if (finished) return;
    finished = true;
    clearInterval(rateTimer);
    try {
      opts.hooks?.onEnd?.({ ok: outcome === "complete", bytes: active.sent, error });
    } catch (err) {
      opts.logger.warn("download end hook failed", describeError(err));
    }
    slot.release();
    const seconds = (performance.now() - started) / 1000;
    opts.metrics.downloadsEnded.inc({ flavour, outcome });
    opts.metrics.downloadBytes.inc({ flavour }, active.sent);
    opts.metrics.downloadDuration.observe({ flavour, outcome }, seconds);
    const fields = {
      request_id: opts.requestId,
      zipball,
      flavour,
      // The owner's key id (a digest prefix, never the key): downloads themselves carry no key.
      key_id: download.zipball.manifest.owner || undefined,
      client: opts.client,
      outcome,
      // Before the head, the answer is the error's own status (the flavour's error shape).
      status: outgoing.headersSent || error === undefined ? status : toGatewayError(error).status,
      bytes_sent: active.sent,
      bytes_expected: expected,
      range: headers.get("content-range") ?? undefined,
      ms: Math.round(seconds * 1000),
      ttfb_ms: firstByteAt === undefined ? undefined : Math.round(firstByteAt - started),
      ...opts.trace,
    };
    if (outcome === "failed" && !outgoing.headersSent)
      opts.logger.warn("download failed before its first byte; answered with the error", { ...fields, ...describeError(error) });
    else if (outcome === "failed") opts.logger.error("download failed after the first byte; aborting the connection", { ...fields, ...describeError(error) });
    else opts.logger.info("download", fields);
  };
  /** Ends a body that never started: its reads stop, and it is recorded as `why`. */
  const abandon = (why: typeof outcome, reason: unknown): void => {
    outcome = why;
    controller.abort(reason);
    void Promise.resolve(iter.return?.()).catch(() => {});
    finish(reason);
  };
  // The client may have gone while the first object was opened.
  if (outgoing.destroyed || opts.signal.aborted) {
    abandon("client_gone", new Error("client went away"));
    return RESPONSE_ALREADY_SENT;
  }
  const chunks = iter[Symbol.asyncIterator]();
  // The head goes out with the first bytes: whatever fails before them (an object changed
  // since creation, a wrong caller crc32 found in a first entry read whole) is still
  // answered with its status, in the flavour's error shape, not an empty reply.
  let first: IteratorResult<Buffer>;
  try {
    first = await chunks.next();
  } catch (err) {
    abandon(outgoing.destroyed || opts.signal.aborted ? "client_gone" : "failed", err);
    throw err;
  }
  if (outgoing.destroyed || opts.signal.aborted) {
    abandon("client_gone", new Error("client went away"));
    return RESPONSE_ALREADY_SENT;
  }
  try {
    slot.track(active);
    outgoing.strictContentLength = expected !== undefined;
    for (const [name, value] of opts.extraHeaders ?? []) if (!headers.has(name)) headers.set(name, value);
    outgoing.writeHead(status, Object.fromEntries(headers));
  } catch (err) {
    // Nothing sent yet: the flavour's error answer still can be.
    abandon("failed", err);
    throw err;
  }
  const onClose = (): void => {
    if (!outgoing.writableFinished) controller.abort(new Error("client went away"));
  };
  outgoing.on("close", onClose);
  // One timer per download: a window in which the client took less than the minimum rate
  // while the gateway waited on it for more than half the window cuts the download.
  const rate = opts.minRate;
  if (rate && rate.bytesPerSecond > 0) {
    let sentBefore = active.sent;
    rateTimer = setInterval(() => {
      const took = active.sent - sentBefore;
      const waited = waitedMs + (drainSince === undefined ? 0 : performance.now() - drainSince);
      sentBefore = active.sent;
      waitedMs = 0;
      if (drainSince !== undefined) drainSince = performance.now();
      if (took < (rate.bytesPerSecond * rate.windowMs) / 1000 && waited > rate.windowMs / 2) {
        outcome = "too_slow";
        controller.abort(new Error("the client read slower than the minimum rate"));
        outgoing.destroy();
      }
    }, rate.windowMs);
    rateTimer.unref();
  }
  void (async () => {
    try {
      for (let next = first; !next.done; next = await chunks.next()) {
        const chunk = next.value;
        if (outgoing.destroyed) throw new Error("client went away");
        if (firstByteAt === undefined) {
          firstByteAt = performance.now();
          opts.metrics.downloadFirstByte.observe({ flavour }, (firstByteAt - started) / 1000);
        }
        active.sent += chunk.length;
        // Once the socket has taken the bytes, a pooled buffer can be filled again.
        if (!outgoing.write(chunk, () => giveBack(chunk))) {
          // A client that stops reading would hold its socket and our reads for ever.
          drainSince = performance.now();
          let ok: boolean;
          try {
            ok = await socketTook(outgoing, "drain", opts.sendTimeoutMs);
          } finally {
            waitedMs += performance.now() - drainSince;
            drainSince = undefined;
          }
          if (!ok) {
            outcome = "stalled";
            throw new Error("the client took nothing for the send timeout");
          }
        }
      }
      if (expected !== undefined && active.sent !== expected) throw new Error(`archive produced ${active.sent} bytes, expected ${expected}`);
      outgoing.end();
      // Complete once the last bytes left for the socket, not when they were queued: a
      // client gone meanwhile did not get the archive (Box reports `succeeded` on this).
      if (!(await socketTook(outgoing, "finish", opts.sendTimeoutMs))) {
        outcome = "stalled";
        throw new Error("the client took nothing for the send timeout");
      }
      finish();
    } catch (err) {
      const gone = (controller.signal.aborted || outgoing.destroyed) && !outgoing.writableFinished;
      if (outcome === "complete") outcome = gone ? "client_gone" : "failed";
      controller.abort(err);
      void Promise.resolve(chunks.return?.()).catch(() => {});
      outgoing.destroy();
      finish(err);
    } finally {
      outgoing.off("close", onClose);
    }
  })();
  return RESPONSE_ALREADY_SENT;
}

/**
 * Resolves true on `event` ('drain': the socket took the bytes queued; 'finish': it took the
 * last of them), false when it did not come within `timeoutMs`; rejects when the client went
 * away first. Settled once; every listener and the timer are removed then.
 */
function socketTook(outgoing: ServerResponse, event: "drain" | "finish", timeoutMs: number): Promise<boolean> {
  if (event === "finish" && outgoing.writableFinished) return Promise.resolve(true);
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      outgoing.off(event, onEvent);
      outgoing.off("close", onClose);
    };
    const onEvent = (): void => {
      done();
      resolve(true);
    };
    const onClose = (): void => {
      done();
      if (event === "finish" && outgoing.writableFinished) resolve(true);
      else reject(new Error("client went away"));
    };
    const timer = setTimeout(() => {
      done();
      resolve(false);
    }, timeoutMs);
    outgoing.once(event, onEvent);
    outgoing.once("close", onClose);
  });
}

/** Aborts `controller` when the client goes away (at once if it has); returns the undo. */
function linkAbort(signal: AbortSignal, controller: AbortController): () => void {
  const onGone = (): void => controller.abort(new Error("client went away"));
  if (signal.aborted) {
    onGone();
    return () => {};
  }
  signal.addEventListener("abort", onGone, { once: true });
  return () => signal.removeEventListener("abort", onGone);
}

function streamChunked(
  service: ZipballService,
  download: Download,
  headers: Headers,
  opts: ServeOptions,
  mode: { store: boolean },
  slot: Slot,
  controller: AbortController,
): Promise<Response> {
  // Deflated entries up to the inline bound, and stored ones of unknown length up to the small size, go out classic.
  const inlineMax = mode.store ? CLASSIC_INLINE_MAX : service.deflateInlineMax;
  const body: Readable = streamedArchive(download.entries, service.reader(download), controller.signal, {
    ...mode,
    maxBytes: service.maxBytes,
    inlineMax,
    idleTimeoutMs: service.idleTimeoutMs,
  });
  return sendBody(opts.outgoing, 200, headers, body as Readable & AsyncIterable<Buffer>, undefined, controller, opts, slot, download);
}

/** The request side of a download, from a Hono context on the Node server. */
export function downloadContext(
  c: Context<AppEnv>,
  deps: {
    logger: Logger;
    lifecycle: Lifecycle;
    sendTimeoutMs: number;
    minRate?: { bytesPerSecond: number; windowMs: number } | undefined;
    metrics: Metrics;
    corsOrigins: string[];
  },
  hooks?: DownloadHooks,
): ServeOptions {
  const outgoing = (c.env as HttpBindings | undefined)?.outgoing;
  if (!outgoing) throw new Error("downloads need the Node HTTP server");
  // What the app's middlewares prepared (CORS, X-Request-Id); a public archive may be cached,
  // so with per-origin CORS its answer varies by Origin.
  const extraHeaders = new Headers(c.res.headers);
  extraHeaders.delete("content-type");
  if (deps.corsOrigins.length > 0 && deps.corsOrigins[0] !== "*") extraHeaders.append("Vary", "Origin");
  return {
    metrics: deps.metrics,
    startedAt: c.get("startedAt"),
    client: c.get("client"),
    trace: c.get("trace"),
    extraHeaders,
    method: c.req.method,
    headers: c.req.raw.headers,
    signal: c.req.raw.signal,
    outgoing,
    requestId: c.get("requestId"),
    logger: deps.logger,
    lifecycle: deps.lifecycle,
    sendTimeoutMs: deps.sendTimeoutMs,
    minRate: deps.minRate,
    hooks,
  };
}
