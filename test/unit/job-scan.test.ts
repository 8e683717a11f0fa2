import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JobRunner } from "../../src/jobs/runner.js";
import { JobStore } from "../../src/jobs/store.js";
import type { JobRecord } from "../../src/jobs/types.js";
import { createLogger } from "../../src/log.js";
import type { Storage } from "../../src/storage/types.js";
import { uuidv7 } from "../../src/util/uuid.js";
import type { ZipballService } from "../../src/zipball/service.js";
import { createFsStorage, tempDir } from "../helpers/archive.js";

function job(status: JobRecord["status"]): JobRecord {
  return {
    uuid: uuidv7(),
    status,
    created_at: new Date().toISOString(),
    attempts: 1,
    owner: "k",
    request: { urls: [], bucket_name: "b", key: "k", service: "s3" },
  };
}

describe("job scans read only unfinished jobs once the first scan is done", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let storage: Storage;
  const reads: string[] = [];

  beforeAll(async () => {
    dir = await tempDir();
    const fs = await createFsStorage({ root: dir.path });
    // The real folder store, with its reads of job records counted.
    storage = {
      ...fs,
      get(key, opts) {
        if (/^\.zipgate\/jobs\/[^/]+\/job$/.test(key)) reads.push(key);
        return fs.get(key, opts);
      },
    };
  });
  afterAll(async () => {
    await storage.close();
    await dir.cleanup();
  });

  it("reads 200 finished jobs at the first scan of a process, and none of them at the next", async () => {
    const jobs = new JobStore(storage);
    for (let i = 0; i < 200; i++) await jobs.put(job(i % 2 ? "succeeded" : "failed"));
    expect(await jobs.pendingIds()).toEqual([]);
    // A pending job written before the marks existed: found by the first scan, marked then.
    const old = job("none");
    await storage.put(`.zipgate/jobs/${old.uuid}/job`, JSON.stringify(old));
    const queued: string[] = [];
    const runner = new JobRunner({ jobs, service: {} as ZipballService, destinations: [], logger: createLogger(() => {}), concurrency: 1, leaseMs: 60_000 });
    // What the scan queues is recorded instead of run.
    runner.enqueue = (uuid: string) => void queued.push(uuid);
    reads.length = 0;
    await runner.scan();
    expect(reads.length).toBe(201);
    expect(queued).toEqual([old.uuid]);
    expect(await jobs.pendingIds()).toEqual([old.uuid]);
    reads.length = 0;
    queued.length = 0;
    await runner.scan();
    expect(reads.length).toBe(1);
    expect(queued).toEqual([old.uuid]);
    // Finishing drops the mark: the next scan reads nothing at all.
    await jobs.put({ ...old, status: "succeeded" });
    reads.length = 0;
    await runner.scan();
    expect(reads).toEqual([]);
  });
});

describe("job ids", () => {
  it("are UUIDv7 in strictly increasing order, also many within one millisecond and when the clock steps back", () => {
    const now = Date.now() + 60_000;
    const ids = [
      ...Array.from({ length: 5000 }, () => uuidv7(now)),
      ...Array.from({ length: 10 }, () => uuidv7(now - 5000)),
      ...Array.from({ length: 10 }, () => uuidv7()),
    ];
    for (let i = 1; i < ids.length; i++) expect((ids[i] as string) > (ids[i - 1] as string), `${ids[i - 1]} < ${ids[i]}`).toBe(true);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
