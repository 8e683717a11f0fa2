import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import ZipStream from "zip-stream";
import { centralRecord, computeLayout, crcsNeeded, dataDescriptor, endRecords, type LayoutInput, localHeader, segments } from "../../src/archive/layout.js";

const T = Date.UTC(2024, 0, 2, 3, 4, 6);
const file = (name: string, size: number, mtimeMs = T): LayoutInput => ({ name, kind: "file", size, mtimeMs });
const dir = (name: string, mtimeMs = T): LayoutInput => ({ name, kind: "dir", size: 0, mtimeMs });

/** zip-stream's archive of the same entries (store mode, from streams): the reference. */
async function zipStreamArchive(entries: Array<{ name: string; data: Buffer }>): Promise<Buffer> {
  const zip = new ZipStream({ store: true });
  const chunks: Buffer[] = [];
  zip.on("data", (c: Buffer) => chunks.push(c));
  const done = new Promise((resolve, reject) => {
    zip.on("end", resolve);
    zip.on("error", reject);
  });
  for (const e of entries) {
    await new Promise<void>((resolve, reject) =>
      zip.entry(Readable.from([e.data]), { name: e.name, date: new Date(T), store: true }, (err) => (err ? reject(err) : resolve())),
    );
  }
  zip.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Parses local headers and central records of an archive: name, sizes, crc, offset, method, flags. */
function centralDirectory(zip: Buffer) {
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const count = zip.readUInt16LE(eocd + 10);
  let at = zip.readUInt32LE(eocd + 16);
  const out = [];
  for (let i = 0; i < count; i++) {
    const n = zip.readUInt16LE(at + 28);
    const m = zip.readUInt16LE(at + 30);
    const k = zip.readUInt16LE(at + 32);
    out.push({
      name: zip.subarray(at + 46, at + 46 + n).toString(),
      method: zip.readUInt16LE(at + 10),
      crc: zip.readUInt32LE(at + 16),
      size: zip.readUInt32LE(at + 24),
      offset: zip.readUInt32LE(at + 42),
      utf8: (zip.readUInt16LE(at + 8) & 0x800) !== 0,
    });
    at += 46 + n + m + k;
  }
  return out;
}

describe("layout", () => {
  it("predicts the exact length of the empty archive", () => {
    const layout = computeLayout([]);
    expect(layout.total).toBe(22);
    expect(endRecords(layout).length).toBe(22);
  });

  it("uses the data-descriptor form for files and none for directories", () => {
    const layout = computeLayout([dir("d/"), file("d/a.txt", 5)]);
    const [d, a] = layout.entries;
    expect(d?.descriptorLength).toBe(0);
    expect(a?.descriptorLength).toBe(16);
    expect(localHeader(a!).readUInt16LE(6) & 0x8).toBe(0x8);
    expect(localHeader(d!).readUInt16LE(6) & 0x8).toBe(0);
  });

  it("sets the UTF-8 flag only for non-ASCII names", () => {
    const layout = computeLayout([file("plain.txt", 1), file("ümlaut.txt", 1)]);
    expect(layout.entries[0]?.utf8).toBe(false);
    expect(layout.entries[1]?.utf8).toBe(true);
  });

  it("agrees with zip-stream on entries, names, CRCs and data for archives without zip64", async () => {
    const { crc32 } = await import("node:zlib");
    const data = [
      { name: "a.txt", data: Buffer.from("hello") },
      { name: "empty", data: Buffer.alloc(0) },
      { name: "dir/ü €.bin", data: Buffer.alloc(70_000, 7) },
    ];
    const reference = await zipStreamArchive(data);
    const layout = computeLayout(data.map((d) => file(d.name, d.data.length)));
    const ours = Buffer.concat(
      [...segments(layout)].map((s) => {
        if (s.kind === "end") return endRecords(layout);
        const e = layout.entries[s.index]!;
        const d = data[s.index]!.data;
        const crc = crc32(d);
        if (s.kind === "local") return localHeader(e);
        if (s.kind === "data") return d;
        if (s.kind === "descriptor") return dataDescriptor(e, crc);
        return centralRecord(e, crc);
      }),
    );
    // zip-stream writes no timestamp extra: its length is ours less 9 bytes per header; and it
    // gives the empty file a 16-byte descriptor, which our layout (classic for empty files) does not.
    expect(ours.length).toBe(reference.length + 2 * 9 * data.length - 16);
    const refCd = centralDirectory(reference);
    const ourCd = centralDirectory(ours);
    expect(ourCd.map(({ offset: _o, ...r }) => r)).toEqual(refCd.map(({ offset: _o, ...r }) => r));
    for (let i = 0; i < data.length; i++) {
      const e = layout.entries[i]!;
      expect(ours.subarray(e.dataOffset, e.dataOffset + e.size)).toEqual(data[i]!.data);
    }
  });

  it("switches the end records to zip64 at 65,535 entries and not before", () => {
    const few = computeLayout(Array.from({ length: 65_534 }, (_, i) => file(`f${i}`, 0)));
    const many = computeLayout(Array.from({ length: 65_535 }, (_, i) => file(`f${i}`, 0)));
    expect(few.zip64End).toBe(false);
    expect(many.zip64End).toBe(true);
    expect(many.endLength).toBe(22 + 76);
    expect(endRecords(many).readUInt32LE(0)).toBe(0x06064b50);
  });

  it("makes an entry of 4 GiB or more zip64 with a 24-byte descriptor and zip64 extras, and one past 4 GiB zip64 for its offset only", () => {
    const big = 2 ** 32 + 10;
    const layout = computeLayout([file("small", 3), file("big", big), file("after", 4)]);
    const [small, e, after] = layout.entries;
    expect(small?.zip64).toBe(false);
    expect(small?.version).toBe(10);
    expect(e?.zip64).toBe(true);
    expect(e?.version).toBe(45);
    expect(e?.descriptorLength).toBe(24);
    expect(e?.localLength).toBe(30 + 3 + 20 + 9);
    // Both sizes, no offset (the big entry starts below 4 GiB).
    expect(e?.centralLength).toBe(46 + 3 + 20 + 9);
    // The small entry after the big one starts beyond 4 GiB: its offset alone goes in a
    // central zip64 extra; its sizes fit, so no local extra and a 16-byte descriptor.
    expect(after?.offset).toBeGreaterThan(2 ** 32);
    expect(after?.zip64).toBe(false);
    expect(after?.zip64Offset).toBe(true);
    expect(after?.version).toBe(45);
    expect(after?.localLength).toBe(30 + 5 + 9);
    expect(after?.descriptorLength).toBe(16);
    const cd = centralRecord(after!, 0);
    expect(cd.readUInt16LE(6)).toBe(45);
    expect(cd.readUInt32LE(20)).toBe(4);
    expect(cd.readUInt32LE(42)).toBe(0xffffffff);
    expect(cd.readUInt16LE(46 + 5)).toBe(1);
    expect(cd.readUInt16LE(46 + 5 + 2)).toBe(8);
    expect(Number(cd.readBigUInt64LE(46 + 5 + 4))).toBe(after?.offset);
    expect(layout.zip64End).toBe(true);
  });

  it("computes the formula total for many entries below 4 GiB", () => {
    const inputs = Array.from({ length: 1000 }, (_, i) => file(`dir/file-${i}.dat`, i * 7));
    const layout = computeLayout(inputs);
    let expected = 22;
    // A descriptor (16 bytes) for every file but the empty one, which is classic.
    for (const e of inputs) expected += e.size + 2 * (30 + Buffer.byteLength(e.name) + 9) + 16 + (e.size > 0 ? 16 : 0);
    expect(layout.total).toBe(expected);
  });

  it("covers any range with contiguous segments", () => {
    const layout = computeLayout([file("a", 10), dir("d/"), file("d/b", 0), file("c", 100)]);
    for (const [s, e] of [
      [0, layout.total],
      [5, 50],
      [layout.centralStart - 3, layout.centralStart + 10],
      [layout.total - 1, layout.total],
    ] as const) {
      let at = s;
      for (const seg of segments(layout, s, e)) {
        expect(seg.start).toBe(at);
        at = seg.end;
      }
      expect(at).toBe(e);
    }
  });

  it("needs the CRC only of entries whose data is skipped but whose records are served", () => {
    const layout = computeLayout([file("a", 10), file("b", 10), file("c", 0)]);
    const b = layout.entries[1]!;
    expect(crcsNeeded(layout, 0, layout.total)).toEqual([]);
    expect(crcsNeeded(layout, b.dataOffset + 5, layout.total)).toEqual([0, 1]);
    expect(crcsNeeded(layout, layout.centralStart, layout.total)).toEqual([0, 1]);
    expect(crcsNeeded(layout, 0, b.offset)).toEqual([]);
  });

  it("needs the same CRCs as a definition from the segments, on random layouts and ranges", () => {
    // The definition: entries with a descriptor or central record in the range whose data is not all in it,
    // and classic entries with their local header in it whose data is not all in it or is over the inline limit.
    const INLINE = 150;
    const reference = (layout: ReturnType<typeof computeLayout>, start: number, end: number): number[] => {
      const needed = new Set<number>();
      const whole = new Set<number>();
      const headers = new Set<number>();
      for (const seg of segments(layout, start, end)) {
        if (seg.kind === "end") continue;
        const e = layout.entries[seg.index]!;
        if (e.kind !== "file") continue;
        if (seg.kind === "data" && seg.start === e.dataOffset && seg.end === e.dataOffset + e.size) whole.add(seg.index);
        if (seg.kind === "descriptor" || seg.kind === "central") needed.add(seg.index);
        if (seg.kind === "local" && e.classic) headers.add(seg.index);
      }
      const out = new Set([...needed].filter((i) => !whole.has(i)));
      for (const i of headers) if (!whole.has(i) || layout.entries[i]!.size > INLINE) out.add(i);
      return [...out].filter((i) => layout.entries[i]!.size > 0).sort((x, y) => x - y);
    };
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed % n;
    };
    for (let round = 0; round < 200; round++) {
      const inputs: LayoutInput[] = Array.from({ length: 1 + rand(12) }, (_, i) =>
        rand(5) === 0
          ? { name: `d${i}/`, kind: "dir", size: 0, mtimeMs: 0 }
          : { ...file(`f${i}`, rand(4) === 0 ? 0 : rand(300)), form: rand(2) === 0 ? "classic" : "descriptor" },
      );
      const layout = computeLayout(inputs);
      for (let r = 0; r < 20; r++) {
        const a = rand(layout.total + 1);
        const b = a + rand(layout.total + 1 - a);
        expect(crcsNeeded(layout, a, b, INLINE), `${a}-${b} of ${layout.total}`).toEqual(reference(layout, a, b));
      }
    }
  });

  it("writes a classic entry with bit 3 clear, its CRC and sizes in the local header and no descriptor", () => {
    const layout = computeLayout([{ ...file("a.txt", 5), form: "classic" }, file("b.txt", 5), dir("d/")]);
    const [a, b, d] = layout.entries;
    expect(a?.classic).toBe(true);
    expect(b?.classic).toBe(false);
    expect(d?.classic).toBe(false);
    expect(a?.descriptorLength).toBe(0);
    expect(layout.classicCount).toBe(1);
    const h = localHeader(a!, 0x12345678);
    expect(h.readUInt16LE(6) & 0x8).toBe(0);
    expect(h.readUInt32LE(14)).toBe(0x12345678);
    expect(h.readUInt32LE(18)).toBe(5);
    expect(h.readUInt32LE(22)).toBe(5);
    expect(centralRecord(a!, 0x12345678).readUInt16LE(8) & 0x8).toBe(0);
    // 16 bytes shorter than the descriptor form.
    expect(computeLayout([file("a.txt", 5)]).total - computeLayout([{ ...file("a.txt", 5), form: "classic" }]).total).toBe(16);
  });

  it("gives a classic zip64 entry its real sizes in the local zip64 extra, 24 bytes shorter than a descriptor", () => {
    const big = 2 ** 32 + 10;
    const classic = computeLayout([
      { ...file("big", big), form: "classic" },
      { ...file("after", 4), form: "classic" },
    ]);
    const descriptor = computeLayout([file("big", big), file("after", 4)]);
    expect(descriptor.total - classic.total).toBe(24 + 16);
    const [e, after] = classic.entries;
    const h = localHeader(e!, 7);
    expect(h.readUInt32LE(14)).toBe(7);
    expect(h.readUInt32LE(18)).toBe(0xffffffff);
    expect(h.readUInt32LE(22)).toBe(0xffffffff);
    expect(h.readUInt16LE(30 + 3)).toBe(1);
    expect(Number(h.readBigUInt64LE(30 + 3 + 4))).toBe(big);
    expect(Number(h.readBigUInt64LE(30 + 3 + 12))).toBe(big);
    // A small entry past 4 GiB: its real sizes in the local header itself, no zip64 extra there.
    expect(after?.zip64).toBe(false);
    const ah = localHeader(after!, 9);
    expect(ah.readUInt32LE(18)).toBe(4);
    expect(ah.readUInt16LE(28)).toBe(9);
  });

  it("writes classic entries as zip-stream does for entries given as Buffers (its classic form)", async () => {
    const { crc32 } = await import("node:zlib");
    const data = [
      { name: "a.txt", data: Buffer.from("hello") },
      { name: "empty", data: Buffer.alloc(0) },
      { name: "dir/ü €.bin", data: Buffer.alloc(70_000, 7) },
    ];
    const zip = new ZipStream({ store: true });
    const chunks: Buffer[] = [];
    zip.on("data", (c: Buffer) => chunks.push(c));
    const done = new Promise((resolve) => zip.on("end", resolve));
    for (const e of data) {
      await new Promise<void>((resolve, reject) =>
        zip.entry(e.data, { name: e.name, date: new Date(T), store: true }, (err) => (err ? reject(err) : resolve())),
      );
    }
    zip.finalize();
    await done;
    const reference = Buffer.concat(chunks);
    const layout = computeLayout(data.map((d) => ({ ...file(d.name, d.data.length), form: "classic" as const })));
    // Local headers agree from the flags to the name length (zip-stream says version 1.0 and writes no timestamp extra).
    let at = 0;
    layout.entries.forEach((e, i) => {
      const ours = localHeader(e, crc32(data[i]!.data));
      expect(ours.subarray(6, 28)).toEqual(reference.subarray(at + 6, at + 28));
      at += 30 + e.nameLength + e.size;
    });
  });

  it("needs the CRC of classic entries whose header is served without all of their data, or that are too large to read first", () => {
    const layout = computeLayout([
      { ...file("a", 10), form: "classic" },
      { ...file("b", 1000), form: "classic" },
      file("c", 10),
      { ...file("d", 0), form: "classic" },
    ]);
    const [a, b] = layout.entries;
    expect(crcsNeeded(layout, 0, layout.total)).toEqual([]);
    expect(crcsNeeded(layout, 0, layout.total, 100)).toEqual([1]);
    // The range ends inside b's data: its header needs the CRC first.
    expect(crcsNeeded(layout, 0, b!.dataOffset + 10)).toEqual([1]);
    // Starting inside a's header, all its data in the range: read before the header.
    expect(crcsNeeded(layout, a!.offset + 3, b!.offset)).toEqual([]);
    // Starting inside a's data: no header of a's, no CRC of a's, until its central record.
    expect(crcsNeeded(layout, a!.dataOffset + 3, b!.offset)).toEqual([]);
    expect(crcsNeeded(layout, a!.dataOffset + 3, layout.total)).toEqual([0]);
  });
});
