import { createHmac, hash, timingSafeEqual } from "node:crypto";
import { LRUCache } from "lru-cache";
import { RESERVED_PREFIX } from "../storage/keys.js";
import type { Storage } from "../storage/types.js";
import { mapLimit } from "../util/concurrency.js";

/** One version of a stored object: its key and its identity (ETag, or inode+size+mtime). */
export interface ObjectRef {
  key: string;
  etag: string;
}

export interface ObjectCrcIndexOptions {
  storage: Storage;
  /** Authenticates the records (the signing secret): a record altered in the store is ignored. */
  secret: string;
  /**
   * Most shards (folders) read for one lookup; objects in further folders are looked up in
   * none, so a zipball of objects spread over 10,000 folders costs at most this many reads.
   * @default 64
   */
  maxShards?: number;
  /** Shards read at once. @default 8 */
  concurrency?: number;
}

/** Records kept per shard: beyond it the oldest (replaced versions, mostly) are dropped. */
const MAX_SHARD_RECORDS = 100_000;
/** How long a shard read is trusted in memory; records written here update it at once. */
const SHARD_CACHE_MS = 30_000;

/**
 * CRCs of object versions, recorded when a download or a prepared creation has read an object
 * whole, so that a later zipball of the same objects (of any key, on any replica) can write
 * them in the classic form from its first byte. Keyed by object identity: a record is of
 * `sha256(key \0 etag)`, so a changed object (new ETag) is a new record and the old one simply
 * stops matching. Records are sharded by folder (`.zipgate/crc/<sha256(folder)>`), because a
 * zipball mostly holds whole folders: a 10,000-file folder is one read at creation.
 *
 * What a caller learns is nothing: lookups are made for objects the caller's request already
 * resolved within its scopes, and only decide the archive's form.
 */
export class ObjectCrcIndex {
  readonly #storage: Storage;
  readonly #key: Buffer;
  readonly #maxShards: number;
  readonly #concurrency: number;
  readonly #cache = new LRUCache<string, Map<string, number>>({ max: 256, ttl: SHARD_CACHE_MS });
  /** Writes of one shard by this process, one after the other (each rewrites the shard). */
  readonly #writing = new Map<string, Promise<void>>();

  constructor(options: ObjectCrcIndexOptions) {
    this.#storage = options.storage;
    this.#key = createHmac("sha256", options.secret).update("zipgate object crcs").digest();
    this.#maxShards = options.maxShards ?? 64;
    this.#concurrency = options.concurrency ?? 8;
  }

  /** The recorded CRC of each object (in order), undefined where none is recorded or read. */
  async lookup(refs: readonly ObjectRef[], signal?: AbortSignal): Promise<Array<number | undefined>> {
    const out = new Array<number | undefined>(refs.length);
    const byShard = new Map<string, number[]>();
    const shardOf = shards();
    refs.forEach((ref, i) => {
      const shard = shardOf(ref.key);
      let list = byShard.get(shard);
      if (!list) {
        list = [];
        byShard.set(shard, list);
      }
      list.push(i);
    });
    // The folders holding most of the objects first; past the shard budget, none.
    const fullest = [...byShard].sort((a, b) => b[1].length - a[1].length).slice(0, this.#maxShards);
    await mapLimit(
      fullest,
      this.#concurrency,
      async ([shard, indexes]) => {
        const records = await this.#load(shard, signal);
        if (records.size === 0) return;
        for (const i of indexes) out[i] = records.get(recordId(refs[i] as ObjectRef));
      },
      signal,
    );
    return out;
  }

  /** Adds CRCs of objects read whole. Concurrent writers only ever add facts; one lost is only a CRC to compute again. */
  async record(facts: ReadonlyArray<ObjectRef & { crc: number }>): Promise<void> {
    const byShard = new Map<string, Array<ObjectRef & { crc: number }>>();
    const shardOf = shards();
    for (const f of facts) {
      const shard = shardOf(f.key);
      // Already recorded as far as this process knows: no read and rewrite of the shard for it.
      if (this.#cache.get(shard)?.get(recordId(f)) === f.crc >>> 0) continue;
      let list = byShard.get(shard);
      if (!list) {
        list = [];
        byShard.set(shard, list);
      }
      list.push(f);
    }
    await mapLimit([...byShard], this.#concurrency, ([shard, list]) => {
      const previous = this.#writing.get(shard) ?? Promise.resolve();
      const next = previous.then(() => this.#merge(shard, list));
      const settled = next.catch(() => {});
      this.#writing.set(shard, settled);
      void settled.then(() => {
        if (this.#writing.get(shard) === settled) this.#writing.delete(shard);
      });
      return next;
    });
  }

  async #merge(shard: string, facts: ReadonlyArray<ObjectRef & { crc: number }>): Promise<void> {
    const records = new Map(await this.#read(shard));
    let changed = false;
    for (const f of facts) {
      const id = recordId(f);
      if (records.get(id) === f.crc >>> 0) continue;
      // Newest last, so the oldest are the first dropped.
      records.delete(id);
      records.set(id, f.crc >>> 0);
      changed = true;
    }
    if (!changed) return;
    for (const id of records.keys()) {
      if (records.size <= MAX_SHARD_RECORDS) break;
      records.delete(id);
    }
    const body = JSON.stringify(Object.fromEntries(records));
    await this.#storage.put(shardKey(shard), `${this.#mac(shard, body).toString("base64url")}\n${body}`);
    this.#cache.set(shard, records);
  }

  async #load(shard: string, signal?: AbortSignal): Promise<Map<string, number>> {
    const cached = this.#cache.get(shard);
    if (cached) return cached;
    const records = await this.#read(shard, signal);
    this.#cache.set(shard, records);
    return records;
  }

  async #read(shard: string, signal?: AbortSignal): Promise<Map<string, number>> {
    const raw = await this.#storage.get(shardKey(shard), signal ? { signal } : undefined);
    if (!raw) return new Map();
    const text = raw.toString("utf8");
    const newline = text.indexOf("\n");
    if (newline < 0) return new Map();
    const mac = Buffer.from(text.slice(0, newline), "base64url");
    const body = text.slice(newline + 1);
    const expected = this.#mac(shard, body);
    if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) return new Map();
    return new Map(Object.entries(JSON.parse(body) as Record<string, number>));
  }

  #mac(shard: string, body: string): Buffer {
    return createHmac("sha256", this.#key).update(`${shard}\n${body}`).digest();
  }
}

/**
 * The shard of a key: a hash of its folder (no key or folder name appears in the store's
 * state). Hashed once per folder: 10,000 keys of one folder cost one hash.
 */
function shards(): (key: string) => string {
  const known = new Map<string, string>();
  return (key) => {
    const slash = key.lastIndexOf("/");
    const folder = slash < 0 ? "" : key.slice(0, slash);
    let shard = known.get(folder);
    if (shard === undefined) {
      shard = hash("sha256", folder, "hex").slice(0, 32);
      known.set(folder, shard);
    }
    return shard;
  };
}

/** Where the index's shards live (the sweeper removes old ones). */
export const CRC_SHARDS_PREFIX = `${RESERVED_PREFIX}crc/`;

function shardKey(shard: string): string {
  return `${CRC_SHARDS_PREFIX}${shard}`;
}

/** One object version's record id: 128 bits of `sha256(key \0 etag)` (one-shot `hash`: a few times faster than a Hash object). */
function recordId(ref: ObjectRef): string {
  return hash("sha256", `${ref.key}\0${ref.etag}`, "base64url").slice(0, 22);
}
