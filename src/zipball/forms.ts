import { CLASSIC_INLINE_MAX } from "../archive/stream.js";
import { GatewayError } from "../errors.js";
import { describeError, type Logger } from "../log.js";
import type { PinnedEntry, RequestedItem } from "../manifest/schema.js";
import { chunksOf, type ObjectBody } from "../storage/types.js";
import { giveBack } from "../util/buffer-pool.js";
import { mapLimit } from "../util/concurrency.js";
import { crc32 } from "../util/crc32.js";
import type { ObjectCrcIndex, ObjectRef } from "./object-crcs.js";

/**
 * Objects up to this size get the classic form even when their CRC is not known at creation:
 * a download reads them whole before their local header (the folder store reads them whole
 * anyway). See the README for the measurements behind it.
 */
export const CLASSIC_MAX_BYTES = CLASSIC_INLINE_MAX;

export interface FormOptions {
  objectCrcs: ObjectCrcIndex;
  /** Read the objects whose CRC is still unknown, so that every entry is classic. */
  prepare: boolean;
  /** Objects read at once by `prepare`. */
  prepareConcurrency: number;
  /** Opens an entry's object whole, with its pinned identity. */
  open(entry: PinnedEntry, signal: AbortSignal | undefined): Promise<ObjectBody>;
  logger: Logger;
  signal?: AbortSignal | undefined;
}

/**
 * Decides each file's form at creation, pinned with the entry (and so covered by the
 * manifest's digest): classic when its CRC will be known before its local header goes out —
 * given by the caller, kept by the store, recorded from an earlier read of the same object
 * version, computed now with `prepare`, or learnt from the object itself while it is small —
 * and the descriptor form otherwise. Fills in `crc32` where it becomes known.
 */
export async function pinForms(entries: PinnedEntry[], items: readonly RequestedItem[], opts: FormOptions): Promise<void> {
  // An origin that gives no length makes the archive go out through zip-stream: no layout, no forms.
  if (entries.some((e) => e.unknownSize)) return;
  for (const e of entries) {
    const item = items[e.item];
    if (e.kind !== "file" || item === undefined || item.type === "folder" || item.crc32 === undefined) continue;
    if (e.crc32 !== undefined && e.crc32 !== item.crc32) {
      throw new GatewayError(400, "crc32_mismatch", `objects[${e.item}].crc32 is not the CRC32 the store keeps for it`, {
        details: { index: e.item, field: "crc32" },
      });
    }
    e.crc32 = item.crc32;
  }
  const unknown = entries.filter((e) => e.kind === "file" && e.size > 0 && e.crc32 === undefined && e.key !== undefined && e.etag !== undefined);
  if (unknown.length > 0) {
    const recorded = await opts.objectCrcs
      .lookup(
        unknown.map((e) => ({ key: e.key as string, etag: e.etag as string })),
        opts.signal,
      )
      .catch((err: unknown) => {
        // Only the form depends on it: a store that cannot answer leaves the descriptor form.
        if (opts.signal?.aborted) throw err;
        opts.logger.warn("could not read recorded object CRCs", describeError(err));
        return [];
      });
    unknown.forEach((e, i) => {
      const crc = recorded[i];
      if (crc !== undefined) e.crc32 = crc;
    });
  }
  if (opts.prepare) await prepareCrcs(entries, opts);
  for (const e of entries) if (e.kind === "file" && (e.crc32 !== undefined || e.size <= CLASSIC_MAX_BYTES)) e.form = "classic";
}

/** `prepare`: reads every object over the small size whose CRC is still unknown, and records what it learns. */
async function prepareCrcs(entries: PinnedEntry[], opts: FormOptions): Promise<void> {
  const todo = entries.filter((e) => e.kind === "file" && e.crc32 === undefined && e.size > CLASSIC_MAX_BYTES);
  const facts: Array<ObjectRef & { crc: number }> = [];
  await mapLimit(
    todo,
    opts.prepareConcurrency,
    async (e) => {
      const crc = await crcOfBody(await opts.open(e, opts.signal), e, "while it was read");
      e.crc32 = crc;
      if (e.key !== undefined && e.etag !== undefined) facts.push({ key: e.key, etag: e.etag, crc });
    },
    opts.signal,
  );
  await opts.objectCrcs.record(facts).catch((err: unknown) => opts.logger.warn("could not record CRCs", describeError(err)));
}

/** The CRC32 of an object's whole body, which must have the entry's size (else `object_changed`). */
export async function crcOfBody(body: ObjectBody, entry: Pick<PinnedEntry, "size" | "name">, since: string): Promise<number> {
  let crc = 0;
  let size = 0;
  for await (const chunk of chunksOf(body)) {
    crc = crc32(chunk, crc);
    size += chunk.length;
    // Nothing else reads it: a pooled read buffer can be filled again (fresh ones cost page zeroing).
    giveBack(chunk);
  }
  if (size !== entry.size) throw new GatewayError(409, "object_changed", `object changed ${since}: ${entry.name}`);
  return crc;
}
