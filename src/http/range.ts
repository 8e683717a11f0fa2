/**
 * Conditional requests and byte ranges (RFC 9110 §13 and §14) for an
 * archive with a strong ETag and a Last-Modified date.
 */

function parseDate(text: string | null): number | undefined {
  if (!text) return undefined;
  const t = Date.parse(text);
  return Number.isNaN(t) ? undefined : Math.floor(t / 1000);
}

function etagList(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

function strongMatch(list: string[], etag: string): boolean {
  return list.some((t) => t === "*" || t === etag);
}

function weakMatch(list: string[], etag: string): boolean {
  const bare = (t: string): string => (t.startsWith("W/") ? t.slice(2) : t);
  return list.some((t) => t === "*" || bare(t) === bare(etag));
}

/** 412, 304 or undefined (go on), in the order RFC 9110 §13.2.2 gives. */
export function evaluatePreconditions(headers: Headers, etag: string, lastModified: Date): 412 | 304 | undefined {
  const modified = Math.floor(lastModified.getTime() / 1000);
  const ifMatch = headers.get("if-match");
  if (ifMatch !== null) {
    if (!strongMatch(etagList(ifMatch), etag)) return 412;
  } else {
    const since = parseDate(headers.get("if-unmodified-since"));
    if (since !== undefined && modified > since) return 412;
  }
  const ifNoneMatch = headers.get("if-none-match");
  if (ifNoneMatch !== null) {
    if (weakMatch(etagList(ifNoneMatch), etag)) return 304;
  } else {
    const since = parseDate(headers.get("if-modified-since"));
    if (since !== undefined && modified <= since) return 304;
  }
  return undefined;
}

/**
 * The single range to serve, `"unsatisfiable"` (416), or undefined for the
 * whole archive: no Range, a Range in another unit or malformed (ignored, as
 * RFC 9110 allows), a stale If-Range, or several ranges (served whole, which
 * RFC 9110 also allows, rather than as multipart/byteranges).
 * Ends are exclusive.
 */
export function parseRange(headers: Headers, total: number, etag: string, lastModified: Date): { start: number; end: number } | "unsatisfiable" | undefined {
  const header = headers.get("range");
  if (!header) return undefined;
  const ifRange = headers.get("if-range");
  if (ifRange !== null) {
    const trimmed = ifRange.trim();
    if (trimmed.startsWith('"') || trimmed.startsWith("W/")) {
      if (trimmed !== etag) return undefined;
    } else if (parseDate(trimmed) !== Math.floor(lastModified.getTime() / 1000)) return undefined;
  }
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(header);
  if (!m) return undefined;
  const specs = (m[1] as string)
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (specs.length === 0) return undefined;
  const ranges: Array<{ start: number; end: number }> = [];
  for (const spec of specs) {
    const r = /^(\d*)\s*-\s*(\d*)$/.exec(spec);
    if (!r || (r[1] === "" && r[2] === "")) return undefined;
    if (r[1] === "") {
      const suffix = Number(r[2]);
      if (suffix === 0) continue;
      ranges.push({ start: Math.max(0, total - suffix), end: total });
      continue;
    }
    const start = Number(r[1]);
    if (start >= total) continue;
    const last = r[2] === "" ? total - 1 : Number(r[2]);
    if (last < start) return undefined;
    ranges.push({ start, end: Math.min(last, total - 1) + 1 });
  }
  if (ranges.length === 0) return "unsatisfiable";
  if (ranges.length > 1) return undefined;
  return ranges[0];
}
