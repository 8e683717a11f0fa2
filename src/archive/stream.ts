import { getMaxListeners, setMaxListeners } from "node:events";
import type { Readable } from "node:stream";
import { ObjectChanged, StorageTimeout } from "../errors.js";
import { type ObjectBody, versionOf } from "../storage/types.js";
import { batchBuffers } from "../util/buffer-pool.js";
import { crc32 } from "../util/crc32.js";
import {
  crcsNeeded,
  endRecords,
  type Layout,
  type LayoutEntry,
  type Segment,
  segments,
  writeCentralRecord,
  writeDataDescriptor,
  writeLocalHeader,
} from "./layout.js";

/**
 * Opens the data of one file entry (by index), or a byte range of it
 * (start inclusive, end exclusive, relative to the entry's data).
 */
export type EntryReader = (index: number, range: { start: number; end: number } | undefined, signal: AbortSignal | undefined) => Promise<ObjectBody>;

export interface ArchiveStreamOptions {
  layout: Layout;
  read: EntryReader;
  /** Half-open byte range of the archive to produce. @default the whole archive */
  start?: number;
  end?: number;
  /**
   * CRCs known in advance, by entry index. Entries whose CRC is needed and
   * missing are asked of `lookupCrc` before the first byte.
   */
  knownCrcs?: ReadonlyMap<number, number>;
  lookupCrc?: (indexes: number[]) => Promise<Map<number, number>>;
  /**
   * Largest classic entry whose CRC, when unknown, is taken from its data read whole just
   * before its local header is written; larger ones are asked of `lookupCrc` first.
   * @default CLASSIC_INLINE_MAX
   */
  inlineCrcMax?: number;
  /**
   * CRCs already computed over bodies of a version (see VersionedStream): a body whose version
   * is here with the CRC the archive expects is sent without being hashed again; every body
   * with a version that is hashed whole is added.
   */
  verified?: VerifiedCrcs;
  /** Called with every CRC computed from data streamed whole. */
  onCrc?: (index: number, crc: number) => void;
  /** Called when a file entry's data has been streamed whole. */
  onEntryDone?: (index: number) => void;
  /**
   * How many objects are opened ahead of the one being streamed. Small objects are opened
   * further ahead, up to 32 times as many, while those ahead hold at most 1 MiB together.
   * @default 8
   */
  readAhead?: number;
  /**
   * Longest wait for the next chunk of the object being sent, in ms: a store that falls
   * silent mid-object fails the archive (StorageTimeout). Only counted while the archive
   * waits for the store, never while the client is slow. @default no limit
   */
  idleTimeoutMs?: number | undefined;
  signal?: AbortSignal;
}

/** CRCs by body version (a bounded cache). */
export interface VerifiedCrcs {
  get(version: string): number | undefined;
  set(version: string, crc: number): void;
}

/** Small pieces are gathered into buffers of this size (the batch pool's) before they are handed on. */
const BATCH = batchBuffers.size;
/** Data chunks at least this long are handed on as they are, not copied into a batch. */
const COPY_BELOW = 32 * 1024;
const DEFAULT_READ_AHEAD = 8;
/**
 * Largest object whose CRC a download may compute just before the object's local header
 * goes out (held whole meanwhile): the size up to which objects are small enough to be
 * written in the classic form without knowing their CRC at creation.
 */
export const CLASSIC_INLINE_MAX = 256 * 1024;
/** Small objects ahead: at most this many bytes together, and the read-ahead times this many objects. */
const SMALL_AHEAD_BYTES = 1024 * 1024;
const SMALL_AHEAD_FACTOR = 32;
/**
 * Bytes opened ahead by all downloads of the process together, beyond the one object each
 * download always has open next: 400 downloads of 8+ objects of 100 KB each held over 400 MiB.
 * An object counts with at most HELD_AT_MOST bytes: a small one is read whole (and held) when
 * opened, a larger one streams only once it is its turn.
 */
const ALL_AHEAD_BYTES = 64 * 1024 * 1024;
const HELD_AT_MOST = 256 * 1024;
let allAheadBytes = 0;
const held = (size: number): number => Math.min(size, HELD_AT_MOST);

/**
 * Prepares the bytes of [start, end) of an archive. Resolves once everything
 * needed before the first byte is known (CRCs of skipped entries, the first
 * object opened), so that failures up to then are ordinary errors; the
 * returned iterator then yields the bytes. A failure after that throws from
 * the iterator, and the caller must abort the transfer.
 */
export async function openArchiveRange(opts: ArchiveStreamOptions): Promise<AsyncGenerator<Buffer, void, undefined>> {
  const { layout, signal } = opts;
  const start = opts.start ?? 0;
  const end = opts.end ?? layout.total;
  const crcs = new CrcTable(layout.entries.length);
  for (const [i, crc] of opts.knownCrcs ?? []) crcs.set(i, crc);
  const missing = crcsNeeded(layout, start, end, opts.inlineCrcMax ?? CLASSIC_INLINE_MAX).filter((i) => !crcs.has(i));
  if (missing.length > 0) {
    if (!opts.lookupCrc) throw new Error("CRC lookup required for this range");
    for (const [i, crc] of await opts.lookupCrc(missing)) crcs.set(i, crc);
    for (const i of missing) if (!crcs.has(i)) throw new Error(`no CRC for entry ${i}`);
  }

  // Walked lazily, never held as a list: 100,000 long-lived segment objects would also teach
  // V8 to allocate the short-lived ones of the same kind straight into the old generation.
  const dataSegments = (function* () {
    for (const seg of segments(layout, start, end)) if (seg.kind === "data") yield seg;
  })();
  const reader = new ReadAhead(opts.read, dataSegments, layout, opts.readAhead ?? DEFAULT_READ_AHEAD, signal);
  try {
    // Open the first object now: a missing or changed first object is still a clean error.
    await reader.peek();
  } catch (err) {
    reader.close();
    throw err;
  }
  return generate(opts, start, end, crcs, reader);
}

async function* generate(opts: ArchiveStreamOptions, start: number, end: number, crcs: CrcTable, reader: ReadAhead): AsyncGenerator<Buffer, void, undefined> {
  const { layout } = opts;
  // Headers and small chunks are written into pooled buffers of BATCH bytes, handed on full.
  let out: Buffer | undefined;
  let used = 0;
  const room = (): Buffer => {
    out ??= batchBuffers.take();
    return out;
  };
  const take = (): Buffer => {
    const full = (out as Buffer).subarray(0, used);
    out = undefined;
    used = 0;
    return full;
  };
  const crcOf = (index: number): number => {
    const entry = layout.entries[index] as LayoutEntry;
    if (entry.kind !== "file" || entry.size === 0) return 0;
    const crc = crcs.get(index);
    if (crc === undefined) throw new Error(`CRC of entry ${index} unknown`);
    return crc;
  };

  const watch = opts.idleTimeoutMs ? new StoreWatch(opts.idleTimeoutMs) : undefined;
  /** A classic entry's data, read whole before its header to learn its CRC; sent next. */
  let early: { index: number; body: Buffer } | undefined;

  try {
    for (const seg of segments(layout, start, end)) {
      if (seg.kind === "local" && !crcs.has(seg.index)) {
        const e = layout.entries[seg.index] as LayoutEntry;
        if (e.classic && e.size > 0) {
          // About to wait for the store: what is gathered goes out first, as for data below.
          if (used > 0 && !reader.ready()) yield take();
          // Its CRC goes into the header: read the (small) object whole first. Its data is all
          // in the range, or crcsNeeded would have had the CRC looked up before.
          const body = await wholeBody(await reader.next(), e, watch);
          const crc = crc32(body, 0);
          crcs.set(seg.index, crc);
          opts.onCrc?.(seg.index, crc);
          early = { index: seg.index, body };
        }
      }
      if (seg.kind === "data") {
        const e = layout.entries[seg.index] as LayoutEntry;
        const complete = seg.start === e.dataOffset && seg.end === e.dataOffset + e.size;
        // Every object sent whole has its CRC computed: one nobody knew goes into the
        // descriptor and the central directory; one already known (recorded, from the store)
        // must match the bytes actually sent, or the archive is cut (a file rewritten in
        // place with its mtime put back keeps its identity, not its bytes).
        const expected = seg.end - seg.start;
        // About to wait for the store: what is gathered goes out now, not when a batch fills
        // (the first byte of an archive of small objects waited for 250 of them).
        if (early?.index !== seg.index && used > 0 && !reader.ready()) yield take();
        const body = early?.index === seg.index ? early.body : await reader.next();
        early = undefined;
        // A body proven to carry the very bytes whose CRC is expected needs no hashing.
        const version = complete ? versionOf(body) : undefined;
        const expectedCrc = crcs.get(seg.index);
        const proven = version !== undefined && expectedCrc !== undefined && opts.verified?.get(version) === expectedCrc;
        const whole = complete && !proven;
        let crc = 0;
        let got = 0;
        // A small object comes as one Buffer: taken as it is, without an async iterator.
        const stream = Buffer.isBuffer(body) ? undefined : (body[Symbol.asyncIterator]() as AsyncIterator<Buffer>);
        let single = Buffer.isBuffer(body) ? body : undefined;
        for (;;) {
          let chunk: Buffer;
          if (stream) {
            const step = await nextChunk(stream, body as Readable, watch);
            if (step.done) break;
            chunk = step.value;
          } else if (single) {
            chunk = single;
            single = undefined;
          } else {
            break;
          }
          got += chunk.length;
          if (got > expected) throw new ObjectChanged(e.name);
          if (whole) crc = crc32(chunk, crc);
          if (chunk.length >= COPY_BELOW) {
            if (used > 0) yield take();
            yield chunk;
            continue;
          }
          let from = 0;
          while (from < chunk.length) {
            const n = Math.min(chunk.length - from, BATCH - used);
            chunk.copy(room(), used, from, from + n);
            used += n;
            from += n;
            if (used === BATCH) yield take();
          }
        }
        if (got !== expected) throw new ObjectChanged(e.name);
        if (whole) {
          const known = crcs.get(seg.index);
          if (known !== undefined && known !== crc && expected > 0) throw new ObjectChanged(e.name);
          if (known === undefined) {
            crcs.set(seg.index, crc);
            opts.onCrc?.(seg.index, crc);
          }
          if (version !== undefined) opts.verified?.set(version, crc);
        }
        if (complete) opts.onEntryDone?.(seg.index);
        continue;
      }

      // Header bytes: written in place when the whole record is in the range and fits.
      const crc = seg.kind === "descriptor" || seg.kind === "central" || (seg.kind === "local" && layout.entries[seg.index]?.classic) ? crcOf(seg.index) : 0;
      const [at, length] = recordBounds(layout, seg);
      const part = seg.end - seg.start;
      if (part === length && length <= BATCH) {
        if (used + length > BATCH) yield take();
        writeRecord(layout, seg, crc, room(), used);
        used += length;
      } else {
        // Cut by the range, or too long for a batch (a name near 64 KiB): made on its own.
        const whole = Buffer.allocUnsafe(length);
        writeRecord(layout, seg, crc, whole, 0);
        const piece = whole.subarray(seg.start - at, seg.end - at);
        if (used > 0 && used + piece.length > BATCH) yield take();
        if (piece.length > BATCH) {
          yield piece;
        } else {
          piece.copy(room(), used);
          used += piece.length;
        }
      }
      if (used === BATCH) yield take();
    }
    if (used > 0) yield take();
  } finally {
    watch?.stop();
    // A batch never handed on goes back to the pool.
    if (out) batchBuffers.release(out);
    // Objects opened ahead and never taken (a failure, a client gone) give back their share.
    reader.close();
  }
}

/** An object's bytes as one Buffer (it is small): exactly its size, or ObjectChanged. */
async function wholeBody(body: ObjectBody, entry: LayoutEntry, watch: StoreWatch | undefined): Promise<Buffer> {
  if (Buffer.isBuffer(body)) {
    if (body.length !== entry.size) throw new ObjectChanged(entry.name);
    return body;
  }
  const chunks: Buffer[] = [];
  let got = 0;
  const stream = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  for (;;) {
    const step = await nextChunk(stream, body, watch);
    if (step.done) break;
    got += step.value.length;
    if (got > entry.size) throw new ObjectChanged(entry.name);
    chunks.push(step.value);
  }
  if (got !== entry.size) throw new ObjectChanged(entry.name);
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, got);
}

/**
 * The store's silences inside an object: one timer per archive, not a timer and a promise
 * race per chunk (measurable at thousands of chunks a second). `during` watches one wait for
 * a body's next chunk; a wait longer than `ms` destroys the body with StorageTimeout and
 * rejects the wait (a body whose destroy waits for its own pending read, as a generator's
 * does, must not hold it). The timer, once armed, is re-armed only for what is left of a
 * wait in progress, so a steady stream costs about one timer per `ms`.
 */
export class StoreWatch {
  #body: Readable | undefined;
  #reject: ((err: Error) => void) | undefined;
  #since = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly ms: number) {}

  during<T>(step: Promise<T>, body: Readable): Promise<T> {
    this.#body = body;
    this.#since = performance.now();
    if (this.#timer === undefined) this.#arm(this.ms);
    return new Promise<T>((resolve, reject) => {
      this.#reject = reject;
      step.then(
        (value) => {
          this.#done();
          resolve(value);
        },
        (err: unknown) => {
          this.#done();
          reject(err);
        },
      );
    });
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#done();
  }

  #done(): void {
    this.#body = undefined;
    this.#reject = undefined;
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(() => this.#check(), ms);
  }

  #check(): void {
    this.#timer = undefined;
    const body = this.#body;
    const reject = this.#reject;
    if (body === undefined || reject === undefined) return;
    const waited = performance.now() - this.#since;
    if (waited < this.ms) {
      this.#arm(this.ms - waited);
      return;
    }
    this.#done();
    const err = new StorageTimeout(`the store sent nothing for ${this.ms / 1000} s in the middle of an object`);
    body.destroy(err);
    reject(err);
  }
}

/** The next chunk of `body`, its wait watched when there is a watch. */
export function nextChunk(stream: AsyncIterator<Buffer>, body: Readable, watch: StoreWatch | undefined): Promise<IteratorResult<Buffer>> {
  return watch === undefined ? stream.next() : watch.during(stream.next(), body);
}

type HeaderSegment = Exclude<Segment, { kind: "data" }>;

/** Archive offset and length of the whole record a header segment is part of. */
function recordBounds(layout: Layout, seg: HeaderSegment): [at: number, length: number] {
  if (seg.kind === "end") return [layout.endOffset, layout.endLength];
  const e = layout.entries[seg.index] as LayoutEntry;
  if (seg.kind === "local") return [e.offset, e.localLength];
  if (seg.kind === "descriptor") return [e.dataOffset + e.size, e.descriptorLength];
  return [e.centralOffset, e.centralLength];
}

/** Writes the whole record a header segment is part of into `buf` at `to`. */
function writeRecord(layout: Layout, seg: HeaderSegment, crc: number, buf: Buffer, to: number): void {
  if (seg.kind === "end") {
    endRecords(layout).copy(buf, to);
    return;
  }
  const e = layout.entries[seg.index] as LayoutEntry;
  if (seg.kind === "local") writeLocalHeader(e, buf, to, crc);
  else if (seg.kind === "descriptor") writeDataDescriptor(e, crc, buf, to);
  else writeCentralRecord(e, crc, buf, to);
}

/** CRCs by entry index: two flat arrays, not a Map of 100,000 entries. */
class CrcTable {
  readonly #values: Uint32Array;
  readonly #known: Uint8Array;

  constructor(size: number) {
    this.#values = new Uint32Array(size);
    this.#known = new Uint8Array(size);
  }

  has(index: number): boolean {
    return this.#known[index] === 1;
  }

  get(index: number): number | undefined {
    return this.#known[index] === 1 ? this.#values[index] : undefined;
  }

  set(index: number, crc: number): void {
    this.#values[index] = crc;
    this.#known[index] = 1;
  }
}

/**
 * Opens the objects of the data segments in order, `depth` ahead; more of them while they
 * are small (a batch of small reads costs about what one does, on every store).
 */
class ReadAhead {
  readonly #pending: Array<Promise<ObjectBody>> = [];
  /** Pending reads that have settled. */
  readonly #opened = new WeakSet<Promise<ObjectBody>>();
  /** Bytes of each pending object, and their sum. */
  readonly #sizes: number[] = [];
  #aheadBytes = 0;
  #current: Readable | undefined;
  #closed = false;
  #exhausted = false;
  /** Whether the first object opened has answered: until then only `depth` are opened. */
  #answered = false;

  constructor(
    private readonly read: EntryReader,
    private readonly segs: Iterator<{ index: number; start: number; end: number }>,
    private readonly layout: Layout,
    private readonly depth: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    // Every object opened ahead may listen on the signal (an S3 request, a file stream):
    // that many listeners are expected, not a leak worth Node's warning.
    if (signal) {
      setMaxListeners(Math.max(getMaxListeners(signal), depth * SMALL_AHEAD_FACTOR + 10), signal);
      // A download that ends before its bytes are ever asked for (its client gone while the
      // first object opened) still gives back what it opened ahead.
      signal.addEventListener("abort", () => this.close(), { once: true });
    }
  }

  #fill(): void {
    while (!this.#closed && !this.#exhausted && this.#wantsMore()) {
      const next = this.segs.next();
      if (next.done) {
        this.#exhausted = true;
        return;
      }
      const seg = next.value;
      const entry = this.layout.entries[seg.index] as LayoutEntry;
      const range =
        seg.start === entry.dataOffset && seg.end === entry.dataOffset + entry.size
          ? undefined
          : { start: seg.start - entry.dataOffset, end: seg.end - entry.dataOffset };
      const opened = this.read(seg.index, range, this.signal).then((body) => {
        if (!Buffer.isBuffer(body)) {
          // A body waiting its turn may fail (an abort, a reset) before anyone reads it;
          // its error then reaches the reader through the iterator, never as an uncaught event.
          body.on("error", () => {});
          // A body opened after close() would never be consumed.
          if (this.#closed) body.destroy();
        }
        return body;
      });
      opened.then(
        () => {
          this.#answered = true;
          this.#opened.add(opened);
        },
        () => this.#opened.add(opened), // awaited later; avoid an unhandled rejection meanwhile
      );
      this.#pending.push(opened);
      this.#sizes.push(seg.end - seg.start);
      this.#aheadBytes += seg.end - seg.start;
      allAheadBytes += held(seg.end - seg.start);
    }
  }

  #wantsMore(): boolean {
    const n = this.#pending.length;
    if (n > 0 && allAheadBytes >= ALL_AHEAD_BYTES) return false;
    // Small objects are opened further ahead once the store has answered a first one: a store
    // of limited capacity given hundreds of requests at once answers the first (the first byte
    // of the download) only with the last of them.
    return n < this.depth || (this.#answered && n < this.depth * SMALL_AHEAD_FACTOR && this.#aheadBytes < SMALL_AHEAD_BYTES);
  }

  /** Whether the next object is open already (taking it would not wait for the store). */
  ready(): boolean {
    const next = this.#pending[0];
    return next !== undefined && this.#opened.has(next);
  }

  /** Waits for the next object to be open, without taking it. */
  async peek(): Promise<void> {
    this.#fill();
    await this.#pending[0];
  }

  async next(): Promise<ObjectBody> {
    this.#fill();
    const opened = this.#pending.shift();
    if (!opened) throw new Error("no more objects to read");
    const size = this.#sizes.shift() as number;
    this.#aheadBytes -= size;
    allAheadBytes -= held(size);
    this.#fill();
    const body = await opened;
    this.#current = Buffer.isBuffer(body) ? undefined : body;
    return body;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#current?.destroy();
    for (const size of this.#sizes.splice(0)) allAheadBytes -= held(size);
    this.#aheadBytes = 0;
    for (const p of this.#pending.splice(0))
      p.then(
        (body) => {
          if (!Buffer.isBuffer(body)) body.destroy();
        },
        () => {},
      );
  }
}
