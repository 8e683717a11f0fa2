import { createHash } from "node:crypto";
import type { HttpBindings } from "@hono/node-server";
import { type Context, Hono } from "hono";
import { collisionKey, safeSegment } from "../../archive/names.js";
import { inScope } from "../../auth.js";
import { GatewayError } from "../../errors.js";
import { downloadContext, planDownload, sendDownload } from "../../http/download.js";
import { describeError } from "../../log.js";
import type { RequestedItem } from "../../manifest/schema.js";
import { keyFromPath } from "../../storage/keys.js";
import { mapInSlices } from "../../util/breather.js";
import { isUuidV4 } from "../../util/uuid.js";
import type { DownloadLease } from "../../zipball/download-leases.js";
import { formsView } from "../../zipball/forms.js";
import type { DownloadProgress } from "../../zipball/progress.js";
import type { Download } from "../../zipball/service.js";
import { jsonObject, onlyFields, optionalString } from "../body.js";
import type { ApiDeps, AppEnv } from "../deps.js";

/** Thrown inside the content route when a claim was lost to a download it had not seen. */
const LOST_CLAIM = new Error("the claim was lost");
/** A status stays readable this long after its download started. */
const STATUS_LIFETIME_MS = 12 * 3600 * 1000;
/**
 * After the first body, the client that claimed a URL may GET it again (ranged or whole)
 * for this long: download managers probe with `Range: bytes=0-0`, then fetch for real.
 */
const CLAIM_WINDOW_MS = 60_000;
/** Progress is written at most this often while a download runs. */
const PROGRESS_INTERVAL_MS = 1000;
/** What a 429 for too many concurrent downloads asks a client to wait, in seconds. */
const BUSY_RETRY_AFTER_S = 5;

interface BoxItem {
  type: "file" | "folder";
  id: string;
}

/**
 * The Box zip downloads flavour: `POST /2.0/zip_downloads`, then
 * `GET …/{id}/content` and `GET …/{id}/status`. The same engine as every
 * flavour; only request, response and error shapes are Box's.
 */
export function boxRoutes(deps: ApiDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const active = new Map<string, number>();

  app.post("/2.0/zip_downloads", async (c) => {
    const caller = deps.keys.authenticate(c.req.header("authorization"));
    const body = await jsonObject(c);
    // `prepare` is this gateway's own: every entry in the classic form (true), none read (false).
    onlyFields(body, ["items", "download_file_name", "prepare"], "the request");
    const prepare = body.prepare;
    if (prepare !== undefined && typeof prepare !== "boolean") throw new GatewayError(400, "bad_request", `"prepare" must be true or false`);
    const items = parseItems(body.items, deps.maxItems);
    const name = optionalString(body.download_file_name, "download_file_name", 255) ?? "download";
    const requested = await Promise.all(await mapInSlices(items, (item) => toRequested(item, deps, caller.scopes)));
    const { zipball, resolution, forms } = await deps.service.create({
      flavour: "box",
      items: requested,
      filename: safeSegment(name),
      owner: caller.keyId,
      scopes: caller.scopes,
      expiresIn: deps.box.ttlSeconds,
      signal: c.req.raw.signal,
      prepare,
    });
    const id = zipball.manifest.id;
    const base = `${deps.publicUrl}/2.0/zip_downloads/${id}`;
    // Clash groups from the same allocation the archive uses: the list and the archive agree.
    const groups = new Map<string, number[]>();
    resolution.items.forEach((r, i) => {
      const key = collisionKey(r.wanted.replace(/\/$/, ""));
      groups.set(key, [...(groups.get(key) ?? []), i]);
    });
    const nameConflicts = [...groups.values()]
      .filter((g) => g.length > 1)
      .map((g) =>
        g.map((i) => ({
          id: (items[i] as BoxItem).id,
          type: (items[i] as BoxItem).type,
          original_name: (resolution.items[i]?.wanted ?? "").replace(/\/$/, ""),
          download_name: (resolution.items[i]?.given ?? "").replace(/\/$/, ""),
        })),
      );
    return c.json(
      {
        download_url: `${base}/content`,
        status_url: `${base}/status`,
        expires_at: new Date(zipball.manifest.exp * 1000).toISOString().replace(/\.\d{3}Z$/, "Z"),
        name_conflicts: nameConflicts,
        // This gateway's own field (Box has none): the files' forms, as in every flavour.
        entry_forms: formsView(forms),
      },
      202,
    );
  });

  app.on(["GET", "HEAD"], "/2.0/zip_downloads/:id/content", (c) => content(c, false));

  /**
   * One GET of a download URL. `retried`: this request lost the claim to one that its first
   * read of the progress did not see (a store may miss an object while it is being rewritten),
   * and looks again at what won, as a follow-up of its own or a URL used up.
   */
  async function content(c: Context<AppEnv>, retried: boolean): Promise<Response> {
    const id = c.req.param("id") as string;
    const progress = isUuidV4(id) ? await deps.progress.get(id) : null;
    const started = progress !== null && Date.now() - Date.parse(progress.started_at) < STATUS_LIFETIME_MS;
    const claimant = clientOf(c);
    // The claimant's own follow-up GETs within the window are the same download: after a
    // ranged first body (a download manager's probe) or one that failed (a resume). A whole
    // first body has used the URL up, however it is still going.
    const again =
      progress !== null &&
      progress.claimant === claimant &&
      Date.now() - Date.parse(progress.started_at) < CLAIM_WINDOW_MS &&
      (progress.claimed_by_range === true || progress.state === "failed");
    if (progress && !deps.box.allowResume && !again) throw new GatewayError(404, "not_found", "this download URL has already been used");
    // A download that started stays valid for that download, even past expires_at.
    const pinned = await deps.service.open(id, { allowExpired: started }).catch((err: unknown) => {
      // Box answers an expired download URL like an unknown one.
      if (err instanceof GatewayError && err.status === 410) throw new GatewayError(404, "not_found", "this download URL has expired");
      throw err;
    });
    if (pinned.zipball.manifest.flavour !== "box") throw new GatewayError(404, "not_found", "zip download not found");
    const owner = pinned.zipball.manifest.owner;

    // Files deleted or made unreadable since creation are skipped, decided
    // before the first byte so that Content-Length stays exact.
    const skipped = progress ? new Set(progress.skipped) : await deps.service.unreadable(pinned, c.req.raw.signal);
    const download = deps.service.without(pinned, skipped);
    // HEAD, 304, 412 and 416 are answered before anything is claimed or counted.
    const plan = planDownload(download, { method: c.req.method, headers: c.req.raw.headers, requestId: c.get("requestId"), oneShot: true });
    if (plan.kind === "answer") return plan.response;
    // A whole first body uses the URL up: no later Range would be answered, so none is
    // invited (a download manager would split the download and meet 404s).
    if (plan.status === 200 && !deps.box.allowResume) plan.headers.set("Accept-Ranges", "none");

    const busy = (): GatewayError =>
      new GatewayError(429, "too_many_downloads", `at most ${deps.box.maxConcurrent} downloads may run at once for this key`, {
        headers: { "Retry-After": String(BUSY_RETRY_AFTER_S) },
      });
    if ((active.get(owner) ?? 0) >= deps.box.maxConcurrent) throw busy();
    // A slot first: a busy or draining gateway answers 503 without using up the URL.
    const slot = deps.lifecycle.admit(c.get("client"));
    // Counted at once, before any await: twenty requests in one turn cannot all pass the check.
    active.set(owner, (active.get(owner) ?? 0) + 1);
    let ended = false;
    let lease: DownloadLease | null = null;
    let tracker: ReturnType<typeof progressTracker> | undefined;
    const end = (ok: boolean): void => {
      if (ended) return;
      ended = true;
      active.set(owner, Math.max(0, (active.get(owner) ?? 1) - 1));
      lease?.release();
      tracker?.end(ok, download);
    };
    const now = new Date().toISOString();
    const state: DownloadProgress = progress
      ? { ...progress, state: "in_progress", updated_at: now }
      : {
          state: "in_progress",
          total_file_count: pinned.zipball.entries.filter((e) => e.kind === "file").length,
          downloaded_file_count: 0,
          skipped_file_count: skipped.size,
          skipped_folder_count: skippedFolders(pinned, skipped),
          started_at: now,
          updated_at: now,
          owner,
          skipped: [...skipped].sort((a, b) => a - b),
          claimant,
          claimed_by_range: plan.status === 206,
        };
    try {
      // Then the key's count across replicas, still before the URL is used up.
      lease = await deps.downloadLeases.acquire(owner, deps.box.maxConcurrent);
      if (!lease) throw busy();
      if (!progress && !(await deps.progress.claim(id, state)) && !deps.box.allowResume) {
        if (!retried) throw LOST_CLAIM;
        throw new GatewayError(404, "not_found", "this download URL has already been used");
      }
    } catch (err) {
      slot.release();
      end(false);
      if (err === LOST_CLAIM) return content(c, true);
      throw err;
    }
    const running = progressTracker(id, state, deps);
    tracker = running;
    const context = downloadContext(c, deps, {
      onFileDone: () => running.fileDone(),
      onEnd: ({ ok }) => end(ok),
    });
    try {
      return await sendDownload(deps.service, download, plan, context, slot);
    } catch (err) {
      end(false);
      throw err;
    }
  }

  app.get("/2.0/zip_downloads/:id/status", async (c) => {
    const caller = deps.keys.authenticate(c.req.header("authorization"));
    const id = c.req.param("id");
    const progress = isUuidV4(id) ? await deps.progress.get(id) : null;
    // 404 before the download starts, after the status expired, and for another key's download.
    if (!progress || progress.owner !== caller.keyId || Date.now() - Date.parse(progress.started_at) >= STATUS_LIFETIME_MS) {
      throw new GatewayError(404, "not_found", "no download has started for this zip download");
    }
    return c.json({
      total_file_count: progress.total_file_count,
      downloaded_file_count: progress.downloaded_file_count,
      skipped_file_count: progress.skipped_file_count,
      skipped_folder_count: progress.skipped_folder_count,
      state: progress.state,
    });
  });

  return app;
}

/** Who is asking, as far as a URL without a key can tell: client address and user agent, digested. */
function clientOf(c: Context<AppEnv>): string {
  // Behind trusted proxies (ZIPGATE_TRUST_PROXY) the client's own address, not the proxy's.
  const address = c.get("client") ?? (c.env as HttpBindings | undefined)?.incoming?.socket?.remoteAddress ?? "";
  return createHash("sha256")
    .update(`${address}\n${c.req.header("user-agent") ?? ""}`)
    .digest("base64url")
    .slice(0, 22);
}

function parseItems(value: unknown, max: number): BoxItem[] {
  if (!Array.isArray(value) || value.length === 0) throw new GatewayError(400, "bad_request", `"items" must be a non-empty array`);
  if (value.length > max) throw new GatewayError(400, "too_many_files", `at most ${max} items may be requested`);
  return value.map((v, index) => {
    const where = `items[${index}]`;
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new GatewayError(400, "bad_request", `${where} must be an object`);
    const item = v as Record<string, unknown>;
    onlyFields(item, ["type", "id"], where);
    if (item.type !== "file" && item.type !== "folder") throw new GatewayError(400, "bad_request", `${where}.type must be "file" or "folder"`);
    if (typeof item.id !== "string" || item.id === "") throw new GatewayError(400, "bad_request", `${where}.id must be a non-empty string`);
    return { type: item.type, id: item.id };
  });
}

/** A file's id is its path (or a registered object id); a folder's id is its path; the root is refused. */
async function toRequested(item: BoxItem, deps: ApiDeps, scopes: string[] | undefined): Promise<RequestedItem> {
  if (item.type === "folder") {
    if (item.id === "0" || item.id === "/") throw new GatewayError(400, "bad_request", "the root folder cannot be downloaded");
    return { type: "folder", key: keyFromPath(item.id.startsWith("/") ? item.id : `/${item.id}`, "folder", "id") };
  }
  if (isUuidV4(item.id)) {
    const key = await deps.ids.resolve(item.id);
    // Outside the caller's scopes an id is as unknown as one never registered.
    if (key === undefined || !inScope(scopes, key)) throw new GatewayError(404, "not_found", `no file has the id ${item.id}`);
    return { type: "file", key };
  }
  return { type: "file", key: keyFromPath(item.id.startsWith("/") ? item.id : `/${item.id}`, "path", "id") };
}

/** Requested folders none of whose files can be read any more. */
function skippedFolders(download: Download, skipped: ReadonlySet<number>): number {
  const files = new Map<number, { total: number; gone: number }>();
  const { items } = download.zipball.manifest;
  download.zipball.entries.forEach((e, i) => {
    if (e.kind !== "file" || items[e.item]?.type !== "folder") return;
    const f = files.get(e.item) ?? { total: 0, gone: 0 };
    f.total += 1;
    if (skipped.has(i)) f.gone += 1;
    files.set(e.item, f);
  });
  return [...files.values()].filter((f) => f.total > 0 && f.gone === f.total).length;
}

/**
 * Keeps the stored progress moving: at the start, every PROGRESS_INTERVAL_MS while the
 * download runs (one write at a time: a slow store is not queued up), and at the end.
 */
function progressTracker(id: string, state: DownloadProgress, deps: ApiDeps) {
  let writing: Promise<void> | undefined;
  let again = false;
  const write = (): void => {
    if (writing) {
      again = true;
      return;
    }
    const snapshot = { ...state, updated_at: new Date().toISOString() };
    writing = deps.progress
      .put(id, snapshot)
      .catch((err: unknown) => deps.logger.warn("could not record progress", describeError(err)))
      .finally(() => {
        writing = undefined;
        if (again) {
          again = false;
          write();
        }
      });
  };
  write();
  const timer = setInterval(write, PROGRESS_INTERVAL_MS);
  timer.unref();
  return {
    fileDone(): void {
      state.downloaded_file_count = Math.min(state.downloaded_file_count + 1, state.total_file_count - state.skipped_file_count);
    },
    end(ok: boolean, download: Download): void {
      clearInterval(timer);
      state.state = ok ? "succeeded" : "failed";
      if (ok) state.downloaded_file_count = download.layout.entries.filter((e) => e.kind === "file").length;
      write();
    },
  };
}
