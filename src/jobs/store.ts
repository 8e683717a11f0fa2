import { RESERVED_PREFIX } from "../storage/keys.js";
import { claimLease, releaseLease, renewLease } from "../storage/lease.js";
import type { Storage } from "../storage/types.js";
import { isUuidV7 } from "../util/uuid.js";
import type { JobRecord } from "./types.js";

const PREFIX = `${RESERVED_PREFIX}jobs/`;
/** One empty object per job not finished yet: what replicas scan, instead of every job ever made. */
const PENDING = `${RESERVED_PREFIX}jobs-pending/`;

/** One empty object per job under its key's id: a key's listing reads only its own jobs. */
const BY_KEY = `${RESERVED_PREFIX}jobs-by-key/`;

/** Where a job's entry in its key's index lives (with `uuid` empty: the key's folder). */
export function jobIndexKey(owner: string, uuid: string): string {
  return `${BY_KEY}${owner || "_"}/${uuid}`;
}

/** Job records and their leases, in the store's reserved prefix: every replica sees every job. */
export class JobStore {
  constructor(private readonly storage: Storage) {}

  async get(uuid: string): Promise<JobRecord | null> {
    if (!isUuidV7(uuid)) return null;
    const body = await this.storage.get(`${PREFIX}${uuid}/job`);
    return body ? (JSON.parse(body.toString("utf8")) as JobRecord) : null;
  }

  /** Writes a new job: its key's index entry first, so a listing never misses a job that exists. */
  async create(job: JobRecord): Promise<void> {
    await this.storage.put(jobIndexKey(job.owner, job.uuid), "");
    await this.put(job);
  }

  /** Ids of one key's jobs, newest first (UUIDv7 sorts by creation time). */
  async idsOf(owner: string): Promise<string[]> {
    return (await this.#idsUnder(jobIndexKey(owner, ""), (rest) => rest)).sort().reverse();
  }

  /**
   * Adds the index entries jobs written before the index existed lack: one listing of the
   * index, then a write per job missing from it.
   */
  async backfillIndex(jobs: ReadonlyArray<Pick<JobRecord, "uuid" | "owner">>): Promise<number> {
    const indexed = new Set<string>();
    try {
      for await (const item of this.storage.list(BY_KEY)) if (item.kind === "file") indexed.add(item.key);
    } catch (err) {
      if ((err as { status?: number }).status !== 404) throw err;
    }
    let added = 0;
    for (const job of jobs) {
      const key = jobIndexKey(job.owner, job.uuid);
      if (indexed.has(key)) continue;
      await this.storage.put(key, "");
      added += 1;
    }
    return added;
  }

  async put(job: JobRecord): Promise<void> {
    const finished = job.status === "succeeded" || job.status === "failed";
    // Marked pending before the record is written, unmarked after: a crash in between
    // leaves a marker to a finished job (read once, then dropped), never a lost job.
    if (!finished) await this.storage.put(`${PENDING}${job.uuid}`, "");
    await this.storage.put(`${PREFIX}${job.uuid}/job`, JSON.stringify(job));
    if (finished) await this.storage.delete(`${PENDING}${job.uuid}`);
  }

  /** Ids of the jobs marked pending, oldest first. */
  pendingIds(): Promise<string[]> {
    return this.#idsUnder(PENDING, (rest) => rest);
  }

  /** Job ids in key order among the objects below `prefix`, picked from each key's rest by `pick`; none when absent. */
  async #idsUnder(prefix: string, pick: (rest: string) => string | undefined): Promise<string[]> {
    const ids: string[] = [];
    try {
      for await (const item of this.storage.list(prefix)) {
        const id = item.kind === "file" ? pick(item.key.slice(prefix.length)) : undefined;
        if (id !== undefined && isUuidV7(id)) ids.push(id);
      }
    } catch (err) {
      if ((err as { status?: number }).status === 404) return [];
      throw err;
    }
    return ids;
  }

  /** Marks a job pending (one found unfinished without its mark). */
  async mark(uuid: string): Promise<void> {
    await this.storage.put(`${PENDING}${uuid}`, "");
  }

  /** Drops the pending mark of a job found finished. */
  async unmark(uuid: string): Promise<void> {
    await this.storage.delete(`${PENDING}${uuid}`);
  }

  /** Job ids, newest first. */
  async ids(): Promise<string[]> {
    return (await this.#idsUnder(PREFIX, (rest) => /^([^/]+)\/job$/.exec(rest)?.[1])).reverse();
  }

  /** Takes the job's lease for `ttlMs` (see claimLease). */
  claim(uuid: string, owner: string, ttlMs: number): Promise<boolean> {
    return claimLease(this.storage, leaseKey(uuid), owner, ttlMs);
  }

  renew(uuid: string, owner: string, ttlMs: number): Promise<void> {
    return renewLease(this.storage, leaseKey(uuid), owner, ttlMs);
  }

  release(uuid: string, owner: string): Promise<void> {
    return releaseLease(this.storage, leaseKey(uuid), owner);
  }
}

function leaseKey(uuid: string): string {
  return `${PREFIX}${uuid}/lease`;
}
