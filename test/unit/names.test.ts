import { describe, expect, it } from "vitest";
import { NameAllocator, safeSegment, safeSegments } from "../../src/archive/names.js";

describe("safe names", () => {
  it("drops absolute roots, drive letters, . and .. segments; treats backslashes as separators", () => {
    expect(safeSegments("/etc/passwd")).toEqual(["etc", "passwd"]);
    expect(safeSegments("../../x")).toEqual(["x"]);
    expect(safeSegments("C:\\Users\\me\\file.txt")).toEqual(["Users", "me", "file.txt"]);
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
    expect(names.place(["docs (1)", "a.txt"], "file", 1, 1).path).toBe("docs (1)/a.txt");
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
