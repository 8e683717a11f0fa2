import { PassThrough, type Readable, Transform } from "node:stream";
import { GatewayError, ObjectChanged } from "../errors.js";
import { timestampExtra } from "./layout.js";
import type { EntryReader } from "./stream.js";

/** Unix modes, as the stored archives' central records give them (layout.ts). */
const MODE_FILE = 0o100644;
const MODE_DIR = 0o040755;

export interface DeflateEntry {
  name: string;
  kind: "file" | "dir";
  mtimeMs: number;
  /** Bytes the object had at creation: it must deliver exactly these. */
  size: number;
  /** An origin that gave no length: its bytes count against `maxBytes` as they come. */
  unknownSize?: boolean | undefined;
}

/**
 * Archives written by zip-stream, whose length is not known in advance, so
 * they are served chunked, without Range: the opt-in `deflate` mode, and
 * stored archives holding a URL whose origin gives no length (`store`).
 * Objects are read one after another; an error destroys the output, so the
 * client sees a failed transfer rather than a short archive.
 */
export function streamedArchive(
  entries: readonly DeflateEntry[],
  read: EntryReader,
  signal: AbortSignal,
  options: { store: boolean; maxBytes: number },
): Readable {
  const out = new PassThrough({ highWaterMark: 256 * 1024 });
  let current: Readable | undefined;
  /** Bytes read from all objects so far: the archive's limit holds here too. */
  let total = 0;
  const overBudget = (): GatewayError =>
    new GatewayError(400, "too_many_bytes", `the archive would hold more than ${options.maxBytes} bytes`, { details: { limit: options.maxBytes } });
  const onAbort = (): void => {
    current?.destroy();
    out.destroy(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
  };
  signal.addEventListener("abort", onAbort, { once: true });

  (async () => {
    // Loaded on first use: most archives are laid out by layout.ts and never need it.
    const { default: ZipStream } = await import("zip-stream");
    /** The exact mtime of the entry being added, for its extended-timestamp extra. */
    let mtimeMs = 0;
    // zip-stream takes no extra field through entry(); every entry gets the same
    // extended-timestamp extra as in stored archives, so times are the same in both modes.
    // (zip-stream replaces the central one of a zip64 entry with its zip64 extra.)
    class TimedZipStream extends ZipStream {
      _normalizeEntry(ae: { setExtra(extra: Buffer): void }): void {
        (ZipStream.prototype as unknown as { _normalizeEntry(ae: unknown): void })._normalizeEntry.call(this, ae);
        ae.setExtra(timestampExtra(mtimeMs));
      }
    }
    const zip = new TimedZipStream({ zlib: { level: 6 }, store: options.store });
    zip.on("error", (err: Error) => out.destroy(err));
    zip.pipe(out);
    // A Unix mode makes "version made by" Unix: with MS-DOS (zip-stream's default), Info-ZIP
    // on Debian converts UTF-8 names from a DOS code page despite the UTF-8 flag. An empty
    // file goes in stored, from a Buffer: its CRC and sizes in the local header, no
    // descriptor (Java's ZipInputStream stops at a stored entry with one).
    const add = (source: Readable | Buffer | null, entry: DeflateEntry): Promise<void> =>
      new Promise((resolve, reject) => {
        const dir = entry.kind === "dir";
        const empty = Buffer.isBuffer(source) && source.length === 0;
        mtimeMs = entry.mtimeMs;
        zip.entry(
          source,
          {
            name: entry.name,
            date: new Date(entry.mtimeMs),
            type: dir ? "directory" : "file",
            mode: dir ? MODE_DIR : MODE_FILE,
            store: options.store || empty,
          },
          (err) => (err ? reject(err) : resolve()),
        );
      });
    for (const [index, entry] of entries.entries()) {
      if (entry.kind === "dir") {
        await add(null, entry);
        continue;
      }
      const body = await read(index, undefined, signal);
      if (Buffer.isBuffer(body)) {
        total += body.length;
        if (!entry.unknownSize && body.length !== entry.size) throw new ObjectChanged(entry.name);
        if (total > options.maxBytes) throw overBudget();
        await add(body, entry);
        continue;
      }
      if (!entry.unknownSize && entry.size === 0) {
        // An empty object that came as a stream: it must deliver nothing, and goes in as a Buffer.
        for await (const chunk of body as AsyncIterable<Buffer>) if (chunk.length > 0) throw new ObjectChanged(entry.name);
        await add(Buffer.alloc(0), entry);
        continue;
      }
      current = body;
      // Every object delivers the bytes it declared, no more and no fewer; one without a
      // declared length counts against the archive's byte limit as it streams.
      let got = 0;
      const counted = new Transform({
        transform(chunk: Buffer, _enc, done) {
          got += chunk.length;
          total += chunk.length;
          if (!entry.unknownSize && got > entry.size) return done(new ObjectChanged(entry.name));
          if (total > options.maxBytes) return done(overBudget());
          done(null, chunk);
        },
        flush(done) {
          done(!entry.unknownSize && got !== entry.size ? new ObjectChanged(entry.name) : null);
        },
      });
      // zip-stream does not see errors of its source; forward them.
      const failed = new Promise<never>((_, reject) => {
        body.once("error", (err) => {
          counted.destroy(err);
          reject(err);
        });
        counted.once("error", reject);
      });
      failed.catch(() => {});
      body.pipe(counted);
      await Promise.race([add(counted, entry), failed]);
      current = undefined;
    }
    zip.finalize();
  })()
    .catch((err: unknown) => {
      current?.destroy();
      out.destroy(err instanceof Error ? err : new Error(String(err)));
    })
    .finally(() => signal.removeEventListener("abort", onAbort));
  return out;
}
