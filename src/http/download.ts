import type { Readable } from "node:stream";
import { deflateArchive } from "../archive/deflate.js";
import { describeError, type Logger } from "../log.js";
import type { Download, ZipballService } from "../zipball/service.js";
import { contentDisposition } from "./disposition.js";
import { evaluatePreconditions, parseRange } from "./range.js";

export interface DownloadHooks {
  /** The response is committed: headers are about to go out with a body. */
  onStart?(): void;
  /** The body ended: all bytes sent, or the transfer failed or was cut. */
  onEnd?(outcome: { ok: boolean; bytes: number; error?: unknown }): void;
  /** A CRC computed while streaming an object whole. */
  onCrc?(index: number, crc: number): void;
}

export interface ServeOptions {
  method: string;
  headers: Headers;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
  logger: Logger;
  hooks?: DownloadHooks | undefined;
  now?: number;
}

/**
 * Answers GET or HEAD for an archive: validators, conditional requests, a
 * single byte range, and the body. Everything that can fail before the first
 * byte throws (and becomes the flavour's JSON error); a failure after it errors
 * the body stream, which makes the server abort the connection.
 */
export async function serveDownload(service: ZipballService, download: Download, opts: ServeOptions): Promise<Response> {
  const now = opts.now ?? Date.now();
  const deflate = download.zipball.manifest.compression === "deflate";
  const maxAge = Math.max(0, Math.floor((download.expiresAt.getTime() - now) / 1000));
  const headers = new Headers({
    "Content-Type": "application/zip",
    "Content-Disposition": contentDisposition(download.filename),
    "Cache-Control": `public, max-age=${maxAge}, immutable`,
    Expires: download.expiresAt.toUTCString(),
    "X-Content-Type-Options": "nosniff",
  });
  if (deflate) {
    // Compressed output is not deterministic in length: no validators, no ranges.
    headers.set("Accept-Ranges", "none");
    headers.set("Cache-Control", "private, no-store");
    if (opts.method === "HEAD") return new Response(null, { status: 200, headers });
    return streamDeflate(service, download, headers, opts);
  }

  headers.set("Accept-Ranges", "bytes");
  headers.set("ETag", download.etag);
  headers.set("Last-Modified", download.lastModified.toUTCString());

  const pre = evaluatePreconditions(opts.headers, download.etag, download.lastModified);
  if (pre === 412) return new Response(null, { status: 412, headers });
  if (pre === 304) {
    for (const h of ["Content-Type", "Content-Disposition", "Accept-Ranges", "X-Content-Type-Options"]) headers.delete(h);
    return new Response(null, { status: 304, headers });
  }

  const total = download.layout.total;
  const range = parseRange(opts.headers, total, download.etag, download.lastModified);
  if (range === "unsatisfiable") {
    headers.set("Content-Range", `bytes */${total}`);
    headers.delete("Content-Disposition");
    return new Response(null, { status: 416, headers });
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? total;
  headers.set("Content-Length", String(end - start));
  if (range) headers.set("Content-Range", `bytes ${start}-${end - 1}/${total}`);
  const status = range ? 206 : 200;
  if (opts.method === "HEAD") return new Response(null, { status, headers });

  const controller = new AbortController();
  const unlink = linkAbort(opts.signal, controller);
  const iter = await service.stream(download, { start, end }, controller.signal, opts.hooks?.onCrc).catch((err: unknown) => {
    unlink();
    throw err;
  });
  opts.hooks?.onStart?.();
  return new Response(pullStream(iter, end - start, controller, opts, unlink), { status, headers });
}

/**
 * A pull-based body over an iterator of chunks. An error after the first byte
 * errors the stream, and the server then aborts the connection; a client
 * that goes away cancels it, which stops the storage reads.
 */
function pullStream(
  iter: AsyncIterator<Buffer>,
  expected: number | undefined,
  controller: AbortController,
  opts: ServeOptions,
  cleanup: () => void,
): ReadableStream<Uint8Array> {
  let sent = 0;
  let ended = false;
  const finish = (ok: boolean, error?: unknown): void => {
    if (ended) return;
    ended = true;
    cleanup();
    opts.hooks?.onEnd?.({ ok, bytes: sent, error });
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(ctrl) {
        try {
          const { value, done } = await iter.next();
          if (done) {
            if (expected !== undefined && sent !== expected) throw new Error(`archive produced ${sent} bytes, expected ${expected}`);
            finish(true);
            ctrl.close();
            return;
          }
          sent += value.length;
          ctrl.enqueue(value);
        } catch (err) {
          if (!controller.signal.aborted) opts.logger.error("download failed after the first byte; aborting the connection", describeError(err));
          controller.abort(err);
          finish(false, err);
          ctrl.error(err);
        }
      },
      async cancel(reason) {
        controller.abort(reason);
        finish(false, reason ?? new Error("client went away"));
        await iter.return?.(undefined)?.catch(() => {});
      },
    },
    { highWaterMark: 0 },
  );
}

/** Aborts `controller` when the client goes away; returns the undo. */
function linkAbort(signal: AbortSignal, controller: AbortController): () => void {
  const onGone = (): void => controller.abort(new Error("client went away"));
  signal.addEventListener("abort", onGone, { once: true });
  return () => signal.removeEventListener("abort", onGone);
}

function streamDeflate(service: ZipballService, download: Download, headers: Headers, opts: ServeOptions): Response {
  const controller = new AbortController();
  const unlink = linkAbort(opts.signal, controller);
  const entries = download.zipball.entries.map((e, i) => ({ name: e.name, kind: e.kind, mtimeMs: e.mtimeMs, source: download.sources[i] ?? null }));
  const body: Readable = deflateArchive(entries, service.storage, controller.signal);
  opts.hooks?.onStart?.();
  const iter = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  return new Response(pullStream(iter, undefined, controller, opts, unlink), { status: 200, headers });
}
