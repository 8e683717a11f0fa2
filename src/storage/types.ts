import type { Readable } from "node:stream";

/**
 * The storage seam. The core knows this interface and nothing else about
 * where objects live. Keys are relative (`dir/file.txt`, no leading slash);
 * adapters translate backend errors into ObjectNotFound, ObjectChanged,
 * ObjectAccessDenied and StorageUnavailable.
 */
export interface ObjectInfo {
  key: string;
  size: number;
  mtimeMs: number;
  /** Identity of this version of the object (an ETag, or size+mtime+inode). */
  etag: string;
  /** Full-object CRC32 kept by the store, when it keeps one. */
  crc32?: number | undefined;
}

export type ListItem = ({ kind: "file" } & ObjectInfo) | { kind: "dir"; key: string; mtimeMs: number };

/**
 * An object's bytes: a stream, or, for an object small enough to have been read in one call,
 * the bytes themselves (no stream machinery per small object).
 */
export type ObjectBody = VersionedStream | Buffer;

/**
 * A stream that may name the exact content it carries. `version` is set only where the store
 * has a proof that userspace cannot forge that two bodies with the same version carry the same
 * bytes: on S3 an ETag the store enforced with If-Match (a content hash), on a local disk the
 * inode, size, mtime and ctime of a file whose ctime was settled when it was opened (the kernel
 * sets ctime on every change and no call can set it back). A CRC computed over one body then
 * holds for every later body of the same version, which need not be hashed again.
 */
export type VersionedStream = Readable & { version?: string };

/** The version a body names, if any (see VersionedStream). */
export function versionOf(body: ObjectBody): string | undefined {
  return Buffer.isBuffer(body) ? undefined : body.version;
}

/** The chunks of a body, whichever form it has. */
export function chunksOf(body: ObjectBody): AsyncIterable<Buffer> | Iterable<Buffer> {
  return Buffer.isBuffer(body) ? [body] : (body as AsyncIterable<Buffer>);
}

export interface ReadOptions {
  signal?: AbortSignal | undefined;
  /** Byte range, inclusive start and exclusive end. */
  range?: { start: number; end: number } | undefined;
  /** Fail with ObjectChanged unless the object still has this identity. */
  etag?: string | undefined;
  /** The object's size as pinned, when known: a store may read a large object in parts. */
  size?: number | undefined;
}

export interface Storage {
  /** Short description for logs, without secrets. */
  readonly description: string;
  /** Metadata of one object; ObjectNotFound when absent or not a plain object. */
  stat(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo>;
  /**
   * Everything below `prefix` (which ends with `/`), recursively, sorted by
   * key in byte order. Directories are reported where the store has them
   * (folders on disk, `…/` markers in S3), with keys ending in `/`.
   * Throws ObjectNotFound when the folder does not exist at all. With `limit`, the store
   * may stop once it has listed more than `limit` files: the caller refuses such a folder.
   */
  list(prefix: string, options?: { signal?: AbortSignal; limit?: number }): AsyncIterable<ListItem>;
  /** Streams an object (or a range of it). Resolves once the read has started. */
  read(key: string, options?: ReadOptions): Promise<ObjectBody>;
  /**
   * Optional: the CRC-32 of a whole object, which must still have the identity `etag`, computed
   * where the store reads it (the folder store hashes on its worker threads, so the bytes never
   * reach the event loop). Without it, callers read the object and hash what comes.
   */
  crc32?(key: string, options: { etag: string; signal?: AbortSignal | undefined }): Promise<number>;
  /** Why the store is not healthy right now (threads stuck on a disk that does not answer); undefined when it is. */
  health?(): string | undefined;
  /** Small state objects (manifests, indexes): whole-body get. null when absent. */
  get(key: string, options?: { signal?: AbortSignal }): Promise<Buffer | null>;
  /**
   * Small state objects: whole-body put, replacing any previous one, or with
   * `ifAbsent` only when none exists. Resolves false when `ifAbsent` found one.
   */
  put(key: string, body: Buffer | string, options?: { signal?: AbortSignal; ifAbsent?: boolean }): Promise<boolean>;
  /** Removes an object; no error when absent. */
  delete(key: string): Promise<void>;
  /** Releases sockets and handles. */
  close(): Promise<void>;
}
