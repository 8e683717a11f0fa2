import { randomBytes } from "node:crypto";
import { RESERVED_PREFIX } from "../storage/keys.js";
import type { Storage } from "../storage/types.js";
import type { JobRecord } from "./types.js";

const PREFIX = `${RESERVED_PREFIX}jobs/`;
/** One empty object per job not finished yet: what replicas scan, instead of every job ever made. */
const PENDING = `${RESERVED_PREFIX}jobs-pending/`;

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

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export interface Lease {
  owner: string;
  until: number;
}

/** Job records and their leases, in the store's reserved prefix: every replica sees every job. */
export class JobStore {
  constructor(private readonly storage: Storage) {}

  async get(uuid: string): Promise<JobRecord | null> {
    if (!UUID.test(uuid)) return null;
    const body = await this.storage.get(`${PREFIX}${uuid}/job`);
    return body ? (JSON.parse(body.toString("utf8")) as JobRecord) : null;
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
        if (id !== undefined && UUID.test(id)) ids.push(id);
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

  /**
   * Takes the job's lease for `ttlMs`: only when no lease is held, or the
   * holder's has run out. Stores without conditional writes leave a narrow
   * race, so the lease is read back and must name us.
   */
  async claim(uuid: string, owner: string, ttlMs: number, now = Date.now()): Promise<boolean> {
    const key = `${PREFIX}${uuid}/lease`;
    const lease: Lease = { owner, until: now + ttlMs };
    if (!(await this.storage.put(key, JSON.stringify(lease), { ifAbsent: true }))) {
      const held = await this.#lease(key);
      if (held && held.owner !== owner && held.until > now) return false;
      await this.storage.put(key, JSON.stringify(lease));
    }
    await new Promise((r) => setTimeout(r, 50));
    return (await this.#lease(key))?.owner === owner;
  }

  async renew(uuid: string, owner: string, ttlMs: number): Promise<void> {
    await this.storage.put(`${PREFIX}${uuid}/lease`, JSON.stringify({ owner, until: Date.now() + ttlMs }));
  }

  async release(uuid: string, owner: string): Promise<void> {
    const key = `${PREFIX}${uuid}/lease`;
    if ((await this.#lease(key))?.owner === owner) await this.storage.delete(key);
  }

  async #lease(key: string): Promise<Lease | null> {
    const body = await this.storage.get(key);
    return body ? (JSON.parse(body.toString("utf8")) as Lease) : null;
  }
}
