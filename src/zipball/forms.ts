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

/**
 * How much a creation may read to learn the CRCs nobody knows, so that its archive is classic
 * from the first download: at most `bytes` of objects, for at most `ms`; past either, the
 * entries left keep the descriptor form.
 */
export interface CrcBudget {
  bytes: number;
  ms: number;
}

export interface FormOptions {
  objectCrcs: ObjectCrcIndex;
  /**
   * What may be read at creation to learn unknown CRCs: a budget, everything (`prepare: true`),
   * or nothing (`prepare: false`).
   */
  budget: CrcBudget | "all" | "none";
  /** Objects read at once. */
  prepareConcurrency: number;
  /** The CRC of an entry's object whole, with its pinned identity (on the store's side where it can). */
  crcOf(entry: PinnedEntry, signal: AbortSignal): Promise<number>;
  logger: Logger;
  signal?: AbortSignal | undefined;
  /**
   * Takes one of the process's download slots for the reads (they read objects as a download
   * does); throws (503) when none is free. None: the reads take no slot.
   */
  admit?: (() => { release(): void }) | undefined;
}

/** Why a file entry has the descriptor form (the create responses count them by these). */
export type DescriptorReason = "over_byte_budget" | "over_time_budget" | "not_prepared" | "read_failed" | "deflated_large" | "unknown_length" | "gateway_busy";

/** How many file entries have each form, and why the descriptor ones have it. */
export interface FormSummary {
  classic: number;
  descriptor: number;
  reasons: Partial<Record<DescriptorReason, number>>;
}

/**
 * Decides each file's form at creation, pinned with the entry (and so covered by the
 * manifest's digest): classic when its CRC will be known before its local header goes out —
 * given by the caller, kept by the store, recorded from an earlier read of the same object
 * version, learnt now within the budget, or learnt from the object itself while it is small —
 * and the descriptor form otherwise. Fills in `crc32` where it becomes known, and says why
 * each descriptor entry is one.
 */
export async function pinForms(entries: PinnedEntry[], items: readonly RequestedItem[], opts: FormOptions): Promise<FormSummary> {
  // An origin that gives no length makes the archive go out streamed: forms decided as it goes.
  if (entries.some((e) => e.unknownSize)) return streamedForms(entries, CLASSIC_MAX_BYTES);
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
  // Small files too: a CRC pinned now is one every download of it neither computes nor records.
  const unknown = entries.filter((e) => e.kind === "file" && e.size > 0 && e.crc32 === undefined && e.key !== undefined && e.etag !== undefined);
  if (unknown.length > 0) {
    const recorded = await opts.objectCrcs
      .lookup(
        unknown.map((e) => ({ key: e.key as string, etag: e.etag as string })),
        opts.signal,
      )
      .catch((err: unknown) => {
        // Only the form depends on it: a store that cannot answer leaves the CRCs to learn.
        if (opts.signal?.aborted) throw err;
        opts.logger.warn("could not read recorded object CRCs", describeError(err));
        return [];
      });
    unknown.forEach((e, i) => {
      const crc = recorded[i];
      if (crc !== undefined) e.crc32 = crc;
    });
  }
  const reasons = await learnCrcs(entries, opts);
  const summary: FormSummary = { classic: 0, descriptor: 0, reasons: {} };
  for (const [i, e] of entries.entries()) {
    if (e.kind !== "file") continue;
    if (e.crc32 !== undefined || e.size <= CLASSIC_MAX_BYTES) {
      e.form = "classic";
      summary.classic++;
    } else {
      summary.descriptor++;
      const why = reasons.get(i) ?? "not_prepared";
      summary.reasons[why] = (summary.reasons[why] ?? 0) + 1;
    }
  }
  return summary;
}

/**
 * The forms of an archive written as it streams (deflate mode, or an origin without a length):
 * an entry whose bytes are known to be at most `inlineMax` is read whole (and deflated) before
 * its header, so it is classic; larger ones, and those of unknown length that turn out larger,
 * get a descriptor.
 */
export function streamedForms(entries: readonly PinnedEntry[], inlineMax: number): FormSummary {
  const summary: FormSummary = { classic: 0, descriptor: 0, reasons: {} };
  for (const e of entries) {
    if (e.kind !== "file") continue;
    if (!e.unknownSize && e.size <= inlineMax) {
      summary.classic++;
      continue;
    }
    summary.descriptor++;
    const why: DescriptorReason = e.unknownSize ? "unknown_length" : "deflated_large";
    summary.reasons[why] = (summary.reasons[why] ?? 0) + 1;
  }
  return summary;
}

/**
 * Reads the objects over the small size whose CRC is still unknown, smallest first (the most
 * entries made classic for the bytes read), within the budget, and records what it learns.
 * Resolves with why each entry left unknown stays so.
 */
async function learnCrcs(entries: PinnedEntry[], opts: FormOptions): Promise<Map<number, DescriptorReason>> {
  const reasons = new Map<number, DescriptorReason>();
  const todo = [...entries.entries()].filter(([, e]) => e.kind === "file" && e.crc32 === undefined && e.size > CLASSIC_MAX_BYTES);
  if (todo.length === 0 || opts.budget === "none") return reasons;
  const budget = opts.budget === "all" ? { bytes: Number.POSITIVE_INFINITY, ms: 0 } : opts.budget;
  // One read per object version, however many entries name it: its bytes count once.
  const byObject = new Map<string, Array<[number, PinnedEntry]>>();
  for (const t of todo) {
    const e = t[1];
    const id = `${e.url ?? `/${e.key ?? ""}`}\0${e.etag ?? ""}\0${e.size}`;
    const same = byObject.get(id);
    if (same) same.push(t);
    else byObject.set(id, [t]);
  }
  const objects = [...byObject.values()].sort((a, b) => (a[0] as [number, PinnedEntry])[1].size - (b[0] as [number, PinnedEntry])[1].size);
  let bytes = 0;
  const chosen: Array<Array<[number, PinnedEntry]>> = [];
  for (const group of objects) {
    const size = (group[0] as [number, PinnedEntry])[1].size;
    if (bytes + size > budget.bytes) for (const [i] of group) reasons.set(i, "over_byte_budget");
    else {
      bytes += size;
      chosen.push(group);
    }
  }
  if (chosen.length === 0) return reasons;
  // The reads hold a download slot, like the download they stand in for.
  let slot: { release(): void } | undefined;
  try {
    slot = opts.admit?.();
  } catch (err) {
    if (opts.budget === "all") throw err;
    for (const group of chosen) for (const [i] of group) reasons.set(i, "gateway_busy");
    return reasons;
  }
  // The deadline stops the reads still running; the request's own signal stops everything.
  const deadline = budget.ms > 0 ? AbortSignal.timeout(budget.ms) : undefined;
  const signal = AbortSignal.any([...(opts.signal ? [opts.signal] : []), ...(deadline ? [deadline] : [])]);
  const facts: Array<ObjectRef & { crc: number }> = [];
  const mark = (group: Array<[number, PinnedEntry]>, why: DescriptorReason): void => {
    for (const [i] of group) reasons.set(i, why);
  };
  try {
    await mapLimit(chosen, opts.prepareConcurrency, async (group) => {
      const e = (group[0] as [number, PinnedEntry])[1];
      if (deadline?.aborted) return mark(group, "over_time_budget");
      try {
        const crc = await opts.crcOf(e, signal);
        for (const [, same] of group) same.crc32 = crc;
        if (e.key !== undefined && e.etag !== undefined) facts.push({ key: e.key, etag: e.etag, crc });
      } catch (err) {
        if (opts.signal?.aborted) throw err;
        if (deadline?.aborted) return mark(group, "over_time_budget");
        // Gone or changed since it was listed: the creation's answer, as for any missing object.
        if (opts.budget === "all" || (err instanceof GatewayError && err.status < 500)) throw err;
        // The store failing a read only costs the form.
        opts.logger.warn("could not read an object to learn its CRC", describeError(err));
        mark(group, "read_failed");
      }
    });
  } finally {
    slot?.release();
  }
  opts.signal?.throwIfAborted();
  await opts.objectCrcs.record(facts).catch((err: unknown) => opts.logger.warn("could not record CRCs", describeError(err)));
  return reasons;
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

const REASON_WORDS: Record<DescriptorReason, string> = {
  over_byte_budget: "past the bytes a creation reads to learn CRCs (ZIPGATE_PREPARE_BYTES)",
  over_time_budget: "past the time a creation reads to learn CRCs (ZIPGATE_PREPARE_MS)",
  not_prepared: '"prepare": false asked for no reads at creation',
  read_failed: "the store failed a read at creation",
  deflated_large: "deflated and larger than ZIPGATE_DEFLATE_INLINE",
  unknown_length: "from a URL that gives no length",
  gateway_busy: "every download slot of this gateway (ZIPGATE_MAX_DOWNLOADS) was taken, and the reads at creation take one",
};

/**
 * The forms of an archive's files as the API responses give them (snake_case, the same in
 * every flavour): counts, and for descriptor entries the reasons, with a sentence that says
 * what it means for readers.
 */
export function formsView(summary: FormSummary): Record<string, unknown> {
  const view: Record<string, unknown> = { classic: summary.classic, descriptor: summary.descriptor };
  if (summary.descriptor === 0) return view;
  view.descriptor_reasons = summary.reasons;
  const why = Object.entries(summary.reasons)
    .map(([reason, n]) => `${n} ${REASON_WORDS[reason as DescriptorReason]}`)
    .join("; ");
  view.notice =
    `${summary.descriptor} of ${summary.classic + summary.descriptor} files go out with a data descriptor (${why}); ` +
    "streaming readers such as Java's ZipInputStream or busybox unzip cannot read such stored entries from a pipe. " +
    'Send "prepare": true to read them all at creation.';
  return view;
}
