import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keyId } from "../../src/auth.js";
import { createFsStorage } from "../../src/storage/fs.js";
import type { Storage } from "../../src/storage/types.js";
import { uuidv7 } from "../../src/util/uuid.js";
import { tempDir, writeTree } from "../helpers/archive.js";
import { type RunningGateway, startGateway, TEST_KEY } from "../helpers/gateway.js";
import { type Origin, startOrigin } from "../helpers/origin.js";
import { type GatewayProcess, startGatewayProcess } from "../helpers/process.js";
import { adminClient, s3Server } from "../helpers/s3.js";
import { sha256, verifyWithUnzippers } from "../helpers/unzippers.js";
import { startWebhookReceiver } from "../helpers/webhook.js";

const BUCKET = "zipgate-jobs";
const WEBHOOK_SECRET = "webhook-secret-0123456789";

type Job = Record<string, any>;

/** Where the test key's outputs go: the default destination prefix is the caller's key id. */
const OWN = `${keyId(TEST_KEY)}/`;

/** A gateway process as the helpers here use a gateway: its URL, and POSTs with `key`. */
function viaProcess(p: GatewayProcess, key = TEST_KEY): RunningGateway {
  return {
    url: p.url,
    post: (path: string, body: unknown) =>
      fetch(p.url + path, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${key}` }, body: JSON.stringify(body) }),
  } as unknown as RunningGateway;
}

describe("ZipKit-style jobs writing zips into a bucket (Swift)", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let root: string;
  let origin: Origin;
  let client: S3Client;
  let hook: Awaited<ReturnType<typeof startWebhookReceiver>>;
  let gw: RunningGateway;
  let env: Record<string, string>;

  const submit = async (body: unknown, on = gw): Promise<Job> => {
    const res = await on.post("/api/v1/zips", body);
    const text = await res.text();
    expect(res.status, text).toBe(201);
    return JSON.parse(text) as Job;
  };
  const get = async (uuid: string, on = gw): Promise<Job> =>
    (await (await fetch(`${on.url}/api/v1/zips/${uuid}`, { headers: { authorization: `Bearer ${TEST_KEY}` } })).json()) as Job;
  const settle = async (uuid: string, on = gw, until = (j: Job) => j.status === "succeeded" || j.status === "failed"): Promise<Job> => {
    for (let i = 0; i < 600; i++) {
      const job = await get(uuid, on);
      if (until(job)) return job;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`job ${uuid} did not settle`);
  };
  const noUploadsLeft = async (key: string): Promise<void> => {
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: key }));
    expect(uploads.Uploads ?? []).toEqual([]);
  };

  beforeAll(async () => {
    dir = await tempDir();
    root = join(dir.path, "store");
    await writeTree(root, { "stored/notes.txt": "stored notes" });
    origin = await startOrigin();
    origin.files.set("a.txt", Buffer.from("alpha"));
    origin.files.set("b.bin", Buffer.alloc(9 * 1024 * 1024, 3));
    origin.files.set("slow.bin", Buffer.alloc(64 * 1024, 5));
    client = adminClient();
    await client.send(new CreateBucketCommand({ Bucket: BUCKET })).catch(() => {});
    hook = await startWebhookReceiver(WEBHOOK_SECRET, 2);
    const s3 = s3Server();
    env = {
      ZIPGATE_URL_ALLOW: "127.0.0.1",
      ZIPGATE_DESTINATIONS: JSON.stringify([
        {
          bucket: BUCKET,
          service: "s3",
          endpoint: s3.endpoint,
          region: s3.region,
          force_path_style: true,
          access_key_id: s3.admin.accessKeyId,
          secret_access_key: s3.admin.secretAccessKey,
        },
      ]),
      ZIPGATE_WEBHOOK_URL: hook.url,
      ZIPGATE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      ZIPGATE_WEBHOOK_BACKOFF_MS: "20",
      ZIPGATE_JOB_LEASE: "2",
    };
    gw = await startGateway({ root, env });
  });
  afterAll(async () => {
    await gw?.close();
    await origin?.close();
    await hook?.close();
    client?.destroy();
    await dir.cleanup();
  });

  it("keeps each key's outputs under its own prefix: the same key name from two API keys gives two objects", async () => {
    const other = "second-key-0123456789abcdef";
    const two = await startGateway({ root, env: { ...env, ZIPGATE_API_KEYS: `${TEST_KEY},${other}`, ZIPGATE_WEBHOOK_URL: "" } });
    try {
      const mine = await submit({ urls: [{ url: `${origin.url}/files/a.txt` }], bucket_name: BUCKET, key: "shared/same.zip" }, two);
      const res = await two.post("/api/v1/zips", { urls: [{ url: `${origin.url}/files/b.bin` }], bucket_name: BUCKET, key: "shared/same.zip" }, other);
      expect(res.status).toBe(201);
      const theirs = (await res.json()) as Job & { key: string };
      expect((mine as Job & { key: string }).key).toBe(`${OWN}shared/same.zip`);
      expect(theirs.key).toBe(`${keyId(other)}/shared/same.zip`);
      expect((await settle(mine.uuid, two)).status).toBe("succeeded");
      await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${OWN}shared/same.zip` }));
      const bad = await two.post("/api/v1/zips", { urls: [{ url: `${origin.url}/files/a.txt` }], bucket_name: BUCKET, key: "../escape.zip" });
      expect(bad.status).toBe(400);
    } finally {
      await two.close();
    }
  });

  it("zips URLs into the bucket, records size and ETag, and signs a zip.completed webhook delivered after retries", async () => {
    const job = await submit({
      urls: [
        { url: `${origin.url}/files/a.txt`, filename: "docs/a.txt" },
        { url: `${origin.url}/files/b.bin`, filename: "data/b.bin" },
        { url: `${origin.url}/redirect/2`, filename: "docs/a.txt" },
      ],
      objects: [{ path: "/stored/notes.txt" }],
      bucket_name: BUCKET,
      key: "exports/first.zip",
      service: "s3",
      metadata: { customer: "acme" },
    });
    expect(job.status).toBe("none");
    const done = await settle(job.uuid);
    expect(done.status, JSON.stringify(done.error)).toBe("succeeded");
    expect(done.result.size).toBeGreaterThan(9 * 1024 * 1024);
    expect(done.result.etag).toMatch(/^"/);
    const object = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${OWN}exports/first.zip` }));
    expect(object.Metadata?.customer).toBe("acme");
    const bytes = Buffer.from(await (object.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
    expect(bytes.length).toBe(done.result.size);
    const zip = join(dir.path, "job.zip");
    await writeFile(zip, bytes);
    await verifyWithUnzippers(zip, [
      { name: "docs/a.txt", sha256: sha256("alpha") },
      { name: "data/b.bin", sha256: sha256(Buffer.alloc(9 * 1024 * 1024, 3)) },
      { name: "docs/a (1).txt", sha256: sha256("alpha") },
      { name: "notes.txt", sha256: sha256("stored notes") },
    ]);
    await noUploadsLeft(`${OWN}exports/first.zip`);

    const delivered = await settle(job.uuid, gw, (j) => j.webhook?.state === "delivered");
    expect(delivered.webhook.attempts).toBe(3);
    const event = hook.events.find((e) => e.data.uuid === job.uuid);
    expect(event?.type).toBe("zip.completed");
    expect(event?.signatureValid).toBe(true);
    // Counted as it happened: the job, the delivery and its three attempts.
    const scrape = await (await fetch(`${gw.url}/metrics`)).text();
    const value = (line: string): number => Number(new RegExp(`^${line.replace(/[{}]/g, "\\$&")} (\\S+)$`, "m").exec(scrape)?.[1] ?? Number.NaN);
    expect(value('zipgate_jobs_finished_total{status="succeeded"}')).toBeGreaterThanOrEqual(1);
    expect(value('zipgate_webhook_deliveries_total{outcome="delivered"}')).toBeGreaterThanOrEqual(1);
    expect(value("zipgate_webhook_attempts_total")).toBeGreaterThanOrEqual(3);
    expect(value('zipgate_creations_total{flavour="zipkit",outcome="created"}')).toBeGreaterThanOrEqual(1);
  });

  it("fails a job whose source is missing, names the URL and status, and leaves no object and no parts", async () => {
    const job = await submit({
      urls: [{ url: `${origin.url}/files/a.txt` }, { url: `${origin.url}/missing` }],
      bucket_name: BUCKET,
      key: "exports/broken.zip",
    });
    const done = await settle(job.uuid);
    expect(done.status).toBe("failed");
    expect(done.error).toMatchObject({ type: "source_error", code: "not_found", url: `${origin.url}/missing` });
    await expect(client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${OWN}exports/broken.zip` }))).rejects.toMatchObject({
      $metadata: { httpStatusCode: 404 },
    });
    await noUploadsLeft(`${OWN}exports/broken.zip`);
    const failed = await settle(job.uuid, gw, (j) => j.webhook?.state === "delivered");
    expect(hook.events.find((e) => e.data.uuid === failed.uuid)?.type).toBe("zip.failed");
  });

  it("aborts the multipart upload when a source resets after more than a part", async () => {
    const job = await submit({ urls: [{ url: `${origin.url}/reset` }], bucket_name: BUCKET, key: "exports/reset.zip" });
    const done = await settle(job.uuid);
    expect(done.status).toBe("failed");
    expect(done.error.type, JSON.stringify(done.error)).toBe("source_error");
    await expect(client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${OWN}exports/reset.zip` }))).rejects.toMatchObject({
      $metadata: { httpStatusCode: 404 },
    });
    await noUploadsLeft(`${OWN}exports/reset.zip`);
  });

  it("runs a job again from the start when the gateway restarts while it is processing", async () => {
    const first = await startGateway({ root, env });
    const job = await submit({ urls: [{ url: `${origin.url}/slow` }], bucket_name: BUCKET, key: "exports/restarted.zip" }, first);
    await settle(job.uuid, first, (j) => j.status === "processing");
    await first.close();
    origin.release();
    const second = await startGateway({ root, env });
    try {
      const done = await settle(job.uuid, second);
      expect(done.status).toBe("succeeded");
      expect(done.attempts).toBe(2);
      await noUploadsLeft(`${OWN}exports/restarted.zip`);
    } finally {
      await second.close();
    }
  });

  it("runs each job once with two gateway processes on one store", async () => {
    const [one, two] = await Promise.all([startGatewayProcess({ ZIPGATE_STORAGE: root, ...env }), startGatewayProcess({ ZIPGATE_STORAGE: root, ...env })]);
    const replicas = [one, two].map((p) => viaProcess(p));
    try {
      const jobs = [];
      for (let i = 0; i < 6; i++) {
        origin.files.set(`once-${i}.txt`, Buffer.from(`once ${i}`));
        jobs.push(await submit({ urls: [{ url: `${origin.url}/files/once-${i}.txt` }], bucket_name: BUCKET, key: `exports/once-${i}.zip` }, replicas[i % 2]));
      }
      for (const [i, job] of jobs.entries()) expect((await settle(job.uuid, replicas[(i + 1) % 2])).status).toBe("succeeded");
      // Both processes scan the store; the lease lets only one fetch each source.
      for (let i = 0; i < 6; i++) expect(origin.gets.get(`/files/once-${i}.txt`)).toBe(1);
    } finally {
      await Promise.all([one.stop(), two.stop()]);
    }
  });

  it("validates jobs at creation, and lists them newest first with pagination", async () => {
    const bad = async (body: unknown, code: string): Promise<void> => {
      const res = await gw.post("/api/v1/zips", body);
      expect(res.status).toBe(400);
      const json = (await res.json()) as { error: { code: string; type: string } };
      expect(json.error.code).toBe(code);
      expect(json.error.type).toBe("invalid_request_error");
    };
    await bad({ urls: [{ url: `${origin.url}/files/a.txt` }], bucket_name: "not-configured", key: "x.zip" }, "unknown_bucket");
    await bad({ urls: [{ url: `${origin.url}/files/a.txt` }], bucket_name: BUCKET, key: "x.zip", service: "r2" }, "invalid_field");
    await bad({ urls: [{ url: "http://10.0.0.5/x" }], bucket_name: BUCKET, key: "x.zip" }, "url_not_allowed");
    await bad({ urls: [{ url: "gopher://x" }], bucket_name: BUCKET, key: "x.zip" }, "invalid_url");
    await bad({ urls: [], bucket_name: BUCKET, key: "x.zip" }, "invalid_request");

    const page1 = (await (await fetch(`${gw.url}/api/v1/zips?limit=2`, { headers: { authorization: `Bearer ${TEST_KEY}` } })).json()) as {
      data: Job[];
      next_cursor: string;
    };
    expect(page1.data).toHaveLength(2);
    expect(page1.data[0]?.created_at >= (page1.data[1]?.created_at as string)).toBe(true);
    const page2 = (await (
      await fetch(`${gw.url}/api/v1/zips?limit=2&cursor=${page1.next_cursor}`, { headers: { authorization: `Bearer ${TEST_KEY}` } })
    ).json()) as { data: Job[] };
    expect(page2.data[0]?.uuid).not.toBe(page1.data[1]?.uuid);
    expect(page2.data[0]?.created_at <= (page1.data[1]?.created_at as string)).toBe(true);
  });

  it("delivers webhooks outside job slots: a receiver asking to wait ten minutes delays no other job", async () => {
    // A receiver that answers every delivery 503 with Retry-After: 600.
    const { createServer } = await import("node:http");
    let deliveries = 0;
    const stubborn = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        deliveries += 1;
        res.writeHead(503, { "retry-after": "600" }).end();
      });
    });
    await new Promise<void>((r) => stubborn.listen(0, "127.0.0.1", r));
    const hookUrl = `http://127.0.0.1:${(stubborn.address() as { port: number }).port}/hook`;
    // A store of its own: no other gateway of this file scans (and runs) these jobs.
    const one = await startGatewayProcess({ ZIPGATE_STORAGE: join(dir.path, "own-hooks"), ...env, ZIPGATE_WEBHOOK_URL: hookUrl, ZIPGATE_JOB_CONCURRENCY: "1" });
    const on = viaProcess(one);
    try {
      const jobs = [];
      for (let i = 0; i < 3; i++) {
        origin.files.set(`slot-${i}.txt`, Buffer.from(`slot ${i}`));
        jobs.push(await submit({ urls: [{ url: `${origin.url}/files/slot-${i}.txt` }], bucket_name: BUCKET, key: `exports/slot-${i}.zip` }, on));
      }
      // One job slot: each job ran after the one before, whose webhook is still waiting.
      for (const job of jobs) {
        const done = await settle(job.uuid, on);
        expect(done.status).toBe("succeeded");
        expect(done.webhook).toMatchObject({ state: "pending" });
      }
      await new Promise((r) => setTimeout(r, 200));
      expect(deliveries).toBe(3);
    } finally {
      await one.stop();
      await new Promise<void>((r) => {
        stubborn.closeAllConnections();
        stubborn.close(() => r());
      });
    }
  });

  it("lists a key's jobs from its own index: another key's many jobs cost it nothing, and a cursor reveals nothing", async () => {
    const other = "listing-key-0123456789abcdef";
    const fs = await createFsStorage({ root });
    let gets = 0;
    // The real folder store, its reads of job records counted.
    const storage: Storage = {
      ...fs,
      get: (key, ...rest) => {
        if (key.includes("jobs/")) gets += 1;
        return fs.get(key, ...rest);
      },
    };
    const two = await startGateway({ storage, env: { ...env, ZIPGATE_API_KEYS: `${TEST_KEY},${other}`, ZIPGATE_WEBHOOK_URL: "" } });
    const list = async (key: string, query = ""): Promise<{ status: number; body: { data: Job[]; next_cursor: string | null } }> => {
      const res = await fetch(`${two.url}/api/v1/zips${query}`, { headers: { authorization: `Bearer ${key}` } });
      return { status: res.status, body: (await res.json()) as { data: Job[]; next_cursor: string | null } };
    };
    try {
      const mine: Job[] = [];
      for (let i = 0; i < 4; i++)
        mine.push(await submit({ urls: [{ url: `${origin.url}/files/a.txt` }], bucket_name: BUCKET, key: `exports/listed-${i}.zip` }, two));
      for (const job of mine) await settle(job.uuid, two);
      gets = 0;
      const empty = await list(other);
      expect(empty).toEqual({ status: 200, body: { data: [], next_cursor: null } });
      expect(gets).toBe(0);
      // Another key's job id, or any other well-formed cursor: the same empty page.
      expect(await list(other, `?cursor=${mine[0]?.uuid}`)).toEqual(empty);
      expect(await list(other, `?cursor=${uuidv7()}`)).toEqual(empty);
      expect((await list(other, "?cursor=not-a-cursor")).status).toBe(400);
      gets = 0;
      const page = await list(TEST_KEY, "?limit=2");
      expect(page.body.data.map((j) => j.uuid)).toEqual([mine[3]?.uuid, mine[2]?.uuid]);
      expect(gets).toBeLessThanOrEqual(3);
      const rest = await list(TEST_KEY, `?limit=2&cursor=${page.body.next_cursor}`);
      expect(rest.body.data.map((j) => j.uuid)).toEqual([mine[1]?.uuid, mine[0]?.uuid]);
    } finally {
      await two.close();
    }
  });

  it("takes keys in turn: a key's queued jobs do not delay another key's", async () => {
    const { createServer } = await import("node:http");
    let open!: () => void;
    const gate = new Promise<void>((r) => {
      open = r;
    });
    // The first job's source answers only when the gate opens: the queue fills behind it.
    const held = createServer((req, res) => {
      if (req.url === "/held") void gate.then(() => res.end("held"));
      else res.end("quick");
    });
    await new Promise<void>((r) => held.listen(0, "127.0.0.1", r));
    const base = `http://127.0.0.1:${(held.address() as { port: number }).port}`;
    const other = "turn-key-0123456789abcdef";
    // A store of its own: no other gateway of this file scans (and runs) these jobs.
    const one = await startGatewayProcess({
      ZIPGATE_STORAGE: join(dir.path, "own-turns"),
      ...env,
      ZIPGATE_API_KEYS: `${TEST_KEY},${other}`,
      ZIPGATE_WEBHOOK_URL: "",
      ZIPGATE_JOB_CONCURRENCY: "1",
    });
    const on = (key: string) => viaProcess(one, key);
    const getAs = async (uuid: string, key: string): Promise<Job> =>
      (await (await fetch(`${one.url}/api/v1/zips/${uuid}`, { headers: { authorization: `Bearer ${key}` } })).json()) as Job;
    try {
      const a: Job[] = [await submit({ urls: [{ url: `${base}/held` }], bucket_name: BUCKET, key: "exports/turn-a0.zip" }, on(TEST_KEY))];
      for (let i = 1; i <= 4; i++) a.push(await submit({ urls: [{ url: `${base}/q${i}` }], bucket_name: BUCKET, key: `exports/turn-a${i}.zip` }, on(TEST_KEY)));
      const res = await on(other).post("/api/v1/zips", { urls: [{ url: `${base}/b` }], bucket_name: BUCKET, key: "exports/turn-b.zip" });
      expect(res.status).toBe(201);
      const b = (await res.json()) as Job;
      open();
      const finished = async (uuid: string, key: string): Promise<Job> => {
        for (let i = 0; i < 600; i++) {
          const job = await getAs(uuid, key);
          if (job.status === "succeeded" || job.status === "failed") return job;
          await new Promise((r) => setTimeout(r, 50));
        }
        throw new Error(`job ${uuid} did not finish`);
      };
      const doneB = await finished(b.uuid, other);
      const doneA = await Promise.all(a.map((j) => finished(j.uuid, TEST_KEY)));
      expect([doneB, ...doneA].every((j) => j.status === "succeeded")).toBe(true);
      // FIFO would run B after all of A's; in turn, B runs right after A's first two at most.
      const startedBefore = doneA.filter((j) => j.started_at < doneB.started_at).length;
      expect(startedBefore).toBeLessThanOrEqual(2);
    } finally {
      await one.stop();
      await new Promise<void>((r) => {
        held.closeAllConnections();
        held.close(() => r());
      });
    }
  });

  it("fails a job whose destination accepts connections and never answers, instead of holding its slot", async () => {
    const { createServer } = await import("node:net");
    const silent = new Set<import("node:net").Socket>();
    const blackhole = createServer((socket) => {
      silent.add(socket);
      socket.on("error", () => {});
    });
    await new Promise<void>((r) => blackhole.listen(0, "127.0.0.1", r));
    const endpoint = `http://127.0.0.1:${(blackhole.address() as { port: number }).port}`;
    const s3 = s3Server();
    const one = await startGatewayProcess({
      ZIPGATE_STORAGE: join(dir.path, "own-blackhole"),
      ...env,
      ZIPGATE_WEBHOOK_URL: "",
      ZIPGATE_STORE_TIMEOUT: "1s",
      ZIPGATE_DESTINATIONS: JSON.stringify([
        { bucket: "silent", service: "s3", endpoint, region: s3.region, force_path_style: true, access_key_id: "x", secret_access_key: "y" },
      ]),
    });
    const on = viaProcess(one);
    try {
      const job = await submit({ urls: [{ url: `${origin.url}/files/a.txt` }], bucket_name: "silent", key: "exports/never.zip" }, on);
      const done = await settle(job.uuid, on);
      expect(done.status).toBe("failed");
      expect(done.error).toMatchObject({ type: "destination_error", code: "upload_failed" });
      expect(silent.size).toBeGreaterThan(0);
    } finally {
      await one.stop();
      for (const sock of silent) sock.destroy();
      await new Promise<void>((r) => blackhole.close(() => r()));
    }
  });
});
