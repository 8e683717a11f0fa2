import { randomUUID } from "node:crypto";
import { Agent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { Readable } from "node:stream";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { GatewayError, ObjectAccessDenied, ObjectChanged, ObjectNotFound, StorageTimeout, StorageUnavailable } from "../errors.js";
import { confirmsEtag, createObjectGetter, etagConfirmed, PartPool, readInParts } from "./s3-get.js";
import type { ListItem, ObjectBody, ObjectInfo, ReadOptions, Storage, VersionedStream } from "./types.js";

export interface S3StorageOptions {
  bucket: string;
  /** Key prefix that scopes everything (objects, folders, `.zipgate/`); empty or ending in `/`. */
  prefix?: string;
  /** @default "us-east-1" */
  region?: string;
  /** Endpoint of a non-AWS store (MinIO, R2, Swift…). */
  endpoint?: string | undefined;
  /** Path-style addressing, for stores without virtual-hosted buckets. @default false */
  forcePathStyle?: boolean;
  /** Explicit credentials; otherwise the SDK's standard chain (environment, profile, IMDS…). */
  credentials?: S3ClientConfig["credentials"];
  /**
   * Attempts per request for throttling, 5xx and network errors, before the
   * first byte of a body. @default 4
   */
  maxAttempts?: number;
  /**
   * Sockets per host. Each body opened ahead holds one until its turn, and a request
   * waiting for a socket counts against its deadline, so this is generous. @default 1024
   */
  maxSockets?: number;
  /** Time to connect to the store, in ms. @default 5_000 */
  connectTimeoutMs?: number;
  /**
   * How objects are read: `lean` (our own SigV4-signed GET on node:http, a fraction of the
   * SDK's CPU per object) or `sdk` (the SDK's GetObject). Everything else uses the SDK. @default "lean"
   */
  read?: "lean" | "sdk";
  /** Large objects (lean path): bytes per ranged GET, and GETs in flight per object. @default 8 MiB, 8 */
  partSize?: number;
  partDepth?: number;
  /** Memory for parts read ahead, shared by every download of the process. @default 256 MiB */
  partMemory?: number;
  /**
   * Time for the store's answer to begin, all attempts of one request together, in ms
   * (the archive stream times silences inside a body). @default 20_000
   */
  timeoutMs?: number;
}

const NOT_FOUND = new Set(["NoSuchKey", "NotFound"]);
/** Bodies up to this length are read whole before a read resolves (no stream per small object). */
const SMALL_BODY = 256 * 1024;
/** How long a read-back claim waits for other contenders' writes to land before reading. */
const CLAIM_SETTLE_MS = 100;
const BAD_CREDENTIALS = new Set(["SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken", "InvalidClientTokenId"]);

/**
 * Any S3-compatible store (AWS S3, R2, MinIO, Swift s3api…) as a Storage.
 * Folders are key prefixes; "directory marker" objects ending in `/` are
 * reported as directories. Sizes, mtimes and ETags come from listings, so a
 * folder costs one request per 1,000 objects and no HEAD per object.
 */
export function createS3Storage(options: S3StorageOptions): Storage {
  const bucket = options.bucket;
  const base = options.prefix ?? "";
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? 1024 };
  const timeoutMs = options.timeoutMs ?? 20_000;
  const httpAgent = new Agent(agentOptions);
  const httpsAgent = new HttpsAgent(agentOptions);
  const client = new S3Client({
    region: options.region ?? "us-east-1",
    endpoint: options.endpoint,
    forcePathStyle: options.forcePathStyle ?? false,
    credentials: options.credentials,
    maxAttempts: options.maxAttempts ?? 4,
    // Many S3-compatible stores reject the CRC32 + aws-chunked uploads recent SDKs send by default.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    requestHandler: new NodeHttpHandler({
      httpAgent,
      httpsAgent,
      connectionTimeout: options.connectTimeoutMs ?? 5_000,
      // Until the answer's headers, per attempt. No socket idle timeout: a body opened ahead
      // is idle until its turn by design; silence while the archive reads it is timed there.
      requestTimeout: timeoutMs,
      throwOnRequestTimeout: true,
    }),
  });

  /**
   * Runs one store request (with its retries) under a deadline of `timeoutMs` until it
   * resolves: a store that stops answering fails it with StorageTimeout (504) then, not
   * after every attempt has timed out in turn. A body read later keeps the caller's
   * signal, and the socket's silence timeout, but not the deadline.
   */
  const timed = async <T>(signal: AbortSignal | undefined, run: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new StorageTimeout(`the object store did not answer within ${timeoutMs / 1000} s`)), timeoutMs);
    try {
      return await run(signal ? AbortSignal.any([signal, deadline.signal]) : deadline.signal);
    } catch (err) {
      if (deadline.signal.aborted && !signal?.aborted) throw deadline.signal.reason;
      throw err;
    } finally {
      clearTimeout(timer);
    }
  };
  let conditionalPut: boolean | undefined;

  const region = options.region ?? "us-east-1";
  const endpoint = options.endpoint ?? `https://s3.${region}.amazonaws.com`;
  const partSize = options.partSize ?? 8 * 1024 * 1024;
  const parts = { partSize, depth: options.partDepth ?? 8, pool: new PartPool(options.partMemory ?? 256 * 1024 * 1024) };
  const get =
    options.read === "sdk"
      ? undefined
      : createObjectGetter({
          endpoint,
          bucket,
          region,
          forcePathStyle: options.forcePathStyle ?? false,
          // The SDK's own provider chain (environment, profile, web identity, instance
          // metadata), cached and refreshed by the SDK.
          credentials: () => client.config.credentials(),
          agent: endpoint.startsWith("https:") ? httpsAgent : httpAgent,
          maxAttempts: options.maxAttempts ?? 4,
          connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
          bufferBelow: SMALL_BODY,
        });

  const mapError = (err: unknown, key: string): GatewayError => {
    if (err instanceof GatewayError) return err;
    const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
    const status = e.$metadata?.httpStatusCode;
    const name = e.name ?? "";
    if (name === "AbortError") return new StorageUnavailable("the read was aborted", err);
    if (name === "TimeoutError") return new StorageTimeout("the object store stopped answering", err);
    if (BAD_CREDENTIALS.has(name)) return new GatewayError(502, "storage_credentials", "the object store rejected the gateway's credentials", { cause: err });
    // The store's configuration is wrong, not the request: never "object not found".
    if (name === "NoSuchBucket") return new GatewayError(502, "storage_bucket_missing", "the object store has no such bucket", { cause: err });
    if (NOT_FOUND.has(name) || status === 404) return new ObjectNotFound(key, err);
    if (status === 412 || name === "PreconditionFailed") return new ObjectChanged(key, err);
    if (status === 403 || name === "AccessDenied") return new ObjectAccessDenied(key, err);
    return new StorageUnavailable("the object store failed", err);
  };

  const explain = async (key: string, fallback: GatewayError, signal: AbortSignal | undefined): Promise<GatewayError> => {
    try {
      const res = await timed(signal, (abortSignal) =>
        client.send(new GetObjectCommand({ Bucket: bucket, Key: base + key, Range: "bytes=0-0" }), { abortSignal }),
      );
      (res.Body as Readable | undefined)?.destroy();
      return fallback;
    } catch (err) {
      const why = mapError(err, key);
      return why.code === "storage_credentials" || why.code === "storage_bucket_missing" ? why : fallback;
    }
  };

  const info = (key: string, o: { ContentLength?: number; Size?: number; LastModified?: Date; ETag?: string }): ObjectInfo => ({
    key,
    size: o.ContentLength ?? o.Size ?? 0,
    mtimeMs: o.LastModified?.getTime() ?? 0,
    etag: o.ETag ?? "",
  });

  return {
    description: `s3 bucket ${bucket}${base ? ` prefix ${base}` : ""}`,

    async stat(key, opts = {}) {
      if (key.endsWith("/")) throw new ObjectNotFound(key);
      try {
        const head = await timed(opts.signal, (abortSignal) =>
          client.send(new HeadObjectCommand({ Bucket: bucket, Key: base + key, ChecksumMode: "ENABLED" }), { abortSignal }),
        );
        return { ...info(key, head), crc32: fullObjectCrc32(head.ChecksumCRC32, head.ChecksumType) };
      } catch (err) {
        const mapped = mapError(err, key);
        // A HEAD answer has no body, so a 403 or 404 does not say why; a one-byte GET
        // does (a wrong secret, a missing bucket), so both are told apart as for folders.
        if (mapped instanceof ObjectAccessDenied || mapped instanceof ObjectNotFound) throw await explain(key, mapped, opts.signal);
        throw mapped;
      }
    },

    async *list(prefix, opts = {}) {
      let token: string | undefined;
      let seen = false;
      do {
        let page: ListObjectsV2CommandOutput;
        try {
          page = await timed(opts.signal, (abortSignal) =>
            client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: base + prefix, ContinuationToken: token }), { abortSignal }),
          );
        } catch (err) {
          throw mapError(err, prefix);
        }
        for (const o of page.Contents ?? []) {
          if (!o.Key) continue;
          seen = true;
          const key = o.Key.slice(base.length);
          if (key === prefix) continue; // the folder's own marker
          const item: ListItem = key.endsWith("/") ? { kind: "dir", key, mtimeMs: o.LastModified?.getTime() ?? 0 } : { kind: "file", ...info(key, o) };
          yield item;
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      if (!seen) throw new ObjectNotFound(prefix);
    },

    async read(key, opts: ReadOptions = {}) {
      opts.signal?.throwIfAborted();
      const range = opts.range;
      if (range && range.start === range.end) return Readable.from([]);
      if (get) {
        const start = range?.start ?? 0;
        const end = range?.end ?? opts.size;
        const etag = opts.etag || undefined;
        try {
          const body = await timed(opts.signal, (signal) =>
            // Large enough for parts, and a version to hold every part to.
            end !== undefined && etag !== undefined && parts.depth > 1 && end - start >= 2 * partSize
              ? readInParts(
                  // Parts after the first fail inside the body: mapped the same way.
                  (req) => get(req).catch((err: unknown) => Promise.reject(mapError(err, key))),
                  { key: base + key, etag, signal },
                  start,
                  end,
                  parts,
                )
              : get({ key: base + key, range, etag, signal }),
          );
          return withVersion(body, key, etag !== undefined && etagConfirmed(body) ? etag : undefined);
        } catch (err) {
          throw mapError(err, key);
        }
      }
      try {
        const res = await timed(opts.signal, (abortSignal) =>
          client.send(
            new GetObjectCommand({
              Bucket: bucket,
              Key: base + key,
              Range: range ? `bytes=${range.start}-${range.end - 1}` : undefined,
              // The version seen at resolution, or a loud failure: never a mix of versions.
              IfMatch: opts.etag || undefined,
            }),
            { abortSignal },
          ),
        );
        // A store that ignored If-Match answers another version: no proof then (the CRC check catches it).
        return withVersion(res.Body as Readable, key, opts.etag && confirmsEtag(res.ETag, opts.etag) ? opts.etag : undefined);
      } catch (err) {
        throw mapError(err, key);
      }
    },

    async get(key, opts = {}) {
      try {
        return await timed(opts.signal, async (abortSignal) => {
          const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: base + key }), { abortSignal });
          return Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
        });
      } catch (err) {
        const mapped = mapError(err, key);
        if (mapped instanceof ObjectNotFound) return null;
        // The gateway's own state: a refusal is the store's failure, and names no internal path.
        if (mapped.status < 500) throw new StorageUnavailable("the store's state could not be read", err);
        throw mapped;
      }
    },

    async put(key, body, opts = {}) {
      const put = (ifNoneMatch?: string) =>
        timed(opts.signal, (abortSignal) =>
          client.send(new PutObjectCommand({ Bucket: bucket, Key: base + key, Body: body, IfNoneMatch: ifNoneMatch }), { abortSignal }),
        );
      try {
        if (!opts.ifAbsent) {
          await put();
          return true;
        }
        if (conditionalPut !== false) {
          try {
            await put("*");
            conditionalPut = true;
            return true;
          } catch (err) {
            const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
            if (status === 412 || status === 409) return false;
            if (status !== 501 && (err as { name?: string }).name !== "NotImplemented") throw err;
            // The store has no conditional PUT: check, then write (a narrow race remains).
            conditionalPut = false;
          }
        }
        // The store has no conditional PUT: claim with a marker that is read back. Every
        // contender writes its own token, waits, and reads; the last write is what all of
        // them read, so one wins. Contenders further apart than the wait see the object.
        const exists = async (k: string): Promise<boolean> =>
          timed(opts.signal, (abortSignal) => client.send(new HeadObjectCommand({ Bucket: bucket, Key: base + k }), { abortSignal })).then(
            () => true,
            (err) => {
              if (mapError(err, k) instanceof ObjectNotFound) return false;
              throw err;
            },
          );
        const marker = `${key}.claim`;
        if ((await exists(key)) || (await exists(marker))) return false;
        const token = randomUUID();
        await timed(opts.signal, (abortSignal) => client.send(new PutObjectCommand({ Bucket: bucket, Key: base + marker, Body: token }), { abortSignal }));
        await new Promise((r) => setTimeout(r, CLAIM_SETTLE_MS));
        const read = await timed(opts.signal, async (abortSignal) => {
          const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: base + marker }), { abortSignal });
          return Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray()).toString("utf8");
        });
        if (read !== token) return false;
        await put();
        // The marker stays: deleting it would let a contender that checked the object just
        // before it was written pass the marker check just after.
        return true;
      } catch (err) {
        throw mapError(err, key);
      }
    },

    async delete(key) {
      try {
        await timed(undefined, (abortSignal) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: base + key }), { abortSignal }));
      } catch (err) {
        const mapped = mapError(err, key);
        if (!(mapped instanceof ObjectNotFound)) throw mapped;
      }
    },

    async close() {
      client.destroy();
    },
  };
}

/**
 * A body read with If-Match whose answer carried that strong ETag names its version: the
 * store enforced the ETag, a hash of the content, so every body of that key and ETag carries
 * the same bytes.
 */
function withVersion(body: Readable | Buffer, key: string, etag: string | undefined): ObjectBody {
  if (etag !== undefined && !Buffer.isBuffer(body)) (body as VersionedStream).version = `${key}\0${etag}`;
  return body;
}

/** A full-object CRC32 (base64, big-endian) as a number; composite (`…-N`) values are not usable. */
export function fullObjectCrc32(value: string | undefined, type: string | undefined): number | undefined {
  if (!value || value.includes("-") || (type !== undefined && type !== "FULL_OBJECT")) return undefined;
  const bytes = Buffer.from(value, "base64");
  return bytes.length === 4 ? bytes.readUInt32BE(0) : undefined;
}
