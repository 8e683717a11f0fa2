import { randomBytes } from "node:crypto";

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A lower-case UUIDv4, as zipball and object ids are made. */
export function isUuidV4(text: string): boolean {
  return UUID_V4.test(text);
}

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A lower-case UUIDv7, as job ids are made (`uuidv7`). */
export function isUuidV7(text: string): boolean {
  return UUID_V7.test(text);
}

/** The last UUIDv7 made by this process: its millisecond, and the 12-bit counter after it. */
let lastMs = 0;
let counter = 0;

/**
 * A UUIDv7: time-ordered, so the store's key order is creation order and listing newest
 * first needs no index. Within one millisecond (or if the clock steps back) the 12 bits
 * after the time count up (RFC 9562, method 1), so ids of one process never tie or invert.
 */
export function uuidv7(now = Date.now()): string {
  let ms = now;
  if (ms > lastMs) {
    lastMs = ms;
    counter = randomBytes(2).readUInt16BE(0) & 0x3ff; // room to count before it overflows
  } else {
    ms = lastMs;
    counter += 1;
    if (counter > 0xfff) {
      lastMs += 1;
      ms = lastMs;
      counter = 0;
    }
  }
  const bytes = randomBytes(16);
  bytes.writeUIntBE(ms, 0, 6);
  bytes[6] = 0x70 | (counter >> 8);
  bytes[7] = counter & 0xff;
  bytes[8] = ((bytes[8] as number) & 0x3f) | 0x80;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
