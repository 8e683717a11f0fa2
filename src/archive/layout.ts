/**
 * Pure zip layout (store mode).
 *
 * Given the entries of an archive (name bytes, size, mtime, form) this module
 * computes, before a single byte is produced, the offset and bytes of every
 * header and the total length. No length depends on a CRC; only the bytes of
 * the records that hold one take it as an argument. That is what makes an
 * exact Content-Length and HTTP Range possible.
 *
 * Each file entry has one of two forms, chosen by the caller (and pinned with
 * the zipball, so every replica writes the same bytes):
 * - `descriptor` (the default, and what every manifest without a form had):
 *   general-purpose bit 3 set, CRC and sizes zero in the local header and
 *   given in a data descriptor after the data. Needs no CRC before the data.
 * - `classic`: bit 3 clear, CRC and sizes in the local header (real sizes in
 *   the zip64 extra), no descriptor. 16 bytes shorter (24 for zip64), and the
 *   only form streaming readers (Java ZipInputStream, bsdtar from a pipe,
 *   unzipper Parse, fflate Unzip…) read without guessing; it needs the CRC
 *   before the local header.
 *
 * Zip64 is used only where a value does not fit in 32 bits, and holds only
 * the fields that do not (APPNOTE 4.5.3; Go's archive/zip and Java read
 * exactly the fields whose 32-bit value is 0xFFFFFFFF, in order). An entry of
 * 4 GiB or more carries a zip64 extra with both sizes in its local header, an
 * 8-byte-size data descriptor (readers size the descriptor from the local
 * header) and both sizes in its central record's zip64 extra; an entry whose
 * local header starts at or past 4 GiB carries its offset in its central
 * record's zip64 extra. "Version needed" is what the entry needs: 1.0 for a
 * stored file, 2.0 for a folder, 4.5 for any zip64 use (APPNOTE 4.4.3.2).
 *
 * The bytes of a layout are fixed by `LAYOUT_REVISION`, which the download's
 * ETag includes: a change of layout rules gives every archive a new ETag, so a
 * range resumed across an upgrade is answered whole (If-Range), never mixed.
 */

/** Changes whenever the same entries would be laid out in other bytes. */
export const LAYOUT_REVISION = 2;

const SIG_LOCAL = 0x04034b50;
const SIG_DESCRIPTOR = 0x08074b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_EOCD = 0x06054b50;

const FLAG_DATA_DESCRIPTOR = 0x0008;
const FLAG_UTF8 = 0x0800;

/** Version needed to extract (APPNOTE 4.4.3.2): stored file, folder (or deflate), zip64. */
const VERSION_STORED = 10;
const VERSION_FOLDER = 20;
const VERSION_ZIP64 = 45;
/** "Made by" host 3 (Unix) so external attributes carry Unix modes. */
const MADE_BY_UNIX = 3 << 8;

const MAX_32 = 0xffffffff;
const MAX_16 = 0xffff;

const LOCAL_FIXED = 30;
const CENTRAL_FIXED = 46;
const ZIP64_LOCAL_EXTRA = 20;
const TIMESTAMP_EXTRA = 9;
const DESCRIPTOR_32 = 16;
const DESCRIPTOR_64 = 24;
const ZIP64_EOCD = 56;
const ZIP64_LOCATOR = 20;
const EOCD = 22;

const MODE_FILE = 0o100644;
const MODE_DIR = 0o040755;
const DOS_DIRECTORY = 0x10;

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;

export interface LayoutInput {
  /** Entry name; directories end with `/`. */
  name: string;
  /** `file` entries carry data; `dir` entries never do. */
  kind: "file" | "dir";
  /** Data length in bytes (0 for directories). */
  size: number;
  /** Modification time in milliseconds since the epoch. */
  mtimeMs: number;
  /**
   * How a file's CRC and sizes are written: in the local header (`classic`, the CRC must be
   * known before the header) or in a data descriptor after the data. Ignored for directories.
   * @default "descriptor"
   */
  form?: "classic" | "descriptor" | undefined;
}

export interface LayoutEntry {
  /** Entry name (the caller's string, shared rather than copied). */
  readonly name: string;
  /** Length of the name in UTF-8 bytes. */
  readonly nameLength: number;
  readonly kind: "file" | "dir";
  readonly size: number;
  /** 0 stored (every entry of a computed layout), 8 deflated (written by streamed.ts). */
  readonly method: number;
  /** Bytes of the data as written: `size` when stored. */
  readonly compressedSize: number;
  readonly mtimeMs: number;
  /** DOS date (high 16 bits) and time of mtimeMs, computed once with the layout: every header of every download writes it. */
  readonly dosTime: number;
  readonly utf8: boolean;
  /** Size of 4 GiB or more: zip64 extra with both sizes in the local header and the central record, 8-byte descriptor sizes. */
  readonly zip64: boolean;
  /** Local header at or past 4 GiB: its offset in the central record's zip64 extra. */
  readonly zip64Offset: boolean;
  /** Version needed to extract, the same in the local header and the central record. */
  readonly version: number;
  /** A file in the classic form: CRC and sizes in the local header, no data descriptor. */
  readonly classic: boolean;
  /** Offset of the local header. */
  readonly offset: number;
  readonly localLength: number;
  /** Offset of the first data byte. */
  readonly dataOffset: number;
  readonly descriptorLength: number;
  /** Offset of this entry's record in the central directory. */
  readonly centralOffset: number;
  readonly centralLength: number;
}

export interface Layout {
  readonly entries: readonly LayoutEntry[];
  /** Offset where the central directory starts (= end of the last entry). */
  readonly centralStart: number;
  readonly centralSize: number;
  /** Offset of the end records (zip64 record + locator if any, then EOCD). */
  readonly endOffset: number;
  readonly zip64End: boolean;
  readonly endLength: number;
  /** How many file entries have the classic form. */
  readonly classicCount: number;
  /** Exact archive length in bytes. */
  readonly total: number;
}

/** Largest archive offset that still has exact double precision. */
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function hasTimestamp(mtimeMs: number): boolean {
  const seconds = Math.floor(mtimeMs / 1000);
  return seconds >= INT32_MIN && seconds <= INT32_MAX;
}

/** Any code unit outside ASCII: bit 11 (UTF-8) is set iff a name has one. */
const NON_ASCII = /[\u0080-\uffff]/;

/** Computes the full layout. Pure: the same input gives the same layout. */
export function computeLayout(inputs: readonly LayoutInput[]): Layout {
  const entries: LayoutEntry[] = [];
  let offset = 0;
  let classicCount = 0;
  for (const input of inputs) {
    // Names stay strings, encoded as each record is written: 100,000 entries would otherwise hold 100,000 Buffers.
    const name = input.name;
    const nameLength = Buffer.byteLength(name, "utf8");
    if (nameLength > MAX_16) throw new RangeError(`entry name longer than ${MAX_16} bytes`);
    const isFile = input.kind === "file";
    const size = isFile ? input.size : 0;
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError("entry size must be a non-negative integer");
    const zip64 = size >= MAX_32;
    const zip64Offset = offset >= MAX_32;
    // An empty file is always classic: its CRC is 0, and a stored entry with a descriptor stops streaming readers.
    const classic = isFile && (input.form === "classic" || size === 0);
    if (classic) classicCount++;
    const ts = hasTimestamp(input.mtimeMs) ? TIMESTAMP_EXTRA : 0;
    const localLength = LOCAL_FIXED + nameLength + (zip64 ? ZIP64_LOCAL_EXTRA : 0) + ts;
    const descriptorLength = isFile && !classic ? (zip64 ? DESCRIPTOR_64 : DESCRIPTOR_32) : 0;
    const centralLength = CENTRAL_FIXED + nameLength + zip64CentralLength(zip64, zip64Offset) + ts;
    entries.push({
      name,
      nameLength,
      kind: input.kind,
      size,
      method: 0,
      compressedSize: size,
      mtimeMs: input.mtimeMs,
      dosTime: dosDateTime(input.mtimeMs),
      utf8: NON_ASCII.test(name),
      zip64,
      zip64Offset,
      version: zip64 || zip64Offset ? VERSION_ZIP64 : isFile ? VERSION_STORED : VERSION_FOLDER,
      classic,
      offset,
      localLength,
      dataOffset: offset + localLength,
      descriptorLength,
      centralOffset: 0,
      centralLength,
    });
    offset += localLength + size + descriptorLength;
  }
  const centralStart = offset;
  let central = centralStart;
  for (const entry of entries) {
    (entry as { centralOffset: number }).centralOffset = central;
    central += entry.centralLength;
  }
  const centralSize = central - centralStart;
  const { zip64End, endLength } = endShape(entries.length, centralStart, centralSize);
  const total = central + endLength;
  if (total > MAX_SAFE) throw new RangeError("archive too large");
  return { entries, centralStart, centralSize, endOffset: central, zip64End, endLength, classicCount, total };
}

/** Whether the end records need zip64 (a count or an offset that does not fit), and their length. */
export function endShape(count: number, centralStart: number, centralSize: number): { zip64End: boolean; endLength: number } {
  const zip64End = count >= MAX_16 || centralStart >= MAX_32 || centralSize >= MAX_32;
  return { zip64End, endLength: (zip64End ? ZIP64_EOCD + ZIP64_LOCATOR : 0) + EOCD };
}

/** Bytes of a central record's zip64 extra: both sizes, the offset, or both; none when neither needs it. */
function zip64CentralLength(sizes: boolean, offset: boolean): number {
  return sizes || offset ? 4 + (sizes ? 16 : 0) + (offset ? 8 : 0) : 0;
}

/** DOS date (high 16 bits) and time (low 16 bits), in UTC so every replica writes the same bytes. */
function dosDateTime(mtimeMs: number): number {
  const d = new Date(mtimeMs);
  let year = d.getUTCFullYear();
  if (Number.isNaN(year) || year < 1980) return ((1 << 5) | 1) << 16;
  if (year > 2107) year = 2107;
  const date = ((year - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate();
  const time = (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | (d.getUTCSeconds() >> 1);
  return (date << 16) | time;
}

function flags(entry: LayoutEntry): number {
  return (entry.kind === "file" && !entry.classic ? FLAG_DATA_DESCRIPTOR : 0) | (entry.utf8 ? FLAG_UTF8 : 0);
}

function writeTimestamp(buf: Buffer, at: number, mtimeMs: number): number {
  buf.writeUInt16LE(0x5455, at);
  buf.writeUInt16LE(5, at + 2);
  buf.writeUInt8(1, at + 4); // mtime only
  buf.writeInt32LE(Math.floor(mtimeMs / 1000), at + 5);
  return at + TIMESTAMP_EXTRA;
}

/** The extended-timestamp extra field (mtime only) for `mtimeMs`, or none outside its 32-bit range. */
export function timestampExtra(mtimeMs: number): Buffer {
  if (!hasTimestamp(mtimeMs)) return Buffer.alloc(0);
  const buf = Buffer.allocUnsafe(TIMESTAMP_EXTRA);
  writeTimestamp(buf, 0, mtimeMs);
  return buf;
}

/** Bytes of an entry's local header; `crc` is used by classic entries only. */
export function localHeader(entry: LayoutEntry, crc = 0): Buffer {
  const buf = Buffer.allocUnsafe(entry.localLength);
  writeLocalHeader(entry, buf, 0, crc);
  return buf;
}

/**
 * Writes an entry's local header (`entry.localLength` bytes) into `buf` at `at`; every byte
 * is written, so `buf` need not be zeroed. A classic entry's header holds `crc` and the sizes.
 */
export function writeLocalHeader(entry: LayoutEntry, buf: Buffer, at: number, crc = 0): void {
  const dosTime = entry.dosTime;
  buf.writeUInt32LE(SIG_LOCAL, at);
  buf.writeUInt16LE(entry.version, at + 4);
  buf.writeUInt16LE(flags(entry), at + 6);
  buf.writeUInt16LE(entry.method, at + 8);
  buf.writeUInt32LE(dosTime >>> 0, at + 10); // time, then date
  // Descriptor form: CRC and sizes follow in the data descriptor (bit 3). Classic form: here.
  // Either way an entry of 4 GiB or more points to its zip64 extra for the sizes.
  const size = entry.classic ? entry.size : 0;
  const csize = entry.classic ? entry.compressedSize : 0;
  buf.writeUInt32LE(entry.classic ? crc >>> 0 : 0, at + 14);
  buf.writeUInt32LE(entry.zip64 ? MAX_32 : csize, at + 18);
  buf.writeUInt32LE(entry.zip64 ? MAX_32 : size, at + 22);
  buf.writeUInt16LE(entry.nameLength, at + 26);
  buf.writeUInt16LE(entry.localLength - LOCAL_FIXED - entry.nameLength, at + 28);
  buf.write(entry.name, at + LOCAL_FIXED, entry.nameLength, "utf8");
  let p = at + LOCAL_FIXED + entry.nameLength;
  if (entry.zip64) {
    buf.writeUInt16LE(0x0001, p);
    buf.writeUInt16LE(16, p + 2);
    // Uncompressed then compressed size; zero in the descriptor form, whose descriptor holds them.
    buf.writeBigUInt64LE(BigInt(size), p + 4);
    buf.writeBigUInt64LE(BigInt(csize), p + 12);
    p += ZIP64_LOCAL_EXTRA;
  }
  if (hasTimestamp(entry.mtimeMs)) writeTimestamp(buf, p, entry.mtimeMs);
}

/** Bytes of a file entry's data descriptor. */
export function dataDescriptor(entry: LayoutEntry, crc: number): Buffer {
  const buf = Buffer.allocUnsafe(entry.descriptorLength);
  writeDataDescriptor(entry, crc, buf, 0);
  return buf;
}

/** Writes a file entry's data descriptor (`entry.descriptorLength` bytes) into `buf` at `at`. */
export function writeDataDescriptor(entry: LayoutEntry, crc: number, buf: Buffer, at: number): void {
  if (entry.descriptorLength === 0) return;
  buf.writeUInt32LE(SIG_DESCRIPTOR, at);
  buf.writeUInt32LE(crc >>> 0, at + 4);
  // Compressed, then uncompressed size.
  if (entry.zip64) {
    buf.writeBigUInt64LE(BigInt(entry.compressedSize), at + 8);
    buf.writeBigUInt64LE(BigInt(entry.size), at + 16);
  } else {
    buf.writeUInt32LE(entry.compressedSize, at + 8);
    buf.writeUInt32LE(entry.size, at + 12);
  }
}

/** Bytes of an entry's central-directory record. */
export function centralRecord(entry: LayoutEntry, crc: number): Buffer {
  const buf = Buffer.allocUnsafe(entry.centralLength);
  writeCentralRecord(entry, crc, buf, 0);
  return buf;
}

/**
 * Writes an entry's central-directory record (`entry.centralLength` bytes) into `buf` at
 * `at`; every byte is written.
 */
export function writeCentralRecord(entry: LayoutEntry, crc: number, buf: Buffer, at: number): void {
  const dosTime = entry.dosTime;
  const isDir = entry.kind === "dir";
  buf.writeUInt32LE(SIG_CENTRAL, at);
  // Made by: Unix, spec version 4.5 (the newest feature any of our archives uses).
  buf.writeUInt16LE(MADE_BY_UNIX | VERSION_ZIP64, at + 4);
  buf.writeUInt16LE(entry.version, at + 6);
  buf.writeUInt16LE(flags(entry), at + 8);
  buf.writeUInt16LE(entry.method, at + 10);
  buf.writeUInt32LE(dosTime >>> 0, at + 12); // time, then date
  buf.writeUInt32LE(isDir ? 0 : crc >>> 0, at + 16);
  buf.writeUInt32LE(entry.zip64 ? MAX_32 : entry.compressedSize, at + 20);
  buf.writeUInt32LE(entry.zip64 ? MAX_32 : entry.size, at + 24);
  buf.writeUInt16LE(entry.nameLength, at + 28);
  buf.writeUInt16LE(entry.centralLength - CENTRAL_FIXED - entry.nameLength, at + 30);
  buf.writeUInt32LE(0, at + 32); // comment length, disk
  buf.writeUInt16LE(0, at + 36); // internal attributes
  buf.writeUInt32LE((((isDir ? MODE_DIR : MODE_FILE) << 16) | (isDir ? DOS_DIRECTORY : 0)) >>> 0, at + 38);
  buf.writeUInt32LE(entry.zip64Offset ? MAX_32 : entry.offset, at + 42);
  buf.write(entry.name, at + CENTRAL_FIXED, entry.nameLength, "utf8");
  let p = at + CENTRAL_FIXED + entry.nameLength;
  const extra = zip64CentralLength(entry.zip64, entry.zip64Offset);
  if (extra > 0) {
    // Only the fields whose 32-bit value above is 0xFFFFFFFF, in the order of APPNOTE 4.5.3.
    buf.writeUInt16LE(0x0001, p);
    buf.writeUInt16LE(extra - 4, p + 2);
    p += 4;
    if (entry.zip64) {
      buf.writeBigUInt64LE(BigInt(entry.size), p);
      buf.writeBigUInt64LE(BigInt(entry.compressedSize), p + 8);
      p += 16;
    }
    if (entry.zip64Offset) {
      buf.writeBigUInt64LE(BigInt(entry.offset), p);
      p += 8;
    }
  }
  if (hasTimestamp(entry.mtimeMs)) writeTimestamp(buf, p, entry.mtimeMs);
}

/**
 * One entry of an archive written as it streams (streamed.ts), laid out as it goes: its local
 * header at `offset`, `method` 0 or 8. With `compressedSize` and `size` unknown yet (a
 * descriptor entry's local header), give them as 0 and `zip64` for an entry that may reach
 * 4 GiB; its central record is made from a second call with the final values.
 */
export function streamedEntry(input: {
  name: string;
  kind: "file" | "dir";
  mtimeMs: number;
  method: number;
  size: number;
  compressedSize: number;
  offset: number;
  classic: boolean;
  zip64: boolean;
}): LayoutEntry {
  const nameLength = Buffer.byteLength(input.name, "utf8");
  if (nameLength > MAX_16) throw new RangeError(`entry name longer than ${MAX_16} bytes`);
  const isFile = input.kind === "file";
  const zip64Offset = input.offset >= MAX_32;
  const ts = hasTimestamp(input.mtimeMs) ? TIMESTAMP_EXTRA : 0;
  const localLength = LOCAL_FIXED + nameLength + (input.zip64 ? ZIP64_LOCAL_EXTRA : 0) + ts;
  return {
    name: input.name,
    nameLength,
    kind: input.kind,
    size: input.size,
    method: input.method,
    compressedSize: input.compressedSize,
    mtimeMs: input.mtimeMs,
    dosTime: dosDateTime(input.mtimeMs),
    utf8: NON_ASCII.test(input.name),
    zip64: input.zip64,
    zip64Offset,
    version: input.zip64 || zip64Offset ? VERSION_ZIP64 : !isFile || input.method === 8 ? VERSION_FOLDER : VERSION_STORED,
    classic: isFile && input.classic,
    offset: input.offset,
    localLength,
    dataOffset: input.offset + localLength,
    descriptorLength: isFile && !input.classic ? (input.zip64 ? DESCRIPTOR_64 : DESCRIPTOR_32) : 0,
    centralOffset: 0,
    centralLength: CENTRAL_FIXED + nameLength + zip64CentralLength(input.zip64, zip64Offset) + ts,
  };
}

/** Bytes of the end records: zip64 end record and locator when needed, then the EOCD. */
export function endRecords(layout: Pick<Layout, "entries" | "endLength" | "zip64End" | "centralSize" | "centralStart" | "endOffset">): Buffer {
  const buf = Buffer.alloc(layout.endLength);
  const count = layout.entries.length;
  let at = 0;
  if (layout.zip64End) {
    buf.writeUInt32LE(SIG_ZIP64_EOCD, 0);
    buf.writeBigUInt64LE(BigInt(ZIP64_EOCD - 12), 4);
    buf.writeUInt16LE(MADE_BY_UNIX | VERSION_ZIP64, 12);
    buf.writeUInt16LE(VERSION_ZIP64, 14);
    buf.writeUInt32LE(0, 16);
    buf.writeUInt32LE(0, 20);
    buf.writeBigUInt64LE(BigInt(count), 24);
    buf.writeBigUInt64LE(BigInt(count), 32);
    buf.writeBigUInt64LE(BigInt(layout.centralSize), 40);
    buf.writeBigUInt64LE(BigInt(layout.centralStart), 48);
    buf.writeUInt32LE(SIG_ZIP64_LOCATOR, 56);
    buf.writeUInt32LE(0, 60);
    buf.writeBigUInt64LE(BigInt(layout.endOffset), 64);
    buf.writeUInt32LE(1, 72);
    at = ZIP64_EOCD + ZIP64_LOCATOR;
  }
  buf.writeUInt32LE(SIG_EOCD, at);
  buf.writeUInt16LE(0, at + 4);
  buf.writeUInt16LE(0, at + 6);
  buf.writeUInt16LE(Math.min(count, MAX_16), at + 8);
  buf.writeUInt16LE(Math.min(count, MAX_16), at + 10);
  buf.writeUInt32LE(Math.min(layout.centralSize, MAX_32), at + 12);
  buf.writeUInt32LE(Math.min(layout.centralStart, MAX_32), at + 16);
  buf.writeUInt16LE(0, at + 20);
  return buf;
}

/** A piece of the archive: header bytes of an entry, its data, or the end records. */
export type Segment =
  | { kind: "local"; index: number; start: number; end: number }
  | { kind: "data"; index: number; start: number; end: number }
  | { kind: "descriptor"; index: number; start: number; end: number }
  | { kind: "central"; index: number; start: number; end: number }
  | { kind: "end"; start: number; end: number };

/** Index of the last entry whose `offsetOf` is at or before `pos` (binary search). */
function lastAtOrBefore(layout: Layout, pos: number, offsetOf: (e: LayoutEntry) => number): number {
  let lo = 0;
  let hi = layout.entries.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (offsetOf(layout.entries[mid] as LayoutEntry) <= pos) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * The segments covering the half-open byte range [start, end), in order,
 * each clipped to the range. Offsets are absolute archive offsets.
 */
export function* segments(layout: Layout, start = 0, end = layout.total): Generator<Segment> {
  if (start >= end) return;
  const { entries } = layout;
  if (start < layout.centralStart && entries.length > 0) {
    for (let i = lastAtOrBefore(layout, start, (e) => e.offset); i < entries.length; i++) {
      const e = entries[i] as LayoutEntry;
      if (e.offset >= end) return;
      const dataEnd = e.dataOffset + e.size;
      let a = Math.max(e.offset, start);
      let b = Math.min(e.dataOffset, end);
      if (a < b) yield { kind: "local", index: i, start: a, end: b };
      a = Math.max(e.dataOffset, start);
      b = Math.min(dataEnd, end);
      if (a < b) yield { kind: "data", index: i, start: a, end: b };
      a = Math.max(dataEnd, start);
      b = Math.min(dataEnd + e.descriptorLength, end);
      if (a < b) yield { kind: "descriptor", index: i, start: a, end: b };
    }
  }
  if (end > layout.centralStart && start < layout.endOffset && entries.length > 0) {
    for (let i = lastAtOrBefore(layout, Math.max(start, layout.centralStart), (e) => e.centralOffset); i < entries.length; i++) {
      const e = entries[i] as LayoutEntry;
      if (e.centralOffset >= end) return;
      const a = Math.max(e.centralOffset, start);
      const b = Math.min(e.centralOffset + e.centralLength, end);
      if (a < b) yield { kind: "central", index: i, start: a, end: b };
    }
  }
  const a = Math.max(layout.endOffset, start);
  const b = Math.min(layout.total, end);
  if (a < b) yield { kind: "end", start: a, end: b };
}

/**
 * Entries whose CRC is needed before the bytes of [start, end) can be produced, other than
 * from their data inside that range: their descriptor or central record is in the range
 * while not all of their data is; or they are classic, their local header is in the range,
 * and their data is not all in it, or is larger than `inlineMax` (a classic entry's data
 * in the range, whole and at most `inlineMax` bytes, is read before its header and its CRC
 * taken from it). Ascending, without repeats; allocates nothing per entry.
 */
export function crcsNeeded(layout: Layout, start: number, end: number, inlineMax = Number.POSITIVE_INFINITY): number[] {
  const out = descriptorCrcsNeeded(layout, start, end);
  if (layout.classicCount === 0 || start >= end || start >= layout.centralStart) return out;
  const { entries } = layout;
  const headers: number[] = [];
  for (let i = lastAtOrBefore(layout, start, (e) => e.offset); i < entries.length; i++) {
    const e = entries[i] as LayoutEntry;
    if (e.offset >= end) break;
    // Its local header is in the range when the range starts before its data.
    if (!e.classic || e.size === 0 || e.dataOffset <= start) continue;
    if (e.dataOffset + e.size > end || e.size > inlineMax) headers.push(i);
  }
  if (headers.length === 0) return out;
  // Both lists are ascending: merge them without repeats.
  const merged: number[] = [];
  let a = 0;
  let b = 0;
  while (a < out.length || b < headers.length) {
    const x = out[a] ?? Number.POSITIVE_INFINITY;
    const y = headers[b] ?? Number.POSITIVE_INFINITY;
    const next = Math.min(x, y);
    if (x === next) a++;
    if (y === next) b++;
    merged.push(next);
  }
  return merged;
}

/** The descriptor and central-record part of `crcsNeeded`. */
function descriptorCrcsNeeded(layout: Layout, start: number, end: number): number[] {
  const { entries } = layout;
  const out: number[] = [];
  if (start >= end || entries.length === 0) return out;
  // Data streamed whole in this range yields its CRC on the way; an empty file's CRC is 0.
  const needs = (e: LayoutEntry): boolean => e.kind === "file" && e.size > 0 && !(e.dataOffset >= start && e.dataOffset + e.size <= end);
  // A descriptor can be in the range without all of its data only in the entry the range starts in.
  let first = -1;
  if (start < layout.centralStart) {
    const k = lastAtOrBefore(layout, start, (e) => e.offset);
    const e = entries[k] as LayoutEntry;
    const dataEnd = e.dataOffset + e.size;
    if (needs(e) && e.descriptorLength > 0 && dataEnd < end && dataEnd + e.descriptorLength > start) first = k;
  }
  if (end > layout.centralStart && start < layout.endOffset) {
    for (let i = lastAtOrBefore(layout, Math.max(start, layout.centralStart), (e) => e.centralOffset); i < entries.length; i++) {
      const e = entries[i] as LayoutEntry;
      if (e.centralOffset >= end) break;
      if (e.centralOffset + e.centralLength <= start) continue;
      if (first >= 0 && first <= i) {
        if (first < i) out.push(first);
        first = -1;
      }
      if (needs(e)) out.push(i);
    }
  }
  // Central records in the range (if any) ended before reaching it.
  if (first >= 0) out.push(first);
  return out;
}
