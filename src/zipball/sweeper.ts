import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { jobIndexKey } from "../jobs/store.js";
import type { JobRecord } from "../jobs/types.js";
import { describeError, type Logger } from "../log.js";
import { RESERVED_PREFIX } from "../storage/keys.js";
import { claimLease, renewLease } from "../storage/lease.js";
import { chunksOf, type ListItem, type Storage } from "../storage/types.js";
import { DOWNLOADS_PREFIX } from "./download-leases.js";
import { CRC_SHARDS_PREFIX } from "./object-crcs.js";

const ZIPBALLS = `${RESERVED_PREFIX}zipballs/`;
const JOBS = `${RESERVED_PREFIX}jobs/`;
const JOBS_PENDING = `${RESERVED_PREFIX}jobs-pending/`;
const LEASE_KEY = `${RESERVED_PREFIX}sweeper/lease`;

/**
 * An expired zipball's state is kept this much longer: a Box status stays readable for 12 hours
 * after its download started, and a download that started before expiry may still resume.
 */
export const EXPIRED_KEPT_MS = 24 * 3600 * 1000;
/** A download lease not renewed for this long belonged to a replica that died. */
const STALE_DOWNLOAD_MS = 3600 * 1000;
/** How much of a manifest is read to find its expiry: the token comes first, on its own line. */
const TOKEN_PROBE = 64 * 1024;

export interface SweeperOptions {
  storage: Storage;
  logger: Logger;
  /** Time between sweeps, in ms; each sweep runs on one replica at a time. */
  intervalMs: number;
  /** Store requests per second a sweep may make (listing pages not counted). */
  rate: number;
  /** Finished jobs are removed this long after they finished, in ms; 0 keeps them. */
  jobRetentionMs: number;
  /**
   * A CRC-index shard not written for this long is removed, in ms; 0 keeps them. Shards hold
   * neither key nor folder (only hashes), so a shard's age is what tells a deleted folder's:
   * a live one removed costs its CRCs learnt again once. @default 0
   */
  crcRetentionMs?: number;
  /** What each sweep removes is counted here, by kind. */
  onSwept?: ((what: "zipballs" | "orphans" | "jobs" | "download_leases" | "crc_shards", n: number) => void) | undefined;
  now?: () => number;
}

/** What one sweep removed, and what it cost. */
export interface SweepReport {
  zipballs: number;
  /** State of zipballs without a manifest (revoked, or half swept before). */
  orphans: number;
  jobs: number;
  downloadLeases: number;
  /** CRC-index shards past ZIPGATE_CRC_RETENTION. */
  crcShards: number;
  /** Manifests whose expiry could not be read: left in place. */
  unreadable: number;
  requests: number;
  ms: number;
}

/**
 * Removes the gateway's expired state from the store: zipballs (manifest, CRC records,
 * progress) a day after they expired, finished jobs after their retention, and download
 * leases of replicas that died. One replica sweeps at a time, under a lease held for the
 * interval, and at a bounded request rate so that sweeping never competes with downloads.
 */
export class Sweeper {
  readonly #opts: SweeperOptions;
  readonly #owner = randomUUID();
  readonly #controller = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> = Promise.resolve();

  constructor(options: SweeperOptions) {
    this.#opts = options;
  }

  /** Sweeps soon after start (within a minute, spread over replicas), then every interval. */
  start(): void {
    const { intervalMs } = this.#opts;
    if (intervalMs <= 0) return;
    let busy = false;
    const tick = (): void => {
      // A sweep longer than the interval is not joined by the next one.
      if (busy) return;
      busy = true;
      this.#running = this.sweep()
        .catch((err: unknown) => {
          if (!this.#controller.signal.aborted) this.#opts.logger.warn("state sweep failed", describeError(err));
        })
        .finally(() => {
          busy = false;
        });
    };
    this.#timer = setTimeout(() => {
      tick();
      this.#timer = setInterval(tick, intervalMs);
      this.#timer.unref();
    }, Math.random() * Math.min(intervalMs, 60_000));
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    clearInterval(this.#timer);
    this.#controller.abort(new Error("the gateway is stopping"));
    await this.#running;
  }

  /** One sweep, if this replica gets the lease; null when another replica holds it. */
  async sweep(): Promise<SweepReport | null> {
    const { storage, intervalMs, logger } = this.#opts;
    const now = this.#opts.now ?? Date.now;
    const signal = this.#controller.signal;
    const leaseMs = Math.max(intervalMs, 60_000);
    if (!(await claimLease(storage, LEASE_KEY, this.#owner, leaseMs))) return null;
    const renew = setInterval(() => void renewLease(storage, LEASE_KEY, this.#owner, leaseMs).catch(() => {}), leaseMs / 3);
    renew.unref();
    const started = now();
    const report: SweepReport = { zipballs: 0, orphans: 0, jobs: 0, downloadLeases: 0, crcShards: 0, unreadable: 0, requests: 0, ms: 0 };
    const pace = pacer(this.#opts.rate, signal, () => {
      report.requests += 1;
    });
    try {
      await this.#sweepZipballs(report, pace, now);
      if (this.#opts.jobRetentionMs > 0) await this.#sweepJobs(report, pace, now);
      for await (const item of listing(storage, DOWNLOADS_PREFIX)) {
        if (item.kind !== "file" || now() - item.mtimeMs < STALE_DOWNLOAD_MS) continue;
        await pace();
        await storage.delete(item.key);
        report.downloadLeases += 1;
      }
      const crcRetentionMs = this.#opts.crcRetentionMs ?? 0;
      if (crcRetentionMs > 0) {
        for await (const item of listing(storage, CRC_SHARDS_PREFIX)) {
          if (item.kind !== "file" || now() - item.mtimeMs < crcRetentionMs) continue;
          await pace();
          await storage.delete(item.key);
          report.crcShards += 1;
        }
      }
    } finally {
      clearInterval(renew);
      const swept = this.#opts.onSwept;
      if (swept) {
        swept("zipballs", report.zipballs);
        swept("orphans", report.orphans);
        swept("jobs", report.jobs);
        swept("download_leases", report.downloadLeases);
        swept("crc_shards", report.crcShards);
      }
    }
    report.ms = now() - started;
    if (report.zipballs + report.orphans + report.jobs + report.downloadLeases + report.crcShards + report.unreadable > 0)
      logger.info("state swept", { ...report });
    return report;
  }

  async #sweepZipballs(report: SweepReport, pace: () => Promise<void>, now: () => number): Promise<void> {
    const { storage } = this.#opts;
    for await (const [id, parts] of groups(storage, ZIPBALLS)) {
      const manifest = parts.find((p) => p.key === `${ZIPBALLS}${id}/manifest`);
      if (manifest) {
        await pace();
        const exp = await expiryOf(storage, manifest.key, manifest.size).catch(() => undefined);
        if (exp === undefined) {
          report.unreadable += 1;
          continue;
        }
        if (exp * 1000 + EXPIRED_KEPT_MS > now()) continue;
        report.zipballs += 1;
      } else {
        if (parts.some((p) => now() - p.mtimeMs < EXPIRED_KEPT_MS)) continue;
        report.orphans += 1;
      }
      // The manifest goes last: a sweep cut short leaves a zipball that is found again.
      for (const part of [...parts.filter((p) => p !== manifest), ...(manifest ? [manifest] : [])]) {
        await pace();
        await storage.delete(part.key);
      }
    }
  }

  async #sweepJobs(report: SweepReport, pace: () => Promise<void>, now: () => number): Promise<void> {
    const { storage, jobRetentionMs } = this.#opts;
    for await (const [uuid, parts] of groups(storage, JOBS)) {
      const record = parts.find((p) => p.key === `${JOBS}${uuid}/job`);
      // A job record is rewritten until the job (and its webhook) is done: a recent one is not due.
      if (!record || now() - record.mtimeMs < jobRetentionMs) continue;
      await pace();
      const body = await storage.get(record.key);
      if (!body) continue;
      let job: JobRecord;
      try {
        job = JSON.parse(body.toString("utf8")) as JobRecord;
      } catch {
        continue;
      }
      const finished = job.status === "succeeded" || job.status === "failed";
      const at = Date.parse(job.completed_at ?? "");
      if (!finished || !Number.isFinite(at) || now() - at < jobRetentionMs) continue;
      // Its lease (and a store's claim marker beside it) first, the record last.
      for (const key of [...parts.filter((p) => p !== record).map((p) => p.key), `${JOBS_PENDING}${uuid}`, jobIndexKey(job.owner, uuid), record.key]) {
        await pace();
        await storage.delete(key);
      }
      report.jobs += 1;
    }
  }
}

/**
 * The files below `prefix`, a group per first segment (a zipball's or a job's id). The listing
 * is in key order, so a group's objects come together and only one group is held at a time.
 */
async function* groups(storage: Storage, prefix: string): AsyncGenerator<[string, Array<ListItem & { kind: "file" }>]> {
  let id = "";
  let group: Array<ListItem & { kind: "file" }> = [];
  for await (const item of listing(storage, prefix)) {
    if (item.kind !== "file") continue;
    const next = item.key.slice(prefix.length).split("/", 1)[0] ?? "";
    if (next !== id && group.length > 0) {
      yield [id, group];
      group = [];
    }
    id = next;
    group.push(item);
  }
  if (group.length > 0) yield [id, group];
}

/** The expiry (seconds since the epoch) in a stored manifest's token; undefined when unreadable. */
async function expiryOf(storage: Storage, key: string, size: number): Promise<number | undefined> {
  let head = await readAll(storage, key, Math.min(size, TOKEN_PROBE));
  let newline = head.indexOf(0x0a);
  if (newline < 0 && size > TOKEN_PROBE) {
    head = (await storage.get(key)) ?? Buffer.alloc(0);
    newline = head.indexOf(0x0a);
  }
  if (newline < 0) return undefined;
  // The signature was checked when the zipball was served; here only its expiry matters,
  // and only the gateway writes below `.zipgate/`.
  const payload = head.subarray(0, newline).toString("latin1").split(".")[1];
  if (payload === undefined) return undefined;
  try {
    const exp = (JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { exp?: unknown }).exp;
    return typeof exp === "number" ? exp : undefined;
  } catch {
    return undefined;
  }
}

async function readAll(storage: Storage, key: string, length: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of chunksOf(await storage.read(key, { range: { start: 0, end: length } }))) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** A prefix's listing; nothing when it does not exist. */
async function* listing(storage: Storage, prefix: string): AsyncGenerator<ListItem> {
  try {
    yield* storage.list(prefix);
  } catch (err) {
    if ((err as { status?: number }).status !== 404) throw err;
  }
}

/**
 * Spaces store requests to `rate` per second, allowing a tenth of a second's worth at once;
 * rejects once `signal` aborts.
 */
function pacer(rate: number, signal: AbortSignal, count: () => void): () => Promise<void> {
  const step = 1000 / rate;
  let next = 0;
  return async () => {
    signal.throwIfAborted();
    count();
    const now = performance.now();
    next = Math.max(next, now - 100) + step;
    if (next > now) await sleep(next - now, undefined, { signal });
  };
}
