import { createHash } from "node:crypto";
import { setImmediate } from "node:timers/promises";
import { LRUCache } from "lru-cache";
import { GatewayError } from "../errors.js";
import { RESERVED_PREFIX } from "../storage/keys.js";
import type { Storage } from "../storage/types.js";
import { isUuidV4 } from "../util/uuid.js";
import type { Manifest, PinnedEntry } from "./schema.js";
import type { ManifestSigner } from "./token.js";

/** A verified zipball: its manifest and its pinned entries. */
export interface Zipball {
  manifest: Manifest;
  entries: PinnedEntry[];
}

export function entriesDigest(json: string | Buffer): string {
  return createHash("sha256").update(json).digest("hex");
}

/** Where a zipball's state lives in the store. */
export function zipballKey(id: string, part = "manifest"): string {
  return `${RESERVED_PREFIX}zipballs/${id}/${part}`;
}

export interface ZipballStoreOptions {
  storage: Storage;
  signer: ManifestSigner;
  /**
   * Memory for verified zipballs kept in memory, in bytes as estimated from their entry
   * count; a zipball estimated above it is not kept. @default 64 MiB
   */
  cacheBytes?: number;
  /**
   * How long a verified zipball is served from memory before the store is asked again: a
   * zipball revoked on one replica stops being served by the others within this time.
   * @default 60 s
   */
  cacheTtlMs?: number;
}

/** Heap bytes of one cached pinned entry (object, name, key and ETag strings), measured with 100,000. */
const ZIPBALL_ENTRY_BYTES = 320;

/**
 * Zipball state in the store: one object per zipball holding the signed
 * manifest token and, after a newline, the pinned entry list whose digest the
 * manifest signs. Any replica verifies it the same way.
 */
export class ZipballStore {
  readonly #storage: Storage;
  readonly #signer: ManifestSigner;
  readonly #cache: LRUCache<string, Zipball>;

  constructor(options: ZipballStoreOptions) {
    this.#storage = options.storage;
    this.#signer = options.signer;
    this.#cache = new LRUCache<string, Zipball>({
      maxSize: options.cacheBytes ?? 64 * 1024 * 1024,
      sizeCalculation: (z) => z.entries.length * ZIPBALL_ENTRY_BYTES + 1024,
      ttl: options.cacheTtlMs ?? 60_000,
    });
  }

  /** Removes a zipball's manifest and state from the store: every replica then answers 404 (after its cache time). */
  async revoke(id: string): Promise<void> {
    this.#cache.delete(id);
    await this.#storage.delete(zipballKey(id));
    await Promise.all(["crcs", "progress"].map((part) => this.#storage.delete(zipballKey(id, part))));
  }

  /** Signs and stores a new zipball. The manifest's `entries` digest is filled in here. */
  async save(manifest: Omit<Manifest, "entries">, entries: PinnedEntry[]): Promise<Zipball> {
    // One UTF-8 copy of the entry list (tens of MiB for 100,000 entries) serves both the
    // digest and the stored object.
    const json = Buffer.from(JSON.stringify(entries));
    // Tens of milliseconds for 10,000 entries so far; the signing is as long again.
    await setImmediate();
    const full: Manifest = { ...manifest, entries: entriesDigest(json) };
    const token = await this.#signer.sign(full);
    await this.#storage.put(zipballKey(full.id), Buffer.concat([Buffer.from(`${token}\n`), json]));
    const zipball = { manifest: full, entries };
    this.#cache.set(full.id, zipball);
    return zipball;
  }

  /**
   * Loads and verifies a zipball: 404 when unknown or altered, 410 when
   * expired (unless `allowExpired`, for a download that already started).
   */
  async load(id: string, now = Date.now(), allowExpired = false): Promise<Zipball> {
    if (!isUuidV4(id)) throw notFound();
    const cached = this.#cache.get(id);
    if (cached) {
      if (!allowExpired && cached.manifest.exp * 1000 <= now) throw expired();
      return cached;
    }
    const body = await this.#storage.get(zipballKey(id));
    if (!body) throw notFound();
    const text = body.toString("utf8");
    const newline = text.indexOf("\n");
    if (newline < 0) throw tampered(id);
    const token = text.slice(0, newline);
    const json = text.slice(newline + 1);
    const manifest = await this.#signer.verify(token, allowExpired ? 0 : now);
    if (manifest === "expired") throw expired();
    if (manifest === "invalid" || manifest.id !== id || manifest.entries !== entriesDigest(json)) throw tampered(id);
    const zipball = { manifest, entries: JSON.parse(json) as PinnedEntry[] };
    this.#cache.set(id, zipball);
    return zipball;
  }
}

function notFound(): GatewayError {
  return new GatewayError(404, "not_found", "zipball not found");
}

function expired(): GatewayError {
  return new GatewayError(410, "expired", "this zipball has expired");
}

function tampered(id: string): GatewayError {
  // Same answer as an unknown id; the cause goes to the log only.
  return new GatewayError(404, "not_found", "zipball not found", { cause: new Error(`manifest of ${id.slice(0, 8)}… failed verification`) });
}
