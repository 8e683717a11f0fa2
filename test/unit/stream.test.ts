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

function setup() {
  const list = items();
  const inputs: LayoutInput[] = list.map((it) =>
    it.data
      ? { name: it.name, kind: "file", size: it.data.length, mtimeMs: 1_700_000_000_123 }
      : { name: it.name, kind: "dir", size: 0, mtimeMs: 1_700_000_000_000 },
  );
  const layout = computeLayout(inputs);
  const crcs = list.map((it) => (it.data ? crc32(it.data) : 0));
  const parts: Buffer[] = [];
  layout.entries.forEach((e, i) => {
    parts.push(localHeader(e));
    const data = list[i]?.data;
    if (data) parts.push(data, dataDescriptor(e, crcs[i] as number));
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
});
