import { RESERVED_PREFIX } from "../storage/keys.js";
import type { Storage } from "../storage/types.js";
import { uuidv7 } from "../util/uuid.js";

export const DOWNLOADS_PREFIX = `${RESERVED_PREFIX}downloads/`;

/** A running download's place in the count; released when the download ends. */
export interface DownloadLease {
  release(): void;
}

/** Arrivals this close to ours (by the store's clock) may be racing us rather than running. */
const RACING_MS = 2000;
/** Tries of a download that lost a race, spaced by random waits that grow with each try. */
const TRIES = 4;
const BACKOFF_MS = 60;

/**
 * Running downloads of each key, counted across every replica on one store: one empty
 * object per running download under `.zipgate/downloads/<key id>/`, rewritten while the
 * download runs and removed when it ends. The object of a download whose replica died
 * stops counting once it is older than the lease.
 *
 * A download first writes its object, then lists the key's objects, and runs only when the
 * live ones (its own included) are at most the limit; otherwise it removes its object. Whatever
 * the interleaving, the last admitted download to list saw every other admitted one, so
 * admitted downloads never exceed the limit. Arrivals racing each other can all see too many;
 * those that lost only to racers (not to downloads already running) try again after a random
 * wait, so a burst still gets its share. Within a process a key's arrivals go one at a time.
 * Ages are measured against the store's clock (the fresh object's own modification time), so
 * replicas' clocks need not agree.
 */
export class DownloadLeases {
  readonly #storage: Storage;
  readonly #leaseMs: number;
  readonly #queues = new Map<string, Promise<unknown>>();

  constructor(storage: Storage, leaseMs: number) {
    this.#storage = storage;
    this.#leaseMs = leaseMs;
  }

  /** A lease among at most `max` for `keyId`'s downloads, or null when that many run already. */
  acquire(keyId: string, max: number): Promise<DownloadLease | null> {
    const turn = (this.#queues.get(keyId) ?? Promise.resolve()).then(() => this.#acquire(keyId, max));
    const settled = turn.catch(() => {});
    this.#queues.set(keyId, settled);
    void settled.then(() => {
      if (this.#queues.get(keyId) === settled) this.#queues.delete(keyId);
    });
    return turn;
  }

  async #acquire(keyId: string, max: number): Promise<DownloadLease | null> {
    const folder = `${DOWNLOADS_PREFIX}${keyId}/`;
    for (let attempt = 1; ; attempt++) {
      const key = `${folder}${uuidv7()}`;
      await this.#storage.put(key, "");
      let others: number[];
      let now: number;
      try {
        const files: Array<{ key: string; mtimeMs: number }> = [];
        for await (const item of this.#storage.list(folder)) if (item.kind === "file") files.push(item);
        now = files.find((f) => f.key === key)?.mtimeMs ?? Date.now();
        others = files.filter((f) => f.key !== key && now - f.mtimeMs < this.#leaseMs).map((f) => f.mtimeMs);
      } catch (err) {
        await this.#storage.delete(key).catch(() => {});
        throw err;
      }
      if (others.length < max) return this.#held(key);
      await this.#storage.delete(key).catch(() => {});
      const running = others.filter((t) => now - t > RACING_MS).length;
      if (running >= max || attempt >= TRIES) return null;
      await new Promise((r) => setTimeout(r, BACKOFF_MS * attempt * (0.5 + Math.random())));
    }
  }

  #held(key: string): DownloadLease {
    let released = false;
    // Renewals run one after another, and none after the release: a late one would bring the object back.
    let renewing: Promise<void> = Promise.resolve();
    const renew = setInterval(
      () => {
        renewing = renewing.then(() => (released ? undefined : this.#storage.put(key, "").then(() => {}))).catch(() => {});
      },
      Math.max(250, this.#leaseMs / 3),
    );
    renew.unref();
    return {
      release: () => {
        if (released) return;
        released = true;
        clearInterval(renew);
        void renewing.then(() => this.#storage.delete(key)).catch(() => {});
      },
    };
  }
}
