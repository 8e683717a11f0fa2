import { Readable } from "node:stream";
import { promisify } from "node:util";
import { createDeflateRaw, deflateRaw } from "node:zlib";
import { GatewayError, ObjectChanged } from "../errors.js";
import { crc32 } from "../util/crc32.js";
import { endRecords, endShape, type LayoutEntry, streamedEntry, writeCentralRecord, writeDataDescriptor, writeLocalHeader } from "./layout.js";
import { type EntryReader, nextChunk, StoreWatch } from "./stream.js";

const deflateRawAsync = promisify(deflateRaw);

const MAX_32 = 0xffffffff;
/** zlib's level: the usual balance (Info-ZIP's and zip-stream's default). */
const LEVEL = 6;
/** Output gathered into pieces of about this size before it is handed on. */
const OUT_PIECE = 256 * 1024;

export interface DeflateEntry {
  name: string;
  kind: "file" | "dir";
  mtimeMs: number;
  /** Bytes the object had at creation: it must deliver exactly these. */
  size: number;
  /** An origin that gave no length: its bytes count against `maxBytes` as they come. */
  unknownSize?: boolean | undefined;
}

export interface StreamedOptions {
  /** Store the data as it is (an archive holding a URL without a length) instead of deflating it. */
  store: boolean;
  /** Most bytes of all objects together. */
  maxBytes: number;
  /**
   * An entry whose data is at most this many bytes is read whole first: deflated in memory
   * (off the main thread, on zlib's pool) and written in the classic form, CRC and sizes in
   * its local header, no descriptor. Larger ones stream with a data descriptor.
   */
  inlineMax: number;
  /**
   * Longest wait for an object's next chunk, in ms, as for stored archives: a store or an
   * origin that falls silent mid-object fails the archive (StorageTimeout). @default no limit
   */
  idleTimeoutMs?: number | undefined;
}

/**
 * Archives whose length is not known in advance, served chunked, without Range: the opt-in
 * `deflate` mode, and stored archives holding a URL whose origin gives no length. Objects are
 * read one after another and written as they come, laid out by layout.ts's record writers
 * (the same rules as stored archives: zip64 only where a value needs it, version needed as
 * the entry needs, Unix modes, UTF-8 flag for non-ASCII names). An empty file is stored,
 * classic. An error destroys the output, so the client sees a failed transfer rather than
 * a short archive.
 *
 * Limit: an entry of unknown length, or deflated into 4 GiB or more from a smaller object,
 * has no zip64 extra in its local header (nothing told it would need one), so it cannot get
 * an 8-byte descriptor; rather than a descriptor readers would misread, the archive fails.
 */
export function streamedArchive(entries: readonly DeflateEntry[], read: EntryReader, signal: AbortSignal, options: StreamedOptions): Readable {
  const out = Readable.from(writeArchive(entries, read, signal, options), { objectMode: false, highWaterMark: OUT_PIECE });
  const onAbort = (): void => {
    out.destroy(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  out.once("close", () => signal.removeEventListener("abort", onAbort));
  return out;
}

async function* writeArchive(entries: readonly DeflateEntry[], read: EntryReader, signal: AbortSignal, options: StreamedOptions): AsyncGenerator<Buffer> {
  const watch = options.idleTimeoutMs ? new StoreWatch(options.idleTimeoutMs) : undefined;
  try {
    yield* writeEntries(entries, read, signal, options, watch);
  } finally {
    watch?.stop();
  }
}

async function* writeEntries(
  entries: readonly DeflateEntry[],
  read: EntryReader,
  signal: AbortSignal,
  options: StreamedOptions,
  watch: StoreWatch | undefined,
): AsyncGenerator<Buffer> {
  const deflate = !options.store;
  /** The central record of each entry written so far, with its CRC. */
  const done: Array<{ entry: LayoutEntry; crc: number }> = [];
  let offset = 0;
  /** Bytes read from all objects so far: the archive's limit holds here too. */
  let total = 0;
  const count = (n: number): void => {
    total += n;
    if (total > options.maxBytes) {
      throw new GatewayError(400, "too_many_bytes", `the archive would hold more than ${options.maxBytes} bytes`, { details: { limit: options.maxBytes } });
    }
  };
  const header = (entry: LayoutEntry, crc: number): Buffer => {
    const buf = Buffer.allocUnsafe(entry.localLength);
    writeLocalHeader(entry, buf, 0, crc);
    return buf;
  };

  for (const [index, e] of entries.entries()) {
    signal.throwIfAborted();
    const base = { name: e.name, kind: e.kind, mtimeMs: e.mtimeMs, offset };
    if (e.kind === "dir") {
      const entry = streamedEntry({ ...base, method: 0, size: 0, compressedSize: 0, classic: false, zip64: false });
      yield header(entry, 0);
      offset += entry.localLength;
      done.push({ entry, crc: 0 });
      continue;
    }
    const body = await read(index, undefined, signal);
    const source = Buffer.isBuffer(body) ? undefined : (body[Symbol.asyncIterator]() as AsyncIterator<Buffer>);
    try {
      // The first bytes, up to one past the inline bound: all of a small object.
      const head: Buffer[] = [];
      let headBytes = 0;
      let ended = false;
      if (Buffer.isBuffer(body)) {
        head.push(body);
        headBytes = body.length;
        ended = true;
      } else {
        while (headBytes <= options.inlineMax) {
          const step = await nextChunk(source as AsyncIterator<Buffer>, body as Readable, watch);
          if (step.done) {
            ended = true;
            break;
          }
          head.push(step.value);
          headBytes += step.value.length;
        }
      }
      count(headBytes);
      if (!e.unknownSize && (headBytes > e.size || (ended && headBytes !== e.size))) throw new ObjectChanged(e.name);

      if (ended && headBytes <= options.inlineMax) {
        // Classic: CRC and sizes known before the header. Deflated only where that saves bytes.
        const data = head.length === 1 ? (head[0] as Buffer) : Buffer.concat(head, headBytes);
        const crc = crc32(data, 0);
        let method = 0;
        let stored = data;
        if (deflate && data.length > 0) {
          const packed = await deflateRawAsync(data, { level: LEVEL });
          if (packed.length < data.length) {
            method = 8;
            stored = packed;
          }
        }
        const entry = streamedEntry({ ...base, method, size: data.length, compressedSize: stored.length, classic: true, zip64: data.length >= MAX_32 });
        yield header(entry, crc);
        if (stored.length > 0) yield stored;
        offset += entry.localLength + stored.length;
        done.push({ entry, crc });
        continue;
      }

      // Descriptor form: the header goes out before the size (deflated) or the CRC is known.
      const zip64 = !e.unknownSize && e.size >= MAX_32;
      const method = deflate ? 8 : 0;
      const local = streamedEntry({ ...base, method, size: 0, compressedSize: 0, classic: false, zip64 });
      yield header(local, 0);
      let crc = 0;
      let size = 0;
      let written = 0;
      const take = (chunk: Buffer): void => {
        size += chunk.length;
        if (!e.unknownSize && size > e.size) throw new ObjectChanged(e.name);
        crc = crc32(chunk, crc);
      };
      for (const chunk of head) take(chunk);
      const rest = async function* (): AsyncGenerator<Buffer> {
        yield* head;
        for (;;) {
          const step = await nextChunk(source as AsyncIterator<Buffer>, body as Readable, watch);
          if (step.done) return;
          count(step.value.length);
          take(step.value);
          yield step.value;
        }
      };
      if (deflate) {
        for await (const piece of deflated(rest(), signal)) {
          written += piece.length;
          yield piece;
        }
      } else {
        for await (const chunk of rest()) {
          written += chunk.length;
          yield chunk;
        }
      }
      if (!e.unknownSize && size !== e.size) throw new ObjectChanged(e.name);
      if (!zip64 && (size >= MAX_32 || written >= MAX_32)) {
        throw new GatewayError(
          500,
          "entry_too_large",
          `${e.name} passed 4 GiB in an archive written as it streams (it needs a zip64 header it cannot get now)`,
        );
      }
      const entry = streamedEntry({ ...base, method, size, compressedSize: written, classic: false, zip64 });
      const descriptor = Buffer.allocUnsafe(entry.descriptorLength);
      writeDataDescriptor(entry, crc, descriptor, 0);
      yield descriptor;
      offset += entry.localLength + written + entry.descriptorLength;
      done.push({ entry, crc });
    } finally {
      // A body left unread (an error, a client gone) is released.
      if (!Buffer.isBuffer(body)) body.destroy();
    }
  }

  // Central directory, in pieces, then the end records.
  const centralStart = offset;
  let piece: Buffer[] = [];
  let pieceBytes = 0;
  for (const { entry, crc } of done) {
    const buf = Buffer.allocUnsafe(entry.centralLength);
    writeCentralRecord(entry, crc, buf, 0);
    piece.push(buf);
    pieceBytes += buf.length;
    offset += buf.length;
    if (pieceBytes >= OUT_PIECE) {
      yield Buffer.concat(piece, pieceBytes);
      piece = [];
      pieceBytes = 0;
    }
  }
  const centralSize = offset - centralStart;
  const shape = endShape(done.length, centralStart, centralSize);
  piece.push(endRecords({ entries: done.map((d) => d.entry), ...shape, centralSize, centralStart, endOffset: offset }));
  yield Buffer.concat(piece);
}

/** Raw deflate of `chunks`, on zlib's thread pool, with its backpressure. */
async function* deflated(chunks: AsyncIterable<Buffer>, signal: AbortSignal): AsyncGenerator<Buffer> {
  const z = createDeflateRaw({ level: LEVEL });
  const feeding = (async () => {
    try {
      for await (const chunk of chunks) {
        if (!z.write(chunk)) await new Promise<void>((resolve) => z.once("drain", resolve));
      }
      z.end();
    } catch (err) {
      z.destroy(err as Error);
    }
  })();
  try {
    for await (const piece of z as AsyncIterable<Buffer>) {
      signal.throwIfAborted();
      yield piece;
    }
    await feeding;
  } finally {
    z.destroy();
  }
}
