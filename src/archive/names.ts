/**
 * Entry names: made safe for every unzipper and every file system, and made
 * unique with one deterministic rule that the archive and every API report
 * (such as Box's `name_conflicts`) share.
 */

const WINDOWS_FORBIDDEN = /[<>:"|?*\\]/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it removes
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
const RESERVED_DEVICE = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$/i;
const MAX_SEGMENT_BYTES = 255;

/** Makes one path segment safe: no separators, control or Windows-forbidden characters. */
export function safeSegment(segment: string): string {
  let s = segment.normalize("NFC").replace(CONTROL, "_").replace(WINDOWS_FORBIDDEN, "_");
  if (s === "" || s === "." || s === "..") return "_";
  // Windows drops trailing dots and spaces, which would merge distinct names.
  s = s.replace(/[. ]+$/, (m) => "_".repeat(m.length));
  if (RESERVED_DEVICE.test(s)) s = `_${s}`;
  return truncateUtf8(s, MAX_SEGMENT_BYTES);
}

function truncateUtf8(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s) <= maxBytes) return s;
  let out = "";
  for (const ch of s) {
    if (Buffer.byteLength(out + ch) > maxBytes) break;
    out += ch;
  }
  return out;
}

/**
 * Splits a requested entry name into safe segments. Both `/` and `\` are
 * separators; empty, `.` and `..` segments are dropped, so no name can be
 * absolute or climb out of the extraction folder. A leading drive letter
 * (`C:`) is dropped too.
 */
export function safeSegments(name: string): string[] {
  const parts = name.split(/[/\\]+/).filter((p) => p !== "" && p !== "." && p !== "..");
  if (parts.length > 0 && /^[a-zA-Z]:$/.test(parts[0] as string)) parts.shift();
  return parts.map(safeSegment);
}

/** The key two names collide on: case-insensitive, Unicode-normalised (macOS, Windows). */
export function collisionKey(name: string): string {
  return name.normalize("NFC").toLowerCase();
}

/** `report (1).pdf`, `docs (2)`: the n-th alternative for a taken name. */
export function numbered(name: string, n: number, isDir: boolean): string {
  const dot = name.lastIndexOf(".");
  if (isDir || dot <= 0) return `${name} (${n})`;
  return `${name.slice(0, dot)} (${n})${name.slice(dot)}`;
}

interface DirNode {
  kind: "dir";
  /** The spelling the directory was given first. */
  name: string;
  /** The item that owns this directory; implicit directories (from `name` paths) are shared. */
  owner: number | "shared";
  children: Map<string, DirNode | FileNode>;
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
      let name = wanted;
      for (let n = 1; ; n++) {
        const existing = dir.children.get(collisionKey(name));
        if (!existing) break;
        if (wantKind === "dir" && existing.kind === "dir" && existing.owner === dirOwner) break;
        name = numbered(wanted, n, wantKind === "dir");
      }
      if (name !== wanted) renamed = true;
      const key = collisionKey(name);
      let node = dir.children.get(key);
      existed = node !== undefined;
      if (!node) {
        node = wantKind === "dir" ? { kind: "dir", name, owner: dirOwner, children: new Map() } : { kind: "file" };
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
