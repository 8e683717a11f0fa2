/**
 * Entry names: made safe for every unzipper and every file system, and made
 * unique with one deterministic rule that the archive and every API report
 * (such as Box's `name_conflicts`) share.
 */

const WINDOWS_FORBIDDEN = /[<>:"|?*\\]/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it removes
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
const RESERVED_DEVICE = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$|clock\$)(\..*)?$/i;
/**
 * Characters that show nothing or reorder what is shown: bidi controls (a name that reads
 * `txt.exe` as `exe.txt`), zero-width ones, the BOM, soft hyphens and invisible operators.
 */
const INVISIBLE = /[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]/g;
const MAX_SEGMENT_BYTES = 255;
/** A UTF-16 surrogate without its other half: not encodable in UTF-8. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * Makes one path segment safe: well-formed (a lone surrogate becomes U+FFFD, as it would
 * in UTF-8 anyway), NFC, no separators, control, invisible or Windows-forbidden characters,
 * no trailing dot or space, at most 255 bytes.
 */
export function safeSegment(segment: string): string {
  let s = segment.replace(LONE_SURROGATE, "\ufffd").normalize("NFC").replace(CONTROL, "_").replace(INVISIBLE, "_").replace(WINDOWS_FORBIDDEN, "_");
  if (s === "" || s === "." || s === "..") return "_";
  if (RESERVED_DEVICE.test(s)) s = `_${s}`;
  return windowsEnd(truncateUtf8(s, MAX_SEGMENT_BYTES));
}

/** Windows drops trailing dots and spaces, which would merge distinct names. */
function windowsEnd(s: string): string {
  return s.replace(/[. ]+$/, (m) => "_".repeat(m.length));
}

function truncateUtf8(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s) <= maxBytes) return s;
  // One pass over the code points (a lone surrogate is already U+FFFD, 3 bytes).
  let bytes = 0;
  let end = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0) as number;
    const size = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (bytes + size > maxBytes) break;
    bytes += size;
    end += ch.length;
  }
  return s.slice(0, end);
}

/**
 * Splits a requested entry name into safe segments. Both `/` and `\` are
 * separators; empty, `.` and `..` segments are dropped, so no name can be
 * absolute or climb out of the extraction folder. A leading drive letter
 * (`C:`) is dropped from a name a client gave (`given`); in a stored object's
 * own name it is an ordinary segment (made `C_`), never a reason to lose it.
 */
export function safeSegments(name: string, given = false): string[] {
  const parts = name.split(/[/\\]+/).filter((p) => p !== "" && p !== "." && p !== "..");
  if (given && parts.length > 0 && /^[a-zA-Z]:$/.test(parts[0] as string)) parts.shift();
  return parts.map(safeSegment);
}

/**
 * The key two names collide on, as case-insensitive file systems (macOS, Windows) see
 * them: NFC, then case folded in full (upper then lower: ß and SS, ς and σ, ſ and s,
 * µ and μ meet), then NFC again.
 */
export function collisionKey(name: string): string {
  return name.normalize("NFC").toUpperCase().toLowerCase().normalize("NFC");
}

/**
 * `report (1).pdf`, `docs (2)`: the n-th alternative for a taken name, still at most 255
 * bytes (the stem is shortened) and still not ending in a dot or space.
 */
export function numbered(name: string, n: number, isDir: boolean): string {
  const dot = name.lastIndexOf(".");
  const [stem, ext] = isDir || dot <= 0 ? [name, ""] : [name.slice(0, dot), name.slice(dot)];
  const suffix = ` (${n})${ext}`;
  const room = MAX_SEGMENT_BYTES - Buffer.byteLength(suffix);
  if (room <= 0) return windowsEnd(truncateUtf8(`${stem} (${n})`, MAX_SEGMENT_BYTES));
  return `${windowsEnd(truncateUtf8(stem, room))}${suffix}`;
}

interface DirNode {
  kind: "dir";
  /** The spelling the directory was given first. */
  name: string;
  /** The item that owns this directory; implicit directories (from `name` paths) are shared. */
  owner: number | "shared";
  children: Map<string, DirNode | FileNode>;
  /**
   * Per wanted name (kind and collision key): the next number worth trying. Every
   * smaller one was found taken, and names are never given back, so a run of equal
   * names costs one lookup each instead of one per earlier duplicate.
   */
  next?: Map<string, number>;
  /** Per owner and wanted directory name: the name that owner's directory was given, to merge into. */
  merged?: Map<string, string>;
}
interface FileNode {
  kind: "file";
}

/** A rename made to keep names unique. */
export interface Rename {
  /** Index of the requested item the entry belongs to. */
  item: number;
  /** The name that was wanted, as a full entry path. */
  wanted: string;
  /** The name given. */
  given: string;
  kind: "file" | "dir";
}

/**
 * Allocates unique entry paths in one archive. Entries are placed in order;
 * the first keeps its name and later ones get ` (1)`, ` (2)`… Names compare
 * case-insensitively, and a file never shares a name with a directory.
 */
export class NameAllocator {
  readonly #root: DirNode = { kind: "dir", name: "", owner: "shared", children: new Map() };
  readonly renames: Rename[] = [];

  /**
   * Places an entry. `segments` are already safe; `item` is the requested
   * item it comes from. Directories created on the way belong to `dirOwner`:
   * a folder item passes its own index, so its tree is merged only with
   * itself and any other item's same-named directory is renamed; items named
   * with a path (`dir/file.txt`) pass `"shared"`, so their directories merge.
   * Returns the full path given (directories end with `/`), and whether that
   * directory was already there (merged, so no second entry is needed).
   */
  place(segments: readonly string[], kind: "file" | "dir", item: number, dirOwner: number | "shared"): { path: string; existed: boolean } {
    if (segments.length === 0) throw new RangeError("empty entry name");
    let dir = this.#root;
    const given: string[] = [];
    let renamed = false;
    let existed = false;
    for (let i = 0; i < segments.length; i++) {
      const wantKind = i === segments.length - 1 ? kind : "dir";
      const wanted = segments[i] as string;
      const isDir = wantKind === "dir";
      const wantedKey = `${isDir ? "d" : "f"}\0${collisionKey(wanted)}`;
      const mergeKey = `${dirOwner}\0${wantedKey}`;
      // A directory merges only into the one its owner was given for the same wanted name
      // (any spelling of it): two different folders of one item never mix.
      let name = isDir ? dir.merged?.get(mergeKey) : undefined;
      // Only a name decided here is a rename; entries merged into a renamed directory are not.
      if (name === undefined) {
        // Numbers below `next` were all found taken, and names are never given back.
        let n = dir.next?.get(wantedKey) ?? 1;
        name = n > 1 ? numbered(wanted, n - 1, isDir) : wanted;
        for (; ; n++) {
          const existing = dir.children.get(collisionKey(name));
          if (!existing) break;
          name = numbered(wanted, n, isDir);
        }
        if (n > 1) {
          dir.next ??= new Map();
          dir.next.set(wantedKey, n);
        }
        if (isDir) {
          dir.merged ??= new Map();
          dir.merged.set(mergeKey, name);
        }
        if (name !== wanted) renamed = true;
      }
      const key = collisionKey(name);
      let node = dir.children.get(key);
      existed = node !== undefined;
      if (!node) {
        node = isDir ? { kind: "dir", name, owner: dirOwner, children: new Map() } : { kind: "file" };
        dir.children.set(key, node);
      }
      // A merged directory keeps its first spelling, so one tree never splits by case.
      given.push(node.kind === "dir" ? node.name : name);
      if (node.kind === "dir") dir = node;
    }
    const path = given.join("/") + (kind === "dir" ? "/" : "");
    if (renamed) this.renames.push({ item, wanted: segments.join("/") + (kind === "dir" ? "/" : ""), given: path, kind });
    return { path, existed };
  }
}
