import { describe, expect, it } from "vitest";
import { fromRaw, toRaw } from "../../src/storage/fs-names.js";

describe("file names that are not UTF-8, escaped in string keys", () => {
  it("leaves valid UTF-8 as it is, U+FFFD included", () => {
    for (const name of ["plain.txt", "Grüße.txt", "日本語", "emoji 🎉", "real \ufffd char"]) {
      expect(fromRaw(Buffer.from(name))).toBe(name);
      expect(toRaw(name)).toBe(name);
    }
  });

  it("gives every byte sequence back exactly: invalid, truncated, overlong and surrogate encodings", () => {
    const samples = [
      [0x72, 0xe9, 0x73, 0x75, 0x6d, 0xe9],
      [0xff, 0xfe, 0x41],
      [0xc3],
      [0xe2, 0x82],
      [0xc0, 0xaf],
      [0xed, 0xa0, 0x80],
      [0xf4, 0x90, 0x80, 0x80],
      [0x61, 0xf0, 0x9f, 0x8e, 0x89, 0x80, 0x62],
    ];
    for (const bytes of samples) {
      const raw = Buffer.from(bytes);
      const key = fromRaw(raw);
      expect(Buffer.from(key).equals(raw)).toBe(false);
      expect(Buffer.isBuffer(toRaw(key))).toBe(true);
      expect((toRaw(key) as Buffer).equals(raw)).toBe(true);
      expect(toRaw(`dir/${key}/x`)).toEqual(Buffer.concat([Buffer.from("dir/"), raw, Buffer.from("/x")]));
    }
  });
});
