import { createHmac, timingSafeEqual } from "node:crypto";
import { LRUCache } from "lru-cache";
import { zipballKey } from "../manifest/store.js";
import type { Storage } from "../storage/types.js";

/** New CRCs are written back after this many, or this long, during a download. */
const FLUSH_COUNT = 512;
const FLUSH_MS = 5_000;

/**
 * CRCs of a zipball's objects, recorded while downloads stream them and kept
 * next to the zipball's manifest in the store, so that a resume on any
 * replica can produce descriptors and central records of objects it skips
 * without reading them. Authenticated with an HMAC of the signing secret: a
 * value altered in the store is ignored, never served.
 */
export class CrcBook {
  readonly #storage: Storage;
  readonly #key: Buffer;
  readonly #cache = new LRUCache<string, Map<number, number>>({ max: 10_000 });

  constructor(storage: Storage, secret: string) {
    this.#storage = storage;
    this.#key = createHmac("sha256", secret).update("zipgate crc book").digest();
  }

  #mac(id: string, body: string): Buffer {
    return createHmac("sha256", this.#key).update(`${id}\n${body}`).digest();
  }

  /** The CRCs recorded for a zipball (index → CRC). */
  async load(id: string): Promise<Map<number, number>> {
    const cached = this.#cache.get(id);
    if (cached) return cached;
    const stored = await this.#read(id);
    this.#cache.set(id, stored);
    return stored;
  }

  async #read(id: string): Promise<Map<number, number>> {
    const raw = await this.#storage.get(zipballKey(id, "crcs"));
    if (!raw) return new Map();
    const text = raw.toString("utf8");
    const newline = text.indexOf("\n");
    const mac = Buffer.from(text.slice(0, newline), "base64url");
    const body = text.slice(newline + 1);
    const expected = this.#mac(id, body);
    if (newline < 0 || mac.length !== expected.length || !timingSafeEqual(mac, expected)) return new Map();
    return new Map(Object.entries(JSON.parse(body) as Record<string, number>).map(([k, v]) => [Number(k), v]));
  }

  /** Merges new CRCs into the stored ones. Concurrent writers only ever add facts. */
  async record(id: string, crcs: ReadonlyMap<number, number>): Promise<void> {
    if (crcs.size === 0) return;
    const merged = await this.#read(id);
    for (const [i, crc] of crcs) merged.set(i, crc);
    const body = JSON.stringify(Object.fromEntries(merged));
    await this.#storage.put(zipballKey(id, "crcs"), `${this.#mac(id, body).toString("base64url")}\n${body}`);
    this.#cache.set(id, merged);
  }

  /**
   * A recorder for one download: collects CRCs as objects stream and writes
   * them back in batches, and once more when the download ends however it ends.
   */
  recorder(id: string, onError: (err: unknown) => void): { add(index: number, crc: number): void; flush(): Promise<void> } {
    let pending = new Map<number, number>();
    let last = Date.now();
    let writing: Promise<void> = Promise.resolve();
    const known = this.#cache.get(id);
    const flush = (): Promise<void> => {
      if (pending.size === 0) return writing;
      const batch = pending;
      pending = new Map();
      last = Date.now();
      writing = writing.then(() => this.record(id, batch)).catch(onError);
      return writing;
    };
    return {
      add(index, crc) {
        if (known?.get(index) === crc) return;
        pending.set(index, crc);
        if (pending.size >= FLUSH_COUNT || Date.now() - last >= FLUSH_MS) void flush();
      },
      flush,
    };
  }
}
