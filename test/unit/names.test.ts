import { describe, expect, it } from "vitest";
import { collisionKey, NameAllocator, numbered, safeSegment, safeSegments } from "../../src/archive/names.js";

describe("safe names", () => {
  it("drops absolute roots, drive letters, . and .. segments; treats backslashes as separators", () => {
    expect(safeSegments("/etc/passwd")).toEqual(["etc", "passwd"]);
    expect(safeSegments("../../x")).toEqual(["x"]);
    expect(safeSegments("C:\\Users\\me\\file.txt", true)).toEqual(["Users", "me", "file.txt"]);
    expect(safeSegments("a/./b//c")).toEqual(["a", "b", "c"]);
  });

  it("replaces control characters and characters Windows cannot store", () => {
    expect(safeSegment("a\u0000b\u001fc")).toBe("a_b_c");
    expect(safeSegment('x<y>z:"|?*')).toBe("x_y_z_____");
    expect(safeSegment("trailing. ")).toBe("trailing__");
    expect(safeSegment("CON")).toBe("_CON");
    expect(safeSegment("lpt1.txt")).toBe("_lpt1.txt");
    expect(safeSegment("..")).toBe("_");
  });

  it("keeps unicode, normalised to NFC", () => {
    expect(safeSegment("Cafe\u0301")).toBe("Café");
  });

  it("caps a segment at 255 bytes without splitting a character", () => {
    const s = safeSegment("é".repeat(200));
    expect(Buffer.byteLength(s)).toBeLessThanOrEqual(255);
    expect(s).toBe("é".repeat(127));
  });
});

describe("conflict renaming", () => {
  it("keeps the first name and numbers later ones before the extension", () => {
    const names = new NameAllocator();
    expect(names.place(["report.pdf"], "file", 0, "shared").path).toBe("report.pdf");
    expect(names.place(["report.pdf"], "file", 1, "shared").path).toBe("report (1).pdf");
    expect(names.place(["Report.PDF"], "file", 2, "shared").path).toBe("Report (2).PDF");
    expect(names.place([".bashrc"], "file", 3, "shared").path).toBe(".bashrc");
    expect(names.place([".bashrc"], "file", 4, "shared").path).toBe(".bashrc (1)");
    expect(names.renames.map((r) => r.given)).toEqual(["report (1).pdf", "Report (2).PDF", ".bashrc (1)"]);
  });

  it("renames a file that collides with a directory, and a folder that collides with a file", () => {
    const names = new NameAllocator();
    names.place(["docs"], "dir", 0, 0);
    expect(names.place(["docs"], "file", 1, "shared").path).toBe("docs (1)");
    names.place(["photos"], "file", 2, "shared");
    expect(names.place(["photos"], "dir", 3, 3).path).toBe("photos (1)/");
  });

  it("gives two folders of the same name separate directories", () => {
    const names = new NameAllocator();
    expect(names.place(["docs"], "dir", 0, 0).path).toBe("docs/");
    expect(names.place(["docs"], "dir", 1, 1).path).toBe("docs (1)/");
    expect(names.place(["docs", "a.txt"], "file", 1, 1).path).toBe("docs (1)/a.txt");
    expect(names.place(["docs", "a.txt"], "file", 0, 0).path).toBe("docs/a.txt");
  });

  it("never mixes two folders of one item: a literal `a (1)` stays apart from the renamed `A`", () => {
    const names = new NameAllocator();
    expect(names.place(["top", "a"], "file", 0, 0).path).toBe("top/a");
    expect(names.place(["top", "A", "x"], "file", 0, 0).path).toBe("top/A (1)/x");
    expect(names.place(["top", "A", "y"], "file", 0, 0).path).toBe("top/A (1)/y");
    expect(names.place(["top", "a (1)", "x"], "file", 0, 0).path).toBe("top/a (1) (1)/x");
    expect(names.renames.map((r) => r.given)).toEqual(["top/A (1)/x", "top/a (1) (1)/x"]);
  });

  it("merges directories of names given as paths, and case variants inside one folder", () => {
    const names = new NameAllocator();
    expect(names.place(["dir", "a.txt"], "file", 0, "shared").path).toBe("dir/a.txt");
    expect(names.place(["dir", "b.txt"], "file", 1, "shared").path).toBe("dir/b.txt");
    names.place(["f"], "dir", 2, 2);
    expect(names.place(["f", "Sub"], "dir", 2, 2)).toEqual({ path: "f/Sub/", existed: false });
    expect(names.place(["f", "sub"], "dir", 2, 2)).toEqual({ path: "f/Sub/", existed: true });
    expect(names.place(["f", "sub", "x"], "file", 2, 2).path).toBe("f/Sub/x");
    expect(names.place(["f", "SUB", "X"], "file", 2, 2).path).toBe("f/Sub/X (1)");
  });

  it("is deterministic: the same input gives the same names", () => {
    const run = () => {
      const names = new NameAllocator();
      return ["a", "A", "a", "b.txt", "B.TXT"].map((n, i) => names.place([n], "file", i, "shared").path);
    };
    expect(run()).toEqual(run());
    expect(run()).toEqual(["a", "A (1)", "a (2)", "b.txt", "B (1).TXT"]);
  });
});

describe("faithful, well-formed names", () => {
  it("strips a drive letter only from a name a client gave, never from a stored object's", () => {
    expect(safeSegments("C:/x.txt", true)).toEqual(["x.txt"]);
    expect(safeSegments("C:")).toEqual(["C_"]);
    expect(safeSegments("D:/normal.txt")).toEqual(["D_", "normal.txt"]);
  });

  it("makes lone surrogates U+FFFD, so names that would encode alike clash and are renamed", () => {
    const names = new NameAllocator();
    const a = safeSegment("x\ud800.txt");
    const b = safeSegment("x\udbff.txt");
    expect(a).toBe("x\ufffd.txt");
    expect(names.place([a], "file", 0, "shared").path).toBe("x\ufffd.txt");
    expect(names.place([b], "file", 1, "shared").path).toBe("x\ufffd (1).txt");
    expect(Buffer.from(a).toString("utf8")).toBe(a);
  });

  it("replaces bidi controls and invisible characters", () => {
    for (const ch of ["\u202e", "\u200b", "\ufeff", "\u2066", "\u200f", "\u00ad"]) expect(safeSegment(`a${ch}b`)).toBe("a_b");
  });

  it("reserves CONIN$, CONOUT$ and CLOCK$ like the other device names", () => {
    expect(safeSegment("CONIN$")).toBe("_CONIN$");
    expect(safeSegment("conout$.txt")).toBe("_conout$.txt");
    expect(safeSegment("CLOCK$")).toBe("_CLOCK$");
  });

  it("compares names under full case folding", () => {
    for (const [x, y] of [
      ["σ.txt", "ς.txt"],
      ["ſ.txt", "s.txt"],
      ["µ.txt", "μ.txt"],
      ["Straße", "STRASSE"],
    ]) {
      const names = new NameAllocator();
      names.place([x as string], "file", 0, "shared");
      expect(names.place([y as string], "file", 1, "shared").path).not.toBe(y);
    }
  });

  it("keeps every segment at most 255 bytes after renaming, and never ending in a dot or space", () => {
    const long = "a".repeat(300);
    const names = new NameAllocator();
    const first = names.place([safeSegment(long)], "file", 0, "shared").path;
    const second = names.place([safeSegment(long)], "file", 1, "shared").path;
    expect(Buffer.byteLength(first)).toBe(255);
    expect(Buffer.byteLength(second)).toBeLessThanOrEqual(255);
    expect(second).toMatch(/ \(1\)$/);
    // Cut at 255 bytes right after a dot: the dot rule applies to the cut name.
    const dotted = safeSegment(`${"b".repeat(254)}.xyyy`);
    expect(Buffer.byteLength(dotted)).toBe(255);
    expect(dotted).not.toMatch(/[. ]$/);
    const withExt = names.place([safeSegment(`${"c".repeat(251)}.pdf`)], "file", 2, "shared").path;
    const clash = names.place([safeSegment(`${"c".repeat(251)}.pdf`)], "file", 3, "shared").path;
    expect(withExt.endsWith(".pdf")).toBe(true);
    expect(clash.endsWith(" (1).pdf")).toBe(true);
    expect(Buffer.byteLength(clash)).toBeLessThanOrEqual(255);
    const stemDot = names.place([safeSegment(`${"d".repeat(249)}.e.pdf`)], "file", 4, "shared").path;
    const stemDotClash = names.place([safeSegment(`${"d".repeat(249)}.e.pdf`)], "file", 5, "shared").path;
    expect(stemDot.endsWith(".pdf")).toBe(true);
    expect(stemDotClash).not.toMatch(/\. \(1\)\.pdf$/);
  });
});

describe("linear renaming", () => {
  /**
   * The allocator's rule written the slow way, the reference: a directory merges into the one
   * its owner got for the same wanted name; otherwise try ` (1)`, ` (2)`… from 1 every time.
   */
  function reference() {
    type Node = { kind: "dir"; name: string; owner: number | "shared"; children: Map<string, Node> } | { kind: "file" };
    const root: Node = { kind: "dir", name: "", owner: "shared", children: new Map() };
    const merged = new Map<Node, Map<string, string>>();
    return (segments: string[], kind: "file" | "dir", dirOwner: number | "shared"): string => {
      let dir = root;
      const given: string[] = [];
      segments.forEach((wanted, i) => {
        const isDir = i < segments.length - 1 || kind === "dir";
        const mergeKey = `${dirOwner}/${collisionKey(wanted)}`;
        let name = isDir ? merged.get(dir)?.get(mergeKey) : undefined;
        if (name === undefined) {
          name = wanted;
          for (let n = 1; dir.children.has(collisionKey(name)); n++) name = numbered(wanted, n, isDir);
          if (isDir) merged.set(dir, (merged.get(dir) ?? new Map()).set(mergeKey, name));
        }
        let node = dir.children.get(collisionKey(name));
        if (!node) {
          node = isDir ? { kind: "dir", name, owner: dirOwner, children: new Map() } : { kind: "file" };
          dir.children.set(collisionKey(name), node);
        }
        given.push(node.kind === "dir" ? node.name : name);
        if (node.kind === "dir") dir = node;
      });
      return given.join("/") + (kind === "dir" ? "/" : "");
    };
  }

  it("gives the names the one-at-a-time rule gives, on random trees of clashing names", () => {
    // Seeded so a failure reproduces; names clash by case and by numbering ("a (1)" asked for literally).
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const pool = ["a", "A", "a (1)", "a (2)", "b.txt", "B.TXT", "b (1).txt", "dir", "Dir", "dir (1)"];
    for (let round = 0; round < 200; round++) {
      const fast = new NameAllocator();
      const slow = reference();
      for (let i = 0; i < 60; i++) {
        const depth = 1 + rand(3);
        const segments = Array.from({ length: depth }, () => pool[rand(pool.length)] as string);
        const kind = rand(4) === 0 ? "dir" : "file";
        const owner = rand(3) === 0 ? "shared" : rand(4);
        let expected: string | Error;
        try {
          expected = slow(segments, kind, owner);
        } catch (e) {
          expected = e as Error;
        }
        expect(fast.place(segments, kind, i, owner).path, `round ${round}, entry ${i}: ${segments.join("/")}`).toBe(expected);
      }
    }
  });

  it("numbers 10,000 equal names in one pass: (1) to (9999), each name once", () => {
    const names = new NameAllocator();
    const long = `${"n".repeat(236)}.bin`;
    const given = Array.from({ length: 10_000 }, (_, i) => names.place([long], "file", i, "shared").path);
    expect(new Set(given.map(collisionKey)).size).toBe(10_000);
    expect(given[1]).toBe(`${"n".repeat(236)} (1).bin`);
    expect(given[9999]).toBe(`${"n".repeat(236)} (9999).bin`);
    for (const g of given) expect(Buffer.byteLength(g)).toBeLessThanOrEqual(255);
  });
});
