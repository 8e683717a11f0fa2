import type { Storage } from "./types.js";

/** Who holds a lease, and until when (ms since the epoch, by the holder's clock). */
export interface Lease {
  owner: string;
  until: number;
}

/** How long a claimant waits before reading its claim back: long enough for a racing write to land. */
const READ_BACK_MS = 50;
/** How long a claim another replica has in flight may take to show its lease. */
const IN_FLIGHT_MS = 2_000;

/**
 * Takes the lease stored at `key` for `ttlMs`: only when no lease is held there, or the
 * holder's has run out. Stores without conditional writes leave a narrow race, so the lease
 * is read back after a moment and must name us. Used for job runs and the state sweeper.
 */
export async function claimLease(storage: Storage, key: string, owner: string, ttlMs: number): Promise<boolean> {
  const lease: Lease = { owner, until: Date.now() + ttlMs };
  if (!(await storage.put(key, JSON.stringify(lease), { ifAbsent: true }))) {
    let held = await readLease(storage, key);
    if (held === undefined) {
      // Not absent, yet nothing there: another replica's claim is in flight (on a store without
      // conditional writes, its marker is written and its lease not yet). Writing ours now would
      // let both read back their own lease when the store is slower than the read-back wait.
      // Its lease shows within moments; if it never does, that replica died mid-claim.
      await new Promise((r) => setTimeout(r, IN_FLIGHT_MS));
      held = await readLease(storage, key);
    }
    if (held && held.owner !== owner && held.until > Date.now()) return false;
    await storage.put(key, JSON.stringify({ owner, until: Date.now() + ttlMs }));
  }
  await new Promise((r) => setTimeout(r, READ_BACK_MS));
  return (await readLease(storage, key))?.owner === owner;
}

export async function renewLease(storage: Storage, key: string, owner: string, ttlMs: number): Promise<void> {
  await storage.put(key, JSON.stringify({ owner, until: Date.now() + ttlMs }));
}

/** Drops the lease if it is still ours. */
export async function releaseLease(storage: Storage, key: string, owner: string): Promise<void> {
  if ((await readLease(storage, key))?.owner === owner) await storage.delete(key);
}

/** The lease at `key`: undefined when there is none, null when it is unreadable. */
async function readLease(storage: Storage, key: string): Promise<Lease | null | undefined> {
  const body = await storage.get(key);
  if (!body) return undefined;
  try {
    return JSON.parse(body.toString("utf8")) as Lease;
  } catch {
    return null; // torn or foreign: as good as none
  }
}
