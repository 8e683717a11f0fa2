import { setMaxListeners } from "node:events";
import { NameAllocator, type Rename, safeSegments } from "../archive/names.js";
import { GatewayError, ObjectNotFound } from "../errors.js";
import type { PinnedEntry, RequestedItem } from "../manifest/schema.js";
import type { UrlFetcher, UrlInfo } from "../sources/url.js";
import type { ListItem, Storage } from "../storage/types.js";
import { Breather } from "../util/breather.js";
import { mapLimit } from "../util/concurrency.js";

export interface ResolveOptions {
  storage: Storage;
  /** Fetcher for URL items (SSRF-guarded). */
  urls: UrlFetcher;
  maxFiles: number;
  maxBytes: number;
  signal?: AbortSignal | undefined;
  /** Stats and listings in flight at once. @default 16 */
  concurrency?: number;
}

/** What one requested item became. */
export interface ResolvedItem {
  type: RequestedItem["type"];
  /** The name it wanted (its own `name`, or the object's base name). */
  wanted: string;
  /** The name it got in the archive (different after a rename). */
  given: string;
}

export interface Resolution {
  entries: PinnedEntry[];
  items: ResolvedItem[];
  renames: Rename[];
  files: number;
  bytes: number;
}

type Found =
  | { type: "file"; info: Awaited<ReturnType<Storage["stat"]>> }
  | { type: "url"; url: string; info: UrlInfo }
  | { type: "folder"; listing: ListItem[] }
  | { type: "missing"; key: string };

function urlBaseName(url: string): string {
  const path = new URL(url).pathname;
  const last = path.slice(path.lastIndexOf("/") + 1);
  try {
    return decodeURIComponent(last) || "download";
  } catch {
    return last || "download";
  }
}

function baseName(key: string): string {
  const trimmed = key.endsWith("/") ? key.slice(0, -1) : key;
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

/**
 * Resolves requested items against the store: stats files, lists folders,
 * enforces the limits, and names every entry with the one deterministic
 * allocation the archive uses. Missing objects are all reported at once.
 */
export async function resolveItems(items: readonly RequestedItem[], options: ResolveOptions): Promise<Resolution> {
  const { storage } = options;
  // Its own signal: the first failure (a limit, a store error) stops the walks and stats
  // still running for the other items, as the client leaving does.
  const controller = new AbortController();
  const signal = controller.signal;
  const onGone = (): void => controller.abort(options.signal?.reason);
  if (options.signal?.aborted) onGone();
  else options.signal?.addEventListener("abort", onGone, { once: true });
  setMaxListeners((options.concurrency ?? 16) + 16, signal);
  let files = 0;
  let bytes = 0;
  const count = (size: number): void => {
    files += 1;
    bytes += size;
    if (files > options.maxFiles) {
      throw new GatewayError(400, "too_many_files", `the archive would hold more than ${options.maxFiles} files`, {
        details: { limit: options.maxFiles },
      });
    }
    if (bytes > options.maxBytes) {
      throw new GatewayError(400, "too_many_bytes", `the archive would hold more than ${options.maxBytes} bytes`, {
        details: { limit: options.maxBytes },
      });
    }
  };

  // A folder named twice is walked once; both items then get its listing.
  const listings = new Map<string, Promise<ListItem[]>>();
  const listFolder = (key: string): Promise<ListItem[]> => {
    let listing = listings.get(key);
    if (!listing) {
      listing = (async () => {
        const out: ListItem[] = [];
        // Past the file budget the folder is refused anyway: the walk (or the paged listing)
        // stops there instead of reading the rest.
        const limit = options.maxFiles - files;
        let listed = 0;
        for await (const entry of storage.list(key, { signal: signal as AbortSignal, limit })) {
          out.push(entry);
          if (entry.kind === "file" && ++listed > limit) break;
        }
        return out;
      })();
      listing.catch(() => {});
      listings.set(key, listing);
    }
    return listing;
  };

  let found: Found[];
  try {
    found = await mapLimit(
      items,
      options.concurrency ?? 16,
      async (item): Promise<Found> => {
        try {
          if (item.type === "url") {
            const url = options.urls.parse(item.url);
            await options.urls.check(url);
            const info = await options.urls.probe(url, signal).catch((err: unknown) => {
              // At creation an origin's 404 is a missing object, like a missing path.
              if (err instanceof GatewayError && (err.details?.status === 404 || err.details?.status === 410)) return null;
              throw err;
            });
            if (!info) return { type: "missing", key: url.href };
            count(info.size ?? 0);
            return { type: "url", url: url.href, info };
          }
          if (item.type === "file") {
            const info = await storage.stat(item.key, { signal: signal as AbortSignal });
            count(info.size);
            return { type: "file", info };
          }
          const listing = await listFolder(item.key);
          for (const entry of listing) if (entry.kind === "file") count(entry.size);
          return { type: "folder", listing };
        } catch (err) {
          if (err instanceof ObjectNotFound) return { type: "missing", key: item.type === "url" ? item.url : item.key };
          throw err;
        }
      },
      signal,
    );
  } catch (err) {
    controller.abort(err);
    throw err;
  } finally {
    options.signal?.removeEventListener("abort", onGone);
  }

  const missing = found
    .filter((f): f is Extract<Found, { type: "missing" }> => f.type === "missing")
    .map((f) => (/^https?:/.test(f.key) ? f.key : `/${f.key}`));
  if (missing.length > 0) {
    throw new GatewayError(404, "not_found", `${missing.length} of the requested objects ${missing.length === 1 ? "does" : "do"} not exist`, {
      details: { missing },
    });
  }

  const now = Date.now();
  const names = new NameAllocator();
  const entries: PinnedEntry[] = [];
  const resolved: ResolvedItem[] = [];
  // Naming and pinning run in slices: 100,000 entries never hold the event loop at once.
  const breath = new Breather();
  for (const [index, f] of found.entries()) {
    if (breath.due()) await breath.pause();
    const item = items[index] as RequestedItem;
    const wantedSegments =
      item.name !== undefined ? safeSegments(item.name, true) : safeSegments(item.type === "url" ? urlBaseName(item.url) : baseName(item.key));
    if (wantedSegments.length === 0) wantedSegments.push("_");
    const wanted = wantedSegments.join("/");
    if (f.type === "url") {
      const { path } = names.place(wantedSegments, "file", index, "shared");
      const { size, etag, lastModifiedMs } = f.info;
      entries.push({
        name: path,
        kind: "file",
        size: size ?? 0,
        unknownSize: size === undefined || undefined,
        mtimeMs: lastModifiedMs ?? now,
        item: index,
        url: f.url,
        etag,
      });
      resolved.push({ type: "url", wanted, given: path });
      continue;
    }
    if (f.type === "file") {
      const { path } = names.place(wantedSegments, "file", index, "shared");
      entries.push({
        name: path,
        kind: "file",
        size: f.info.size,
        mtimeMs: f.info.mtimeMs,
        item: index,
        key: f.info.key,
        etag: f.info.etag,
        crc32: f.info.crc32,
      });
      resolved.push({ type: "file", wanted, given: path });
      continue;
    }
    if (f.type !== "folder" || item.type !== "folder") continue;
    const top = names.place(wantedSegments, "dir", index, index);
    const folderMtime = f.listing.reduce((m, e) => Math.max(m, e.mtimeMs), 0);
    entries.push({ name: top.path, kind: "dir", size: 0, mtimeMs: folderMtime, item: index });
    resolved.push({ type: "folder", wanted: `${wanted}/`, given: top.path });
    for (const e of f.listing) {
      if (breath.due()) await breath.pause();
      const rel = safeSegments(e.key.slice(item.key.length));
      if (rel.length === 0) continue;
      // The wanted path again: the allocator merges it into the directory it gave this item.
      const placed = names.place([...wantedSegments, ...rel], e.kind, index, index);
      if (e.kind === "dir") {
        if (!placed.existed) entries.push({ name: placed.path, kind: "dir", size: 0, mtimeMs: e.mtimeMs, item: index });
      } else {
        entries.push({ name: placed.path, kind: "file", size: e.size, mtimeMs: e.mtimeMs, item: index, key: e.key, etag: e.etag, crc32: e.crc32 });
      }
    }
  }
  return { entries, items: resolved, renames: names.renames, files, bytes };
}
