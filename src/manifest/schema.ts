/** What a client asked for, normalised: store keys, not request paths. */
export type RequestedItem =
  | { type: "file"; key: string; name?: string | undefined; crc32?: number | undefined }
  | { type: "folder"; key: string; name?: string | undefined; crc32?: undefined }
  | { type: "url"; url: string; name?: string | undefined; crc32?: number | undefined };

/** The signed manifest: what was asked for, with options, owner and expiry. */
export interface Manifest {
  /** The zipball id (UUIDv4), also the token's `jti`. */
  id: string;
  /** Which API flavour made it. */
  flavour: "bitpaket" | "box" | "zipkit";
  items: RequestedItem[];
  /** Download file name, with `.zip`. */
  filename: string;
  compression: "store" | "deflate";
  /** Key id of the API key that made it (a hash, never the key). */
  owner: string;
  /** Creation time and expiry, seconds since the epoch. */
  iat: number;
  exp: number;
  /** SHA-256 (hex) of the pinned entry list stored with it. */
  entries: string;
}

/**
 * One entry of the archive as resolved at creation and pinned with the
 * manifest: the archive never changes shape after that.
 */
export interface PinnedEntry {
  /** Entry name in the archive; directories end with `/`. */
  name: string;
  kind: "file" | "dir";
  size: number;
  mtimeMs: number;
  /** Requested item the entry comes from. */
  item: number;
  /** Store key and identity, for files. */
  key?: string | undefined;
  etag?: string | undefined;
  /**
   * CRC32 known at creation: the store's full-object CRC32, one the caller gave, or one recorded
   * by an earlier read of the same object version. Checked against the bytes streamed.
   */
  crc32?: number | undefined;
  /**
   * `classic`: CRC and sizes in the local header, no data descriptor (the CRC is `crc32`, or
   * learnt from the small object before its header). Absent: the descriptor form, as every
   * zipball made before forms existed, whose bytes stay as they were.
   */
  form?: "classic" | undefined;
  /** For entries fetched from a URL instead of the store. */
  url?: string | undefined;
  /** The origin gave no length: the archive is streamed chunked, without Range. */
  unknownSize?: boolean | undefined;
}
