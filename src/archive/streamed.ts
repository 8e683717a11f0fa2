import { PassThrough, type Readable } from "node:stream";
import type { EntryReader } from "./stream.js";

export interface DeflateEntry {
  name: string;
  kind: "file" | "dir";
  mtimeMs: number;
}

/**
 * Archives written by zip-stream, whose length is not known in advance, so
 * they are served chunked, without Range: the opt-in `deflate` mode, and
 * stored archives holding a URL whose origin gives no length (`store`).
 * Objects are read one after another; an error destroys the output, so the
 * client sees a failed transfer rather than a short archive.
 */
export function streamedArchive(entries: readonly DeflateEntry[], read: EntryReader, signal: AbortSignal, options: { store: boolean }): Readable {
  const out = new PassThrough({ highWaterMark: 256 * 1024 });
  let current: Readable | undefined;
  const onAbort = (): void => {
    current?.destroy();
    out.destroy(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
  };
  signal.addEventListener("abort", onAbort, { once: true });

  (async () => {
    // Loaded on first use: most archives are laid out by layout.ts and never need it.
    const { default: ZipStream } = await import("zip-stream");
    const zip = new ZipStream({ zlib: { level: 6 }, store: options.store });
    zip.on("error", (err: Error) => out.destroy(err));
    zip.pipe(out);
    const add = (source: Readable | Buffer | null, name: string, date: Date, dir: boolean): Promise<void> =>
      new Promise((resolve, reject) => {
        zip.entry(source, { name, date, type: dir ? "directory" : "file", store: options.store }, (err) => (err ? reject(err) : resolve()));
      });
    for (const [index, entry] of entries.entries()) {
      const date = new Date(entry.mtimeMs);
      if (entry.kind === "dir") {
        await add(null, entry.name, date, true);
        continue;
      }
      const body = await read(index, undefined, signal);
      if (Buffer.isBuffer(body)) {
        await add(body, entry.name, date, false);
        continue;
      }
      current = body;
      // zip-stream does not see errors of its source; forward them.
      const failed = new Promise<never>((_, reject) => body.once("error", reject));
      failed.catch(() => {});
      await Promise.race([add(body, entry.name, date, false), failed]);
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
