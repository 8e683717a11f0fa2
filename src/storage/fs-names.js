// @ts-check
// File names that are not valid UTF-8, carried in string keys the way Python's
// "surrogateescape" does: each byte that is not part of valid UTF-8 becomes the lone
// surrogate U+DC80..U+DCFF, which no decoded name contains. A key made this way names
// exactly its file again (the bytes come back), and an archive entry name made from it
// is valid and stable (each escape becomes U+FFFD there). Used by the folder store's main
// thread and its worker threads alike, so plain JavaScript.

/** A lone low surrogate of the escape range (not the second half of a pair). */
const ESCAPE = /(?<![\ud800-\udbff])[\udc80-\udcff]/;

/**
 * The name of a file as a string key: its UTF-8, or escapes for the bytes that are not.
 * @param {Buffer} raw
 * @returns {string}
 */
export function fromRaw(raw) {
  const text = raw.toString("utf8");
  if (!text.includes("\ufffd") || Buffer.from(text).equals(raw)) return text;
  let out = "";
  let i = 0;
  while (i < raw.length) {
    const n = sequenceLength(raw, i);
    if (n === 0) {
      out += String.fromCharCode(0xdc00 + /** @type {number} */ (raw[i]));
      i += 1;
    } else {
      out += raw.toString("utf8", i, i + n);
      i += n;
    }
  }
  return out;
}

/**
 * The path to give the file system for a key's path: the string itself, or the bytes
 * when it holds escapes.
 * @param {string} path
 * @returns {string | Buffer}
 */
export function toRaw(path) {
  if (!ESCAPE.test(path)) return path;
  /** @type {Buffer[]} */
  const parts = [];
  let run = "";
  for (let i = 0; i < path.length; i++) {
    const unit = path.charCodeAt(i);
    const pairedLow = i > 0 && unit >= 0xdc00 && unit <= 0xdfff && isHigh(path.charCodeAt(i - 1));
    if (unit >= 0xdc80 && unit <= 0xdcff && !pairedLow) {
      parts.push(Buffer.from(run), Buffer.from([unit - 0xdc00]));
      run = "";
    } else {
      run += path[i];
    }
  }
  parts.push(Buffer.from(run));
  return Buffer.concat(parts);
}

/** @param {number} unit */
function isHigh(unit) {
  return unit >= 0xd800 && unit <= 0xdbff;
}

/**
 * Length of the valid UTF-8 sequence starting at `i`, or 0 when the byte there starts none.
 * @param {Buffer} b
 * @param {number} i
 */
function sequenceLength(b, i) {
  const c = /** @type {number} */ (b[i]);
  if (c < 0x80) return 1;
  const cont = (/** @type {number} */ k) => i + k < b.length && ((b[i + k] ?? 0) & 0xc0) === 0x80;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (!cont(1) || !cont(2)) return 0;
    const c1 = /** @type {number} */ (b[i + 1]);
    if ((c === 0xe0 && c1 < 0xa0) || (c === 0xed && c1 >= 0xa0)) return 0; // overlong, surrogates
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    const c1 = /** @type {number} */ (b[i + 1]);
    if ((c === 0xf0 && c1 < 0x90) || (c === 0xf4 && c1 >= 0x90)) return 0;
    return 4;
  }
  return 0;
}
