import { open } from "node:fs/promises";
import { crc32, createInflateRaw } from "node:zlib";

/**
 * A structural validator of zip archives, our own, for every archive the tests produce. It
 * parses every byte: local headers, data (CRC checked, deflate inflated), data descriptors,
 * the central directory and the end records, and nothing may lie between or after them. It
 * enforces the rules real readers depend on; each rule names the reader it protects and a
 * public source. APPNOTE is PKWARE's specification (section numbers of 6.3.x):
 * https://pkware.cachefly.net/webdocs/casestudies/APPNOTE.TXT
 *
 * `checkZip` throws a ZipRuleError listing every broken rule (the first 50), each as
 * `rule-id: what`, so a failing test says which reader would trip.
 */

const SIG_LOCAL = 0x04034b50;
const SIG_DESCRIPTOR = 0x08074b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_EOCD = 0x06054b50;
const MAX_32 = 0xffffffff;
const MAX_16 = 0xffff;
const ID_ZIP64 = 0x0001;
const ID_TIMESTAMP = 0x5455;
const ID_AES = 0x9901;

export interface CheckOptions {
  /** Entries may be WinZip AES encrypted (method 99, extra 0x9901, bit 0). */
  encrypted?: boolean;
}

export interface CheckedEntry {
  name: string;
  dir: boolean;
  method: number;
  /** CRC and sizes in the local header, no data descriptor. */
  classic: boolean;
  size: number;
  compressedSize: number;
  crc: number;
  offset: number;
}

export interface ZipReport {
  entries: CheckedEntry[];
  zip64End: boolean;
  length: number;
}

export class ZipRuleError extends Error {
  constructor(readonly problems: string[]) {
    super(`zip structure rules broken (${problems.length}):\n  ${problems.slice(0, 50).join("\n  ")}`);
    this.name = "ZipRuleError";
  }
}

/** Random access to the archive's bytes: a Buffer, or a file read piece by piece (archives of many GiB). */
interface Bytes {
  length: number;
  read(at: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

async function bytesOf(source: string | Buffer): Promise<Bytes> {
  if (Buffer.isBuffer(source)) {
    return { length: source.length, read: async (at, n) => source.subarray(at, Math.min(at + n, source.length)), close: async () => {} };
  }
  const fh = await open(source, "r");
  const { size } = await fh.stat();
  return {
    length: size,
    read: async (at, n) => {
      const len = Math.max(0, Math.min(n, size - at));
      const buf = Buffer.allocUnsafe(len);
      let got = 0;
      while (got < len) {
        const { bytesRead } = await fh.read(buf, got, len - got, at + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return buf.subarray(0, got);
    },
    close: () => fh.close(),
  };
}

interface Extra {
  id: number;
  data: Buffer;
}

/** Splits an extra field; every byte must belong to one well-formed field. */
function parseExtras(buf: Buffer, where: string, problems: string[]): Extra[] {
  const out: Extra[] = [];
  let p = 0;
  while (p < buf.length) {
    if (p + 4 > buf.length) {
      problems.push(`extra-format: ${where}: ${buf.length - p} stray bytes at the end of the extra field`);
      break;
    }
    const id = buf.readUInt16LE(p);
    const len = buf.readUInt16LE(p + 2);
    if (p + 4 + len > buf.length) {
      problems.push(`extra-format: ${where}: extra 0x${id.toString(16)} claims ${len} bytes, ${buf.length - p - 4} left`);
      break;
    }
    out.push({ id, data: buf.subarray(p + 4, p + 4 + len) });
    p += 4 + len;
  }
  const ids = out.map((e) => e.id);
  if (new Set(ids).size !== ids.length) problems.push(`extra-format: ${where}: an extra field id appears twice (${ids.join(",")})`);
  return out;
}

/** A DOS time/date pair that names a real moment (APPNOTE 4.4.6). */
function validDos(time: number, date: number): boolean {
  const sec = (time & 0x1f) * 2;
  const min = (time >> 5) & 0x3f;
  const hour = time >> 11;
  const day = date & 0x1f;
  const month = (date >> 5) & 0x0f;
  const year = 1980 + (date >> 9);
  if (month < 1 || month > 12 || day < 1 || hour > 23 || min > 59 || sec > 59) return false;
  const days = new Date(Date.UTC(year, month, 0)).getUTCDate();
  return day <= days;
}

interface Central {
  index: number;
  versionMadeBy: number;
  version: number;
  flags: number;
  method: number;
  time: number;
  date: number;
  crc: number;
  csize: number;
  size: number;
  offset: number;
  nameBytes: Buffer;
  name: string;
  extras: Extra[];
  external: number;
}

/** Checks every rule on the archive (a path or its bytes); resolves with what it found. */
export async function checkZip(source: string | Buffer, options: CheckOptions = {}): Promise<ZipReport> {
  const bytes = await bytesOf(source);
  try {
    return await check(bytes, options);
  } finally {
    await bytes.close();
  }
}

async function check(bytes: Bytes, options: CheckOptions): Promise<ZipReport> {
  const problems: string[] = [];
  const fail = (msg: string): never => {
    problems.push(msg);
    throw new ZipRuleError(problems);
  };
  const total = bytes.length;
  if (total < 22) fail(`end-records: ${total} bytes cannot hold an end of central directory record`);

  // End records. No archive comment: the EOCD is the last 22 bytes (a comment is where
  // readers searching backwards for the signature go wrong; we never write one).
  const eocdAt = total - 22;
  const eocd = await bytes.read(eocdAt, 22);
  if (eocd.readUInt32LE(0) !== SIG_EOCD) fail("end-records: the archive does not end with an end of central directory record without comment");
  const eocdDisk = eocd.readUInt16LE(4);
  const eocdCdDisk = eocd.readUInt16LE(6);
  const eocdCountDisk = eocd.readUInt16LE(8);
  const eocdCount = eocd.readUInt16LE(10);
  const eocdCdSize = eocd.readUInt32LE(12);
  const eocdCdStart = eocd.readUInt32LE(16);
  // Rule eocd-disks: single-disk archives say disk 0 everywhere. Info-ZIP stops with "claims
  // to be last disk of a multi-part archive" otherwise
  // (https://github.com/madler/unzip/blob/0b82c20ac7375b522215b567174f370be89a4b12/process.c#L827);
  // libzip checks the same (lib/zip_open.c check_eocd, nih-at/libzip@4cd7310 L795-L799).
  if (eocdDisk !== 0 || eocdCdDisk !== 0) problems.push(`eocd-disks: disk numbers ${eocdDisk}/${eocdCdDisk}, want 0/0`);
  if (eocd.readUInt16LE(20) !== 0) problems.push("eocd-comment: archive comment present");

  let count = eocdCount;
  let cdSize = eocdCdSize;
  let cdStart = eocdCdStart;
  let zip64End = false;
  let zip64At = eocdAt;
  if (eocdAt >= 20) {
    const loc = await bytes.read(eocdAt - 20, 20);
    if (loc.readUInt32LE(0) === SIG_ZIP64_LOCATOR) {
      zip64End = true;
      const recAt = Number(loc.readBigUInt64LE(8));
      if (loc.readUInt32LE(4) !== 0 || loc.readUInt32LE(16) !== 1) problems.push("eocd-disks: zip64 locator disk fields not 0 and 1");
      if (recAt !== eocdAt - 20 - 56) problems.push(`zip64-end: zip64 end record at ${recAt}, want right before the locator (${eocdAt - 76})`);
      const rec = await bytes.read(recAt, 56);
      if (rec.readUInt32LE(0) !== SIG_ZIP64_EOCD) fail("zip64-end: no zip64 end of central directory record where the locator points");
      if (Number(rec.readBigUInt64LE(4)) !== 44) problems.push("zip64-end: zip64 end record size is not 44 (extensible data present)");
      if (rec.readUInt16LE(14) !== 45) problems.push(`version-needed: zip64 end record needs ${rec.readUInt16LE(14)}, want 45`);
      if (rec.readUInt32LE(16) !== 0 || rec.readUInt32LE(20) !== 0) problems.push("eocd-disks: zip64 end record disk fields not 0");
      const n1 = Number(rec.readBigUInt64LE(24));
      count = Number(rec.readBigUInt64LE(32));
      if (n1 !== count) problems.push(`eocd-counts: zip64 entries on disk ${n1} ≠ total ${count}`);
      cdSize = Number(rec.readBigUInt64LE(40));
      cdStart = Number(rec.readBigUInt64LE(48));
      zip64At = recAt;
    }
  }
  // Rule eocd-counts: the 16/32-bit fields hold min(value, 0xFFFF/0xFFFFFFFF), and the zip64
  // records appear exactly when a value does not fit (APPNOTE 4.4.21–4.4.24). yauzl and
  // adm-zip read the 16-bit "entries on this disk" count: a count taken modulo 65,536 drops
  // entries silently (https://github.com/thejoshwolfe/yauzl/issues/60, adm-zip zipFile.js
  // L58-L61 at 094d08c); a count of exactly 0xFFFF means "see zip64" to yauzl
  // (https://github.com/thejoshwolfe/yauzl/issues/108), so 65,535 entries need the zip64
  // records; macOS Archive Utility failed on archives with zip64 end records it did not
  // expect (https://github.com/barracudanetworks/ArchiveStream-php/issues/27).
  if (eocdCountDisk !== eocdCount) problems.push(`eocd-counts: entries on this disk ${eocdCountDisk} ≠ total ${eocdCount}`);
  if (eocdCount !== Math.min(count, MAX_16)) problems.push(`eocd-counts: EOCD count ${eocdCount}, want min(${count}, 65535)`);
  if (eocdCdSize !== Math.min(cdSize, MAX_32)) problems.push(`eocd-counts: EOCD directory size ${eocdCdSize}, want min(${cdSize}, 0xFFFFFFFF)`);
  if (eocdCdStart !== Math.min(cdStart, MAX_32)) problems.push(`eocd-counts: EOCD directory offset ${eocdCdStart}, want min(${cdStart}, 0xFFFFFFFF)`);
  const needsZip64End = count >= MAX_16 || cdSize >= MAX_32 || cdStart >= MAX_32;
  if (zip64End !== needsZip64End)
    problems.push(`zip64-end: zip64 end records ${zip64End ? "present" : "absent"} but ${needsZip64End ? "needed" : "not needed"}`);
  if (cdStart + cdSize !== zip64At) problems.push(`layout-gaps: central directory ends at ${cdStart + cdSize}, end records start at ${zip64At}`);

  // Central directory.
  const central: Central[] = [];
  const cd = await bytes.read(cdStart, cdSize);
  if (cd.length !== cdSize) fail("layout-gaps: central directory runs past the end of the archive");
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== SIG_CENTRAL) fail(`central-format: record ${i} missing at directory offset ${p}`);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    const end = p + 46 + nameLen + extraLen + commentLen;
    if (end > cd.length) fail(`central-format: record ${i} runs past the directory`);
    const nameBytes = cd.subarray(p + 46, p + 46 + nameLen);
    const c: Central = {
      index: i,
      versionMadeBy: cd.readUInt16LE(p + 4),
      version: cd.readUInt16LE(p + 6),
      flags: cd.readUInt16LE(p + 8),
      method: cd.readUInt16LE(p + 10),
      time: cd.readUInt16LE(p + 12),
      date: cd.readUInt16LE(p + 14),
      crc: cd.readUInt32LE(p + 16),
      csize: cd.readUInt32LE(p + 20),
      size: cd.readUInt32LE(p + 24),
      offset: cd.readUInt32LE(p + 42),
      nameBytes,
      name: nameBytes.toString("utf8"),
      extras: [],
      external: cd.readUInt32LE(p + 38),
    };
    const where = `central record ${i} (${c.name})`;
    if (commentLen !== 0) problems.push(`central-format: ${where} has a file comment`);
    if (cd.readUInt16LE(p + 34) !== 0) problems.push(`eocd-disks: ${where} starts on disk ${cd.readUInt16LE(p + 34)}`);
    c.extras = parseExtras(cd.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen), where, problems);
    // Rule zip64-fields: a zip64 extra only when needed, holding exactly the fields whose
    // 32-bit value is 0xFFFFFFFF, in the order uncompressed size, compressed size, offset
    // (APPNOTE 4.5.3). Java's ZipFile refuses a zip64 block whose size is not that of the
    // 0xFFFFFFFF fields ("Invalid CEN header (invalid zip64 extra data field size)",
    // ZipFile.isZip64ExtBlockSizeValid, https://github.com/openjdk/jdk/pull/15273); Go's
    // archive/zip reads the fields conditionally in that order
    // (https://github.com/golang/go/blob/go1.19.8/src/archive/zip/reader.go#L358-L404), as do
    // Info-ZIP, yauzl, libzip and Python; extra fields make Microsoft's WindowsBase refuse the
    // archive (https://github.com/golang/go/issues/23572).
    const z = c.extras.find((e) => e.id === ID_ZIP64);
    const wants = [c.size === MAX_32, c.csize === MAX_32, c.offset === MAX_32];
    const fields = wants.filter(Boolean).length;
    if (z === undefined) {
      if (fields > 0) problems.push(`zip64-fields: ${where} has 0xFFFFFFFF fields but no zip64 extra`);
    } else {
      if (fields === 0) problems.push(`zip64-fields: ${where} has a zip64 extra no field needs`);
      if (z.data.length !== 8 * fields)
        problems.push(`zip64-fields: ${where} zip64 extra holds ${z.data.length} bytes, want ${8 * fields} for the 0xFFFFFFFF fields`);
      let q = 0;
      const next = (): number => {
        const v = q + 8 <= z.data.length ? Number(z.data.readBigUInt64LE(q)) : Number.NaN;
        q += 8;
        return v;
      };
      if (wants[0]) c.size = next();
      if (wants[1]) c.csize = next();
      if (wants[2]) c.offset = next();
      if (wants[0] && !(c.size >= MAX_32)) problems.push(`zip64-fields: ${where} size ${c.size} in zip64 although it fits 32 bits`);
      if (wants[1] && !(c.csize >= MAX_32)) problems.push(`zip64-fields: ${where} compressed size ${c.csize} in zip64 although it fits 32 bits`);
      if (wants[2] && !(c.offset >= MAX_32)) problems.push(`zip64-fields: ${where} offset ${c.offset} in zip64 although it fits 32 bits`);
    }
    central.push(c);
    p = end;
  }
  if (p !== cd.length) problems.push(`layout-gaps: ${cd.length - p} bytes after the last central record`);

  // Local records, in order from byte 0, each where its central record says.
  const entries: CheckedEntry[] = [];
  const names = new Set<string>();
  let at = 0;
  for (const c of central) {
    const where = `entry ${c.index} (${c.name})`;
    if (c.offset !== at) {
      problems.push(`layout-gaps: ${where} starts at ${c.offset}, the previous one ended at ${at}`);
      at = c.offset;
    }
    const head = await bytes.read(at, 30);
    if (head.length < 30 || head.readUInt32LE(0) !== SIG_LOCAL) fail(`local-format: ${where} has no local header at ${at}`);
    const lVersion = head.readUInt16LE(4);
    const lFlags = head.readUInt16LE(6);
    const lMethod = head.readUInt16LE(8);
    const lTime = head.readUInt16LE(10);
    const lDate = head.readUInt16LE(12);
    const lCrc = head.readUInt32LE(14);
    let lCsize = head.readUInt32LE(18);
    let lSize = head.readUInt32LE(22);
    const nameLen = head.readUInt16LE(26);
    const extraLen = head.readUInt16LE(28);
    const rest = await bytes.read(at + 30, nameLen + extraLen);
    const lName = rest.subarray(0, nameLen);
    const lExtras = parseExtras(rest.subarray(nameLen), `local header of ${where}`, problems);
    const dataAt = at + 30 + nameLen + extraLen;
    const isDir = c.name.endsWith("/");
    const descriptor = (lFlags & 0x0008) !== 0;
    const encrypted = options.encrypted === true && c.method === 99;

    // Rule local-central: the local header and the central record agree on everything they
    // both hold. libzip refuses otherwise ("Zip archive inconsistent", _zip_headercomp,
    // https://github.com/nih-at/libzip/blob/4cd731076f4a18e3b4b2cc36b4bfb432f571dec5/lib/zip_open.c#L598-L630);
    // Python's zipfile raises "File name in directory ... and header ... differ"
    // (https://github.com/python/cpython/blob/v3.11.7/Lib/zipfile.py#L1582-L1591); Java's
    // ZipInputStream sees only the local header, central-directory readers only the central
    // record, so a difference gives two readers two archives.
    if (!lName.equals(c.nameBytes)) problems.push(`local-central: ${where} local name differs from the central one`);
    if (lVersion !== c.version) problems.push(`local-central: ${where} version needed ${lVersion} local, ${c.version} central`);
    if (lFlags !== c.flags) problems.push(`local-central: ${where} flags 0x${lFlags.toString(16)} local, 0x${c.flags.toString(16)} central`);
    if (lMethod !== c.method) problems.push(`local-central: ${where} method ${lMethod} local, ${c.method} central`);
    if (lTime !== c.time || lDate !== c.date) problems.push(`local-central: ${where} DOS time differs`);

    // Rule flags: only bit 3 (descriptor), bit 11 (UTF-8) and, for AES entries, bit 0.
    const allowed = 0x0808 | (encrypted ? 0x0001 : 0);
    if ((c.flags & ~allowed) !== 0) problems.push(`flags: ${where} sets general-purpose bits 0x${(c.flags & ~allowed).toString(16)}`);
    if (encrypted !== ((c.flags & 1) !== 0)) problems.push(`flags: ${where} encryption bit ${c.flags & 1} for method ${c.method}`);

    // Rule utf8-flag: bit 11 iff the name is not ASCII, and names are NFC. Info-ZIP decodes a
    // name without bit 11 in the OEM code page (CP437) and so mangles UTF-8
    // (https://github.com/madler/unzip/blob/0b82c20ac7375b522215b567174f370be89a4b12/process.c#L1763-L1764,
    // APPNOTE appendix D), as Windows Explorer does (https://github.com/brendan-duncan/archive/pull/175);
    // Go sets the flag only where needed for the same reason
    // (https://github.com/golang/go/blob/go1.19.8/src/archive/zip/writer.go#L285-L299). NFD
    // names (as macOS writes them) show as other names on Windows
    // (https://github.com/Zimbra/zm-mailbox/pull/385).
    const ascii = c.nameBytes.every((b) => b < 0x80);
    if (((c.flags & 0x0800) !== 0) === ascii) problems.push(`utf8-flag: ${where} bit 11 is ${ascii ? "set on an ASCII name" : "clear on a non-ASCII name"}`);
    if (!ascii && Buffer.from(c.name, "utf8").compare(c.nameBytes) !== 0) problems.push(`utf8-flag: ${where} name is not valid UTF-8`);
    if (c.name.normalize("NFC") !== c.name) problems.push(`utf8-flag: ${where} name is not in NFC`);
    // Rule names: relative, forward slashes, no "." or ".." segments, unique: Go's archive/zip
    // reports ErrInsecurePath for such names (https://github.com/golang/go/issues/55356) and
    // readers resolve duplicates differently (the first, the last, or a rename).
    if (c.name.startsWith("/") || c.name.includes("\\") || c.name.split("/").some((s, k, all) => s === ".." || s === "." || (s === "" && k < all.length - 1)))
      problems.push(`names: ${where} is not a clean relative path`);
    if (names.has(c.name)) problems.push(`names: ${where} appears twice`);
    names.add(c.name);

    // Rule dos-date: a valid DOS date and time (month 1–12, a day the month has, 0–23 h,
    // 0–59 min, 0–58 s, year ≥ 1980; the ranges of DosDateTimeToFileTime,
    // https://learn.microsoft.com/en-us/windows/win32/api/winbase/nf-winbase-dosdatetimetofiletime).
    // Python's zipfile hands month 0 on and datetime() raises ValueError downstream
    // (https://github.com/ansible/ansible/issues/81092); rubyzip raises "mon out of range"
    // (https://github.com/rubyzip/rubyzip/issues/673); Java and Go roll invalid dates over to other days.
    if (!validDos(c.time, c.date)) problems.push(`dos-date: ${where} has an invalid DOS date/time 0x${c.date.toString(16)}/0x${c.time.toString(16)}`);

    // Rule unix-mode: "version made by" Unix (3) with the mode in the high 16 bits of the
    // external attributes, matching the entry's kind. Info-ZIP applies `attr >> 16` as it is:
    // a mode of 0 makes unreadable files
    // (https://github.com/madler/unzip/blob/0b82c20ac7375b522215b567174f370be89a4b12/unix/unix.c#L350-L380,
    // https://github.com/ZipArchive/ZipArchive/pull/762); Go reads modes only from Unix or
    // macOS hosts (https://github.com/golang/go/blob/go1.19.8/src/archive/zip/struct.go#L286-L297);
    // with an MS-DOS host Debian's UnZip converts UTF-8 names from a DOS code page.
    if (c.versionMadeBy >> 8 !== 3) problems.push(`unix-mode: ${where} made by host ${c.versionMadeBy >> 8}, want 3 (Unix)`);
    if ((c.versionMadeBy & 0xff) < c.version) problems.push(`unix-mode: ${where} made by spec ${c.versionMadeBy & 0xff} below version needed ${c.version}`);
    const mode = c.external >>> 16;
    if ((mode & 0o170000) !== (isDir ? 0o040000 : 0o100000))
      problems.push(`unix-mode: ${where} mode 0${mode.toString(8)} is not a ${isDir ? "folder" : "regular file"}`);
    if (((c.external & 0x10) !== 0) !== isDir) problems.push(`unix-mode: ${where} MS-DOS folder attribute does not match`);

    // Rule dirs-and-empty: folders end in "/", are stored with size 0 and CRC 0 and no
    // descriptor; zero-byte files are stored (method 0) with no descriptor (APPNOTE 4.3.8; Go's
    // writer does exactly this, https://github.com/golang/go/blob/go1.19.8/src/archive/zip/writer.go#L341-L353).
    // A stored entry with a descriptor stops Java's ZipInputStream ("only DEFLATED entries can
    // have EXT descriptor", https://github.com/openjdk/jdk25u/blob/jdk-25.0.3%2B9/src/java.base/share/classes/java/util/zip/ZipInputStream.java#L541-L546);
    // a folder entry with data becomes a file in adm-zip and yauzl (adm-zip zipEntry.js L250-L253 at 094d08c).
    if (isDir && (c.size !== 0 || c.csize !== 0 || c.crc !== 0 || c.method !== 0 || descriptor))
      problems.push(`dirs-and-empty: folder ${where} is not stored empty without descriptor`);
    if (!isDir && c.size === 0 && !encrypted && (c.method !== 0 || descriptor))
      problems.push(`dirs-and-empty: empty file ${where} is not stored without descriptor`);
    if (c.method === 0 && c.csize !== c.size) problems.push(`local-central: stored ${where} has compressed size ${c.csize} ≠ size ${c.size}`);
    // Rule method: stored or deflated only (AES entries: method 99, checked with `encrypted`).
    if (![0, 8].includes(c.method) && !encrypted) problems.push(`method: ${where} uses method ${c.method}`);

    // Rule version-needed: exactly what the entry needs (APPNOTE 4.4.3.2): 1.0 stored file,
    // 2.0 folder or deflate, 4.5 zip64, 5.1 AES. A needless 4.5 made macOS Archive Utility
    // refuse archives (https://github.com/thejoshwolfe/yazl/issues/24, fixed in yazl@0313c5e);
    // a missing 4.5 on a zip64 entry makes Microsoft's System.IO.Packaging refuse it
    // (https://github.com/dotnet/corefx/issues/36013, https://github.com/dotnet/runtime/pull/103006);
    // Python refuses versions above what it supports (Lib/zipfile.py#L1418-L1420 at v3.11.7).
    const needsZip64 = c.size >= MAX_32 || c.csize >= MAX_32 || c.offset >= MAX_32;
    const expected = encrypted ? 51 : needsZip64 ? 45 : isDir || c.method === 8 ? 20 : 10;
    if (c.version !== expected) problems.push(`version-needed: ${where} says ${c.version}, the entry needs ${expected}`);

    // Local zip64 extra: both sizes (APPNOTE 4.5.3), present iff a size needs 64 bits.
    const lz = lExtras.find((e) => e.id === ID_ZIP64);
    const bigSizes = c.size >= MAX_32 || c.csize >= MAX_32;
    if (lz !== undefined) {
      if (!bigSizes) problems.push(`zip64-fields: ${where} local zip64 extra although both sizes fit 32 bits`);
      if (lz.data.length !== 16) problems.push(`zip64-fields: ${where} local zip64 extra holds ${lz.data.length} bytes, want 16 (both sizes)`);
      if (lSize !== MAX_32 || lCsize !== MAX_32) problems.push(`zip64-fields: ${where} local sizes not 0xFFFFFFFF beside a zip64 extra`);
      if (lz.data.length >= 16) {
        lSize = Number(lz.data.readBigUInt64LE(0));
        lCsize = Number(lz.data.readBigUInt64LE(8));
      }
    } else if (bigSizes) problems.push(`zip64-fields: ${where} has a size of 4 GiB or more without a local zip64 extra`);

    // Extended timestamp (UT): well formed, the same mtime in both records (Info-ZIP's
    // proginfo/extrafld.txt; Info-ZIP and 7-Zip take exact times from it).
    const lt = lExtras.find((e) => e.id === ID_TIMESTAMP);
    const ct = c.extras.find((e) => e.id === ID_TIMESTAMP);
    if ((lt === undefined) !== (ct === undefined)) problems.push(`local-central: ${where} timestamp extra in one record only`);
    if (lt && ct) {
      if (ct.data.length !== 5 || (ct.data[0] as number) !== 1) problems.push(`extra-format: ${where} central UT extra is not mtime-only`);
      if (lt.data.length < 5 || ct.data.length < 5 || lt.data.readInt32LE(1) !== ct.data.readInt32LE(1))
        problems.push(`local-central: ${where} UT mtimes differ`);
    }
    for (const e of [...lExtras, ...c.extras]) {
      if (![ID_ZIP64, ID_TIMESTAMP, ...(encrypted ? [ID_AES] : [])].includes(e.id))
        problems.push(`extra-format: ${where} carries an unexpected extra 0x${e.id.toString(16)}`);
    }

    // Rule descriptor: bit 3 iff a data descriptor follows; then the local CRC and sizes are
    // zero, the descriptor has its signature, and 8-byte sizes iff the local header has a
    // zip64 extra (with 0xFFFFFFFF in its size fields). Java's ZipInputStream reads 8-byte
    // descriptor sizes only in that case
    // (https://github.com/openjdk/jdk25u/blob/jdk-25.0.3%2B9/src/java.base/share/classes/java/util/zip/ZipInputStream.java#L532-L551);
    // a 16-byte descriptor after a zip64 entry broke readers
    // (https://github.com/archiverjs/node-compress-commons/issues/33); macOS Archive Utility
    // needs the signature (https://github.com/thejoshwolfe/yazl/blob/b1a040987aaed1025d551c3326b8bbe9a0daa043/README.md?plain=1#L361-L363);
    // adm-zip compares the descriptor with the central record and cannot read 8-byte ones
    // (zipEntry.js crc32OK, L31-L72 at 094d08c). Safari's auto-unzip keeps only the first file
    // of archives with zeroed local headers (https://github.com/maennchen/ZipStream-PHP/issues/164):
    // the classic form avoids it.
    if (descriptor) {
      if (lCrc !== 0 || lSize !== 0 || lCsize !== 0) problems.push(`descriptor: ${where} has bit 3 but CRC or sizes in its local header`);
    } else {
      if (lCrc !== c.crc) problems.push(`local-central: ${where} local CRC ${lCrc.toString(16)} ≠ central ${c.crc.toString(16)}`);
      if (lSize !== c.size || lCsize !== c.csize) problems.push(`local-central: ${where} local sizes ${lSize}/${lCsize} ≠ central ${c.size}/${c.csize}`);
    }

    // Data: every byte read, its CRC (or, deflated, the inflated bytes' CRC) checked.
    if (!encrypted) await checkData(bytes, dataAt, c, where, problems);
    at = dataAt + c.csize;
    if (descriptor) {
      const wide = lz !== undefined;
      const d = await bytes.read(at, wide ? 24 : 16);
      if (d.readUInt32LE(0) !== SIG_DESCRIPTOR) problems.push(`descriptor: ${where} descriptor without its signature`);
      else {
        const dCrc = d.readUInt32LE(4);
        const dC = wide ? Number(d.readBigUInt64LE(8)) : d.readUInt32LE(8);
        const dS = wide ? Number(d.readBigUInt64LE(16)) : d.readUInt32LE(12);
        if (dCrc !== c.crc || dC !== c.csize || dS !== c.size)
          problems.push(`descriptor: ${where} descriptor ${dCrc.toString(16)}/${dC}/${dS} ≠ central ${c.crc.toString(16)}/${c.csize}/${c.size}`);
      }
      at += wide ? 24 : 16;
    }
    entries.push({
      name: c.name,
      dir: isDir,
      method: c.method,
      classic: !isDir && !descriptor,
      size: c.size,
      compressedSize: c.csize,
      crc: c.crc,
      offset: c.offset,
    });
  }
  if (at !== cdStart) problems.push(`layout-gaps: the last entry ends at ${at}, the central directory starts at ${cdStart}`);
  if (problems.length > 0) throw new ZipRuleError(problems);
  return { entries, zip64End, length: total };
}

const PIECE = 1024 * 1024;

async function checkData(bytes: Bytes, at: number, c: Central, where: string, problems: string[]): Promise<void> {
  if (c.method === 0) {
    let crc = 0;
    for (let p = 0; p < c.csize; p += PIECE) {
      const piece = await bytes.read(at + p, Math.min(PIECE, c.csize - p));
      if (piece.length === 0) break;
      crc = crc32(piece, crc);
    }
    if (crc >>> 0 !== c.crc) problems.push(`data: ${where} data CRC ${(crc >>> 0).toString(16)} ≠ recorded ${c.crc.toString(16)}`);
    return;
  }
  if (c.method !== 8) return;
  const inflate = createInflateRaw();
  let crc = 0;
  let size = 0;
  inflate.on("data", (chunk: Buffer) => {
    crc = crc32(chunk, crc);
    size += chunk.length;
  });
  const done = new Promise<void>((resolve, reject) => {
    inflate.once("end", resolve);
    inflate.once("error", reject);
  });
  try {
    for (let p = 0; p < c.csize; p += PIECE) {
      const piece = await bytes.read(at + p, Math.min(PIECE, c.csize - p));
      if (!inflate.write(piece)) await new Promise((r) => inflate.once("drain", r));
    }
    inflate.end();
    await done;
  } catch (err) {
    problems.push(`data: ${where} deflate stream is broken: ${(err as Error).message}`);
    return;
  }
  if (size !== c.size) problems.push(`data: ${where} inflates to ${size} bytes, recorded ${c.size}`);
  if (crc >>> 0 !== c.crc) problems.push(`data: ${where} inflated CRC ${(crc >>> 0).toString(16)} ≠ recorded ${c.crc.toString(16)}`);
}
