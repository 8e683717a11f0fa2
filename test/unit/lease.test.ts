import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { claimLease } from "../../src/storage/lease.js";
import type { Storage } from "../../src/storage/types.js";
import { createFsStorage, tempDir } from "../helpers/archive.js";

/**
 * The lease on a store without conditional writes (Swift): `put(…, { ifAbsent })` goes through
 * a claim marker there, and answers false while another replica's claim is in flight, before
 * that replica has written the lease itself. This stubs that moment (a real Swift produces it
 * only under load, as the two-replica sweeper test once did): the real folder store, whose
 * conditional put answers as Swift's marker path does when another replica's marker is there.
 */
describe("claimLease while another replica's claim is in flight", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let fs: Storage;
  /** What the replica ahead does once it has won its marker; nothing when it died. */
  let ahead: ((key: string) => void) | undefined;
  let storage: Storage;

  beforeAll(async () => {
    dir = await tempDir();
    fs = await createFsStorage({ root: dir.path });
    storage = {
      ...fs,
      get: fs.get.bind(fs),
      put: (key, body, options) => {
        if (!options?.ifAbsent) return fs.put(key, body, options);
        ahead?.(key);
        return Promise.resolve(false);
      },
    } as Storage;
  });
  afterAll(async () => {
    await dir?.cleanup();
  });

  it("stands back while the replica ahead writes its lease, even when the store is slow", async () => {
    // Replica A won the marker and writes its lease 300 ms later: slower than the read-back wait.
    ahead = (key) => void setTimeout(() => void fs.put(key, JSON.stringify({ owner: "replica-a", until: Date.now() + 60_000 })), 300);
    expect(await claimLease(storage, "state/lease", "replica-b", 60_000)).toBe(false);
    expect(JSON.parse(String(await fs.get("state/lease"))).owner).toBe("replica-a");
  });

  it("takes over when the replica ahead died before writing its lease", async () => {
    ahead = undefined;
    expect(await claimLease(storage, "state/orphan", "replica-b", 60_000)).toBe(true);
    expect(JSON.parse(String(await fs.get("state/orphan"))).owner).toBe("replica-b");
  });

  it("takes over a lease that ran out, or one that cannot be read", async () => {
    await fs.put("state/expired", JSON.stringify({ owner: "replica-a", until: Date.now() - 1 }));
    expect(await claimLease(storage, "state/expired", "replica-b", 60_000)).toBe(true);
    await fs.put("state/torn", "{not json");
    expect(await claimLease(storage, "state/torn", "replica-b", 60_000)).toBe(true);
    // A live lease of another is left alone.
    await fs.put("state/live", JSON.stringify({ owner: "replica-a", until: Date.now() + 60_000 }));
    expect(await claimLease(storage, "state/live", "replica-b", 60_000)).toBe(false);
  });
});
