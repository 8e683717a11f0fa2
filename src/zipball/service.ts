import { createHash, randomUUID } from "node:crypto";
import { LRUCache } from "lru-cache";
import { computeLayout, crcsNeeded, LAYOUT_REVISION, type Layout } from "../archive/layout.js";
import { CLASSIC_INLINE_MAX, type EntryReader, openArchiveRange } from "../archive/stream.js";
import { streamedArchive } from "../archive/streamed.js";
import { checkScopes } from "../auth.js";
import { GatewayError } from "../errors.js";
import { describeError, type Logger } from "../log.js";
import type { Manifest, PinnedEntry, RequestedItem } from "../manifest/schema.js";
import type { Zipball, ZipballStore } from "../manifest/store.js";
import type { Metrics } from "../metrics.js";
import type { UrlFetcher } from "../sources/url.js";
import type { Storage } from "../storage/types.js";
import { mapLimit } from "../util/concurrency.js";
import type { CrcBook } from "./crcs.js";
import { type CrcBudget, crcOfBody, type FormOptions, type FormSummary, pinForms, streamedForms } from "./forms.js";
import type { ObjectCrcIndex, ObjectRef } from "./object-crcs.js";
import { type Resolution, resolveItems } from "./resolve.js";

export interface ZipballServiceOptions {
  storage: Storage;
  /** Fetcher for URL objects (SSRF-guarded). */
  urls: UrlFetcher;
  zipballs: ZipballStore;
  maxFiles: number;
  maxBytes: number;
  /** Longest lifetime, in seconds; also the default. */
  ttlSeconds: number;
  /** Objects opened ahead of the one being streamed. */
  readAhead: number;
  /** Longest silence of the store inside an object being sent, in ms. */
  idleTimeoutMs?: number | undefined;
  /** CRCs recorded by earlier downloads, kept in the store. */
  crcs: CrcBook;
  /** CRCs of object versions read whole before, by object identity: classic entries for new zipballs. */
  objectCrcs: ObjectCrcIndex;
  logger: Logger;
  /** CRCs computed and reused are counted here. */
  metrics?: Metrics | undefined;
  /** Takes a download slot (503 when none is free): the reads that learn CRCs at creation hold one. */
  admit?: (() => { release(): void }) | undefined;
  /** Objects read at once to compute CRCs nobody recorded. @default 4 */
  crcConcurrency?: number;
  /**
   * What a creation may read to learn unknown CRCs, so its archive is classic from the first
   * download (ZIPGATE_PREPARE_BYTES, ZIPGATE_PREPARE_MS). @default 1 GiB, 10 s
   */
  prepareBudget?: CrcBudget | undefined;
  /** Largest entry a deflate-mode archive compresses in memory, classic (ZIPGATE_DEFLATE_INLINE). @default 1 MiB */
  deflateInlineMax?: number | undefined;
  /**
   * Memory for the layouts of recent downloads, in bytes as estimated from their entry
   * count; a layout estimated above it is not kept. @default 64 MiB
   */
  cacheBytes?: number;
}

/** What a creation reads by default to learn unknown CRCs: a typical 1 GiB request, read from a local disk or a nearby store. */
export const DEFAULT_PREPARE_BUDGET: CrcBudget = { bytes: 2 ** 30, ms: 10_000 };

/** Largest entry a deflate-mode archive compresses in memory by default. */
export const DEFLATE_INLINE_MAX = 1024 * 1024;

/** Memory for the CRCs of verified object versions, by the length of their keys: about 50,000 of 100-byte keys. */
const VERIFIED_BYTES = 16 * 1024 * 1024;

/** Heap bytes of one cached layout entry (object, CRC slots), measured with 100,000. */
const LAYOUT_ENTRY_BYTES = 160;

export interface CreateInput {
  flavour: Manifest["flavour"];
  items: RequestedItem[];
  /** Download file name; `.zip` is added when missing. */
  filename?: string | undefined;
  compression?: Manifest["compression"];
  owner: string;
  /** Requested lifetime in seconds, capped by the configured one. */
  expiresIn?: number | undefined;
  /** Path prefixes the caller may read (`/dir/`); undefined = everything. */
  scopes?: string[] | undefined;
  /** Aborted when the client goes away: walks, stats and probes stop. */
  signal?: AbortSignal | undefined;
  /**
   * Objects whose CRC is not known yet read before answering, so that their entries have the
   * classic form (streaming readers read the whole archive): `true` all of them, `false` none,
   * unset as many as the configured budget allows.
   */
  prepare?: boolean | undefined;
}

/** Everything needed to answer a download before its first byte. */
export interface Download {
  zipball: Zipball;
  /** Pinned entry index of each archive entry (a download may leave some out). */
  indexes: number[];
  layout: Layout;
  /** The pinned entry of each archive entry. */
  entries: PinnedEntry[];
  /** Some origin gave no length: streamed chunked, without Range. */
  chunked: boolean;
  /** Strong validator of the archive's bytes. */
  etag: string;
  lastModified: Date;
  expiresAt: Date;
  filename: string;
}

/** The zipball engine every API flavour shares: create, open, stream. */
export class ZipballService {
  readonly #opts: ZipballServiceOptions;
  readonly #layouts: LRUCache<string, Download>;
  /**
   * CRCs of object versions this process hashed whole, by the version the store proved
   * (VersionedStream): a repeat download of an unchanged large object is not hashed again.
   */
  readonly #verified = new LRUCache<string, number>({ maxSize: VERIFIED_BYTES, sizeCalculation: (_, version) => 64 + 2 * version.length });

  constructor(options: ZipballServiceOptions) {
    this.#opts = options;
    this.#layouts = new LRUCache<string, Download>({
      maxSize: options.cacheBytes ?? 64 * 1024 * 1024,
      sizeCalculation: (d) => d.layout.entries.length * LAYOUT_ENTRY_BYTES + 1024,
    });
  }

  get storage(): Storage {
    return this.#opts.storage;
  }

  /** The byte limit of one archive (ZIPGATE_MAX_BYTES). */
  get maxBytes(): number {
    return this.#opts.maxBytes;
  }

  /** Resolves the items (limits, missing objects, names), then signs and stores the manifest. */
  async create(input: CreateInput, now = Date.now()): Promise<{ zipball: Zipball; resolution: Resolution; forms: FormSummary }> {
    checkScopes(
      input.scopes,
      input.items.flatMap((i) => (i.type === "url" ? [] : [i.key])),
    );
    const resolution = await resolveItems(input.items, {
      storage: this.#opts.storage,
      urls: this.#opts.urls,
      maxFiles: this.#opts.maxFiles,
      maxBytes: this.#opts.maxBytes,
      signal: input.signal,
    });
    const compression = input.compression ?? "store";
    const forms =
      compression === "store"
        ? await pinForms(resolution.entries, input.items, this.#formDeps(input.prepare, input.signal))
        : streamedForms(resolution.entries, this.deflateInlineMax);
    const id = randomUUID();
    const iat = Math.floor(now / 1000);
    const ttl = Math.min(input.expiresIn ?? this.#opts.ttlSeconds, this.#opts.ttlSeconds);
    const zipball = await this.#opts.zipballs.save(
      {
        id,
        flavour: input.flavour,
        items: input.items,
        filename: withZip(input.filename ?? id),
        compression,
        owner: input.owner,
        iat,
        exp: iat + ttl,
      },
      resolution.entries,
    );
    return { zipball, resolution, forms };
  }

  /** Longest silence of the store inside an object, in ms (ZIPGATE_STORE_TIMEOUT), for every archive writer. */
  get idleTimeoutMs(): number | undefined {
    return this.#opts.idleTimeoutMs;
  }

  /** Largest entry a deflate-mode archive compresses in memory and writes classic. */
  get deflateInlineMax(): number {
    return this.#opts.deflateInlineMax ?? DEFLATE_INLINE_MAX;
  }

  /** Loads a zipball and its layout (cached): 404/410 as the store says. */
  async open(id: string, options: { now?: number; allowExpired?: boolean } = {}): Promise<Download> {
    const zipball = await this.#opts.zipballs.load(id, options.now ?? Date.now(), options.allowExpired);
    const cached = this.#layouts.get(id);
    if (cached && cached.zipball === zipball) return cached;
    const download = prepare(zipball, new Set());
    this.#layouts.set(id, download);
    return download;
  }

  /** Revokes a zipball of `owner`'s: 404 when it is unknown or another key's. */
  async revoke(id: string, owner: string): Promise<void> {
    const zipball = await this.#opts.zipballs.load(id, Date.now(), true);
    if (zipball.manifest.owner !== owner) throw new GatewayError(404, "not_found", "zipball not found");
    this.#layouts.delete(id);
    await this.#opts.zipballs.revoke(id);
  }

  /** The same zipball without some of its pinned entries (by index): its own layout and ETag. */
  without(download: Download, skipped: ReadonlySet<number>): Download {
    return skipped.size === 0 ? download : prepare(download.zipball, skipped);
  }

  /**
   * Pinned files that can no longer be read as pinned (deleted, unreadable,
   * or changed), checked with bounded concurrency.
   */
  async unreadable(download: Download, signal?: AbortSignal): Promise<Set<number>> {
    const out = new Set<number>();
    const { entries } = download.zipball;
    await mapLimit(
      download.indexes,
      16,
      async (i) => {
        const e = entries[i] as PinnedEntry;
        // URL objects are checked as they are fetched.
        if (e.kind !== "file" || e.key === undefined) return;
        try {
          const info = await this.#opts.storage.stat(e.key, { signal: signal as AbortSignal });
          if (info.etag !== e.etag || info.size !== e.size) out.add(i);
        } catch (err) {
          if (err instanceof GatewayError && err.status < 500) out.add(i);
          else throw err;
        }
      },
      signal,
    );
    return out;
  }

  /**
   * The bytes of [start, end) of a download. Resolves when the first byte
   * can be sent; failures before that are ordinary errors.
   *
   * CRCs of objects the range skips come, in this order, from those recorded
   * by earlier downloads (on any replica), from the store's own full-object
   * CRC32, and last from reading the objects; every CRC learnt is recorded.
   */
  async stream(
    download: Download,
    range: { start: number; end: number },
    signal: AbortSignal,
    onEntryDone?: (index: number) => void,
  ): Promise<AsyncGenerator<Buffer>> {
    const id = download.zipball.manifest.id;
    const { entries } = download.zipball;
    // CRCs are kept by pinned index; the archive may be a subset of the pinned entries.
    const pinned = download.indexes;
    const recordedCrcs = await this.#opts.crcs.load(id);
    const known = new Map<number, number>();
    pinned.forEach((p, i) => {
      // A pinned CRC first: a classic entry's header holds it on every replica.
      const crc = entries[p]?.crc32 ?? recordedCrcs.get(p);
      if (crc !== undefined) known.set(i, crc);
    });
    const warn = (err: unknown): void => this.#opts.logger.warn("could not record CRCs", describeError(err));
    const book = this.#opts.crcs.recorder(id, warn);
    // CRCs learnt are kept for this zipball (its resumes) and by object identity (new zipballs).
    let facts: Array<ObjectRef & { crc: number }> = [];
    const recorder = {
      add: (index: number, crc: number): void => {
        const p = pinned[index] as number;
        book.add(p, crc);
        const e = entries[p];
        if (e?.key !== undefined && e.etag !== undefined && e.crc32 === undefined) facts.push({ key: e.key, etag: e.etag, crc });
      },
      flush: async (): Promise<void> => {
        const batch = facts;
        facts = [];
        await Promise.all([book.flush(), batch.length > 0 ? this.#opts.objectCrcs.record(batch).catch(warn) : undefined]);
      },
    };
    const metrics = this.#opts.metrics;
    if (metrics && (range.start > 0 || range.end < download.layout.total)) {
      // The CRCs a resume needs of entries it skips: each one known is an object not read again.
      const reused = crcsNeeded(download.layout, range.start, range.end, CLASSIC_INLINE_MAX).filter((i) => known.has(i)).length;
      if (reused > 0) metrics.crcs.inc({ how: "reused" }, reused);
    }
    const bytes = await openArchiveRange({
      layout: download.layout,
      read: this.reader(download),
      start: range.start,
      end: range.end,
      knownCrcs: known,
      verified: this.#verified,
      lookupCrc: async (indexes) => {
        const computed = await this.#computeCrcs(download, indexes, signal);
        metrics?.crcs.inc({ how: "read" }, computed.size);
        for (const [i, crc] of computed) recorder.add(i, crc);
        void recorder.flush();
        return computed;
      },
      readAhead: this.#opts.readAhead,
      idleTimeoutMs: this.#opts.idleTimeoutMs,
      onCrc: (index, crc) => {
        metrics?.crcs.inc({ how: "streamed" });
        recorder.add(index, crc);
      },
      onEntryDone,
      signal,
    }).catch(async (err: unknown) => {
      await recorder.flush();
      throw err;
    });
    return flushAtEnd(bytes, recorder.flush);
  }

  /**
   * An archive of items that is not kept as a zipball (a job's): resolved
   * now, streamed once. `length` is undefined when a URL gave no length.
   */
  async build(items: RequestedItem[], signal: AbortSignal): Promise<{ body: AsyncIterable<Buffer>; length: number | undefined; forms: FormSummary }> {
    const resolution = await resolveItems(items, {
      storage: this.#opts.storage,
      urls: this.#opts.urls,
      maxFiles: this.#opts.maxFiles,
      maxBytes: this.#opts.maxBytes,
      signal,
    });
    const forms = await pinForms(resolution.entries, items, this.#formDeps(undefined, signal));
    const iat = Math.floor(Date.now() / 1000);
    const manifest: Manifest = {
      id: randomUUID(),
      flavour: "zipkit",
      items,
      filename: "archive.zip",
      compression: "store",
      owner: "",
      iat,
      exp: iat,
      entries: "",
    };
    const download = prepare({ manifest, entries: resolution.entries }, new Set());
    if (download.chunked) {
      const entries = download.zipball.entries;
      return {
        body: streamedArchive(entries, this.reader(download), signal, {
          store: true,
          maxBytes: this.#opts.maxBytes,
          inlineMax: CLASSIC_INLINE_MAX,
          idleTimeoutMs: this.#opts.idleTimeoutMs,
        }),
        length: undefined,
        forms,
      };
    }
    // Classic entries' headers hold the CRCs learnt at pinning.
    const knownCrcs = new Map<number, number>();
    download.entries.forEach((e, i) => {
      if (e.crc32 !== undefined) knownCrcs.set(i, e.crc32);
    });
    const body = await openArchiveRange({
      layout: download.layout,
      read: this.reader(download),
      knownCrcs,
      readAhead: this.#opts.readAhead,
      idleTimeoutMs: this.#opts.idleTimeoutMs,
      signal,
    });
    return { body, length: download.layout.total, forms };
  }

  #formDeps(prepare: boolean | undefined, signal: AbortSignal | undefined): FormOptions {
    const storage = this.#opts.storage;
    return {
      objectCrcs: this.#opts.objectCrcs,
      budget: prepare === true ? "all" : prepare === false ? "none" : (this.#opts.prepareBudget ?? DEFAULT_PREPARE_BUDGET),
      prepareConcurrency: this.#opts.crcConcurrency ?? 4,
      crcOf: async (e, sig) => {
        // Hashed where the store reads it when it can (the folder store's threads); else read
        // (an S3 object in parallel ranged parts, as its size is given) and hashed here.
        if (e.url === undefined && storage.crc32 !== undefined) return storage.crc32(e.key as string, { etag: e.etag ?? "", signal: sig });
        const body =
          e.url !== undefined
            ? await this.#opts.urls.open(new URL(e.url), { etag: e.etag, signal: sig })
            : await storage.read(e.key as string, { etag: e.etag ?? "", size: e.size, signal: sig });
        return crcOfBody(body, e, "while it was read");
      },
      logger: this.#opts.logger,
      signal,
      admit: this.#opts.admit,
    };
  }

  /** Opens an archive entry's data: a stored object (with its pinned identity) or a URL. */
  reader(download: Download): EntryReader {
    return (index, range, signal) => {
      const entry = download.entries[index];
      if (entry?.url !== undefined) return this.#opts.urls.open(new URL(entry.url), { range, etag: entry.etag, signal });
      if (entry?.kind !== "file" || entry.key === undefined) return Promise.reject(new Error(`entry ${index} has no data source`));
      return this.#opts.storage.read(entry.key, { etag: entry.etag ?? "", range, size: entry.size, signal });
    };
  }

  /** Last resort for CRCs of skipped entries: read the objects. */
  async #computeCrcs(download: Download, indexes: number[], signal: AbortSignal): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    const read = this.reader(download);
    await mapLimit(
      indexes,
      this.#opts.crcConcurrency ?? 4,
      async (i) => {
        const entry = download.entries[i] as PinnedEntry;
        out.set(i, await crcOfBody(await read(i, undefined, signal), entry, "since the zipball was created"));
      },
      signal,
    );
    return out;
  }
}

/** A download of a zipball's pinned entries less `skipped`. */
function prepare(zipball: Zipball, skipped: ReadonlySet<number>): Download {
  const { manifest } = zipball;
  const indexes: number[] = [];
  zipball.entries.forEach((_, i) => {
    if (!skipped.has(i)) indexes.push(i);
  });
  const entries = indexes.map((i) => zipball.entries[i] as PinnedEntry);
  const layout = computeLayout(entries);
  const variant = skipped.size === 0 ? "" : `\n${[...skipped].sort((a, b) => a - b).join(",")}`;
  // The layout's revision too: bytes laid out by other rules (another release) never share an ETag.
  const etag = `"${createHash("sha256").update(`${LAYOUT_REVISION}\n${manifest.id}\n${manifest.entries}${variant}`).digest("base64url").slice(0, 32)}"`;
  return {
    zipball,
    indexes,
    layout,
    entries,
    chunked: entries.some((e) => e.unknownSize),
    etag,
    lastModified: new Date(manifest.iat * 1000),
    expiresAt: new Date(manifest.exp * 1000),
    filename: manifest.filename,
  };
}

/** Passes the bytes through, and writes the CRCs learnt back however the download ends. */
async function* flushAtEnd(bytes: AsyncGenerator<Buffer>, flush: () => Promise<void>): AsyncGenerator<Buffer> {
  try {
    yield* bytes;
  } finally {
    void flush();
  }
}

function withZip(name: string): string {
  return name.toLowerCase().endsWith(".zip") ? name : `${name}.zip`;
}
