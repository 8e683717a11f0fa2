import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { centralRecord, computeLayout, dataDescriptor, endRecords, type LayoutInput, localHeader } from "../../src/archive/layout.js";
import { openArchiveRange } from "../../src/archive/stream.js";
import { crc32 } from "../../src/util/crc32.js";
import { collect } from "../helpers/archive.js";

// The archive stream writes headers straight into shared batch buffers and copies small
// objects in; here its output, whole and in ranges cut anywhere (inside headers too), is
// checked against an archive put together from the layout module's standalone records.

type Item = { name: string; data?: Buffer };

function items(): Item[] {
  const list: Item[] = [{ name: "top/" }];
  for (let i = 0; i < 60; i++) list.push({ name: `top/small-${i}.bin`, data: randomBytes(i % 7 === 0 ? 0 : 1 + ((i * 977) % 5000)) });
  list.push({ name: "top/mid.bin", data: randomBytes(40 * 1024) });
  list.push({ name: "top/large.bin", data: randomBytes(300 * 1024 + 17) });
  list.push({ name: "ünïcode/", data: undefined });
  list.push({ name: "ünïcode/größe.txt", data: randomBytes(333) });
  // A name this long makes records longer than a batch buffer.
  list.push({ name: `long/${"n".repeat(65_500)}`, data: randomBytes(1000) });
  for (let i = 0; i < 20; i++) list.push({ name: `tail/${i}`, data: randomBytes(64 * i) });
  return list;
}

/** Every entry in the descriptor form, or a mix: every third one classic, and those up to 2,000 bytes. */
function setup(forms: "descriptor" | "mixed" = "descriptor") {
  const list = items();
  const inputs: LayoutInput[] = list.map((it, i) =>
    it.data
      ? {
          name: it.name,
          kind: "file",
          size: it.data.length,
          mtimeMs: 1_700_000_000_123,
          form: forms === "mixed" && (i % 3 === 0 || it.data.length <= 2000) ? "classic" : "descriptor",
        }
      : { name: it.name, kind: "dir", size: 0, mtimeMs: 1_700_000_000_000 },
  );
  const layout = computeLayout(inputs);
  const crcs = list.map((it) => (it.data ? crc32(it.data) : 0));
  const parts: Buffer[] = [];
  layout.entries.forEach((e, i) => {
    parts.push(localHeader(e, crcs[i]));
    const data = list[i]?.data;
    if (data) parts.push(data);
    if (data && !e.classic) parts.push(dataDescriptor(e, crcs[i] as number));
  });
  for (const [i, e] of layout.entries.entries()) parts.push(centralRecord(e, crcs[i] as number));
  parts.push(endRecords(layout));
  const reference = Buffer.concat(parts);
  // Even entries come back as one Buffer, odd ones as a stream of 7,000-byte chunks.
  const read = async (i: number, range: { start: number; end: number } | undefined) => {
    const data = list[i]?.data as Buffer;
    const bytes = range ? data.subarray(range.start, range.end) : data;
    if (i % 2 === 0) return Buffer.from(bytes);
    const chunks: Buffer[] = [];
    for (let at = 0; at < bytes.length; at += 7000) chunks.push(Buffer.from(bytes.subarray(at, at + 7000)));
    return Readable.from(chunks);
  };
  return { layout, crcs, reference, read };
}

describe("archive stream", () => {
  it("produces the archive the layout describes, computing every CRC on the way", async () => {
    const { layout, crcs, reference, read } = setup();
    expect(reference.length).toBe(layout.total);
    const seen = new Map<number, number>();
    const body = await collect(await openArchiveRange({ layout, read, onCrc: (i, crc) => seen.set(i, crc) }));
    expect(body.equals(reference)).toBe(true);
    for (const [i, crc] of seen) expect(crc).toBe(crcs[i]);
    expect(seen.size).toBe(crcs.filter((_, i) => layout.entries[i]?.kind === "file" && (layout.entries[i]?.size ?? 0) > 0).length);
  });

  it("produces any byte range, cut inside headers, data or the central directory, as that slice of the whole", async () => {
    const { layout, crcs, reference, read } = setup();
    const knownCrcs = new Map(crcs.map((c, i) => [i, c]));
    // Cut points near every record boundary, and a few anywhere.
    const marks: number[] = [];
    for (const e of layout.entries) marks.push(e.offset, e.dataOffset, e.dataOffset + e.size, e.centralOffset);
    marks.push(layout.centralStart, layout.endOffset, layout.total);
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const point = (): number => {
      if (rand(4) === 0) return rand(layout.total + 1);
      const m = marks[rand(marks.length)] as number;
      return Math.min(layout.total, Math.max(0, m + rand(41) - 20));
    };
    for (let round = 0; round < 150; round++) {
      let start = point();
      let end = point();
      if (start > end) [start, end] = [end, start];
      if (start === end) end = Math.min(layout.total, end + 1 + rand(100));
      if (start === end) continue;
      const body = await collect(await openArchiveRange({ layout, read, start, end, knownCrcs }));
      expect({ start, end, equal: body.equals(reference.subarray(start, end)) }).toEqual({ start, end, equal: true });
    }
  });

  it("writes classic entries with their CRC in the local header, learning small ones' CRCs before their header", async () => {
    const { layout, crcs, reference, read } = setup("mixed");
    expect(layout.classicCount).toBeGreaterThan(20);
    expect(layout.entries.some((e) => e.kind === "file" && !e.classic)).toBe(true);
    const asked: number[] = [];
    // Known CRCs for the large classic entries only, as pinned at creation; small ones are learnt from their data.
    const knownCrcs = new Map(layout.entries.flatMap((e, i) => (e.classic && e.size > 2000 ? [[i, crcs[i] as number] as const] : [])));
    const lookupCrc = async (indexes: number[]) => {
      asked.push(...indexes);
      return new Map(indexes.map((i) => [i, crcs[i] as number]));
    };
    const body = await collect(await openArchiveRange({ layout, read, knownCrcs, lookupCrc }));
    expect(body.equals(reference)).toBe(true);
    expect(asked).toEqual([]);
  });

  it("produces any byte range of a mix of classic and descriptor entries, asking only for CRCs it cannot learn in the range", async () => {
    const { layout, crcs, reference, read } = setup("mixed");
    let seed = 777;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const marks: number[] = [];
    for (const e of layout.entries) marks.push(e.offset, e.dataOffset, e.dataOffset + e.size, e.centralOffset);
    const point = (): number => Math.min(layout.total, Math.max(0, (marks[rand(marks.length)] as number) + rand(41) - 20));
    for (let round = 0; round < 150; round++) {
      let start = point();
      let end = point();
      if (start > end) [start, end] = [end, start];
      if (start === end) continue;
      const asked = new Set<number>();
      const lookupCrc = async (indexes: number[]) => {
        for (const i of indexes) asked.add(i);
        return new Map(indexes.map((i) => [i, crcs[i] as number]));
      };
      const body = await collect(await openArchiveRange({ layout, read, start, end, lookupCrc, inlineCrcMax: 2000 }));
      expect({ start, end, equal: body.equals(reference.subarray(start, end)) }).toEqual({ start, end, equal: true });
      // Nothing whose data was whole in the range and small was looked up.
      for (const i of asked) {
        const e = layout.entries[i]!;
        const whole = e.dataOffset >= start && e.dataOffset + e.size <= end;
        expect(whole && e.size <= 2000, `entry ${i} looked up for ${start}-${end}`).toBe(false);
      }
    }
  });

  it("cuts a classic entry whose object holds other bytes than its CRC says", async () => {
    const { layout, crcs, read } = setup("mixed");
    const i = layout.entries.findIndex((e) => e.classic && e.size > 2000);
    const knownCrcs = new Map([[i, ((crcs[i] as number) ^ 1) >>> 0]]);
    const body = await openArchiveRange({ layout, read, knownCrcs });
    await expect(collect(body)).rejects.toThrow(/changed/);
  });

  it("sends a body whose version was verified with the expected CRC without hashing it again, and hashes any other", async () => {
    const { layout, crcs } = setup("descriptor");
    const i = layout.entries.findIndex((e) => e.size > 100_000);
    const entry = layout.entries[i];
    if (!entry) throw new Error("no large entry");
    const size = entry.size;
    // Stubbed store: bytes that are not the object's, under a version it claims was verified. Only
    // a stream that is never hashed lets them through, which is how the skip shows.
    const other = randomBytes(size);
    const versioned = (version: string, bytes: Buffer) => Object.assign(Readable.from([bytes]), { version });
    const one = computeLayout([{ name: "big.bin", kind: "file", size, mtimeMs: 1_700_000_000_000, form: "classic" }]);
    const known = new Map([[0, crcs[i] as number]]);
    const verified = new Map<string, number>([["v1", crcs[i] as number]]);
    const skipped = await collect(await openArchiveRange({ layout: one, read: async () => versioned("v1", other), knownCrcs: known, verified }));
    expect(skipped.length).toBe(one.total);
    // Another version is hashed, and its bytes do not match: cut.
    await expect(collect(await openArchiveRange({ layout: one, read: async () => versioned("v2", other), knownCrcs: known, verified }))).rejects.toThrow(
      /changed/,
    );
    // A version hashed whole is remembered with its CRC.
    const fresh = randomBytes(size);
    await collect(await openArchiveRange({ layout: one, read: async () => versioned("v3", fresh), knownCrcs: new Map([[0, crc32(fresh)]]), verified }));
    expect(verified.get("v3")).toBe(crc32(fresh));
    // A version verified with another CRC than the one expected proves nothing.
    verified.set("v4", (crc32(fresh) ^ 1) >>> 0);
    await expect(
      collect(await openArchiveRange({ layout: one, read: async () => versioned("v4", other), knownCrcs: new Map([[0, crc32(fresh)]]), verified })),
    ).rejects.toThrow(/changed/);
  });
});
