import { randomBytes } from "node:crypto";
import * as zlib from "node:zlib";
import { describe, expect, it } from "vitest";
import { crc32, crc32Source } from "../../src/util/crc32.js";

describe("crc32", () => {
  it("uses the native implementation on the platforms CI runs on", () => {
    // linux-x64 and linux-arm64 (glibc) have prebuilt binaries; losing them costs ~6× CPU per byte.
    if (process.platform === "linux" && (process.arch === "x64" || process.arch === "arm64")) expect(crc32Source).toBe("native");
  });

  it("agrees with zlib on whole buffers, chained pieces and odd sizes", () => {
    for (const size of [0, 1, 3, 15, 16, 17, 63, 64, 65, 255, 4096, 65_537, 1_048_579]) {
      const data = randomBytes(size);
      expect(crc32(data)).toBe(zlib.crc32(data));
      let chained = 0;
      for (let at = 0; at < size; at += 1000) chained = crc32(data.subarray(at, at + 1000), chained);
      expect(chained).toBe(zlib.crc32(data));
    }
  });

  it("reads only the view it is given", () => {
    const backing = randomBytes(4096);
    const view = backing.subarray(100, 3100);
    expect(crc32(view, 0x1234_5678)).toBe(zlib.crc32(Buffer.from(view), 0x1234_5678));
  });
});
