import { createHash, randomBytes, randomUUID } from "node:crypto";
import { mkdir, readdir, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManifestSigner } from "../../src/manifest/token.js";
import { uuidv7 } from "../../src/util/uuid.js";
import { tempDir, writeTree } from "../helpers/archive.js";
import { TEST_KEY } from "../helpers/gateway.js";
import { type GatewayProcess, startGatewayProcess } from "../helpers/process.js";
import { adminClient, freshPrefix, putObjects, s3Env, s3Server } from "../helpers/s3.js";

const SECRET = "test-signing-secret-0123456789abcdef";
const DAY = 86_400_000;
const BIG = randomBytes(4 * 1024 * 1024);

/** A stored manifest as the gateway writes it (signed token, newline, entry list), expiring at `expMs`. */
async function manifestBody(expMs: number): Promise<string> {
  const entries = "[]";
  const token = await new ManifestSigner(SECRET).sign({
    id: randomUUID(),
    flavour: "bitpaket",
    items: [{ type: "file", key: "a.txt" }],
    filename: "a.zip",
    compression: "store",
    owner: "0123456789abcdef",
    iat: Math.floor((expMs - DAY) / 1000),
    exp: Math.floor(expMs / 1000),
    entries: createHash("sha256").update(entries).digest("hex"),
  });
  return `${token}\n${entries}`;
}

function job(status: string, completedMs: number | undefined): string {
  return JSON.stringify({
    uuid: uuidv7(),
    status,
    created_at: new Date((completedMs ?? Date.now()) - 60_000).toISOString(),
    completed_at: completedMs === undefined ? undefined : new Date(completedMs).toISOString(),
    attempts: 1,
    request: { urls: [], bucket_name: "exports", key: "x.zip", service: "s3" },
    owner: "0123456789abcdef",
  });
}

function sweptTotals(...processes: GatewayProcess[]): {
  zipballs: number;
  orphans: number;
  jobs: number;
  downloadLeases: number;
  crcShards: number;
  lines: number;
} {
  const totals = { zipballs: 0, orphans: 0, jobs: 0, downloadLeases: 0, crcShards: 0, lines: 0 };
  for (const p of processes) {
    for (const line of p.stdout().split("\n")) {
      if (!line.includes('"state swept"')) continue;
      const r = JSON.parse(line) as typeof totals;
      totals.zipballs += r.zipballs;
      totals.orphans += r.orphans;
      totals.jobs += r.jobs;
      totals.downloadLeases += r.downloadLeases;
      totals.crcShards += r.crcShards ?? 0;
      totals.lines += 1;
    }
  }
  return totals;
}

async function until(what: string, check: () => Promise<boolean>, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function post(gw: GatewayProcess, body: unknown): Promise<{ id: string; path: string }> {
  const res = await fetch(`${gw.url}/v2/zipball`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${TEST_KEY}` },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(201);
  const { ball_id: id, urls } = ((await res.json()) as { data: { ball_id: string; urls: { url: string } } }).data;
  const u = new URL(urls.url);
  return { id, path: u.pathname + u.search };
}

describe("the state sweeper on a folder store, with two replicas", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let root: string;
  let a: GatewayProcess;
  let b: GatewayProcess;
  const kept: string[] = [];

  beforeAll(async () => {
    dir = await tempDir();
    root = join(dir.path, "store");
    await writeTree(root, { "a.txt": "alpha", "big.bin": BIG });
    const state = join(root, ".zipgate");
    const old = new Date(Date.now() - 2 * DAY);
    // 10,000 zipballs that expired two days ago, a tenth with CRC records and Box progress.
    const expired = await manifestBody(Date.now() - 2 * DAY);
    for (let i = 0; i < 10_000; i += 500) {
      await Promise.all(
        Array.from({ length: 500 }, async (_, j) => {
          const folder = join(state, "zipballs", randomUUID());
          await mkdir(folder, { recursive: true });
          await writeFile(join(folder, "manifest"), expired);
          if ((i + j) % 10 === 0) {
            await writeFile(join(folder, "crcs"), "x");
            await writeFile(join(folder, "progress"), "{}");
          }
        }),
      );
    }
    // Expired an hour ago: kept for a day after expiry. Orphans: old ones go, fresh ones stay.
    const recent = await manifestBody(Date.now() - 3600_000);
    for (let i = 0; i < 5; i++) {
      const id = randomUUID();
      kept.push(id);
      await mkdir(join(state, "zipballs", id), { recursive: true });
      await writeFile(join(state, "zipballs", id, "manifest"), recent);
    }
    for (let i = 0; i < 13; i++) {
      const id = randomUUID();
      await mkdir(join(state, "zipballs", id), { recursive: true });
      await writeFile(join(state, "zipballs", id, "crcs"), "x");
      if (i < 10) await utimes(join(state, "zipballs", id, "crcs"), old, old);
      else kept.push(id);
    }
    // Jobs: five finished 40 days ago go (with their lease); recent, and unfinished, stay.
    const jobs = [
      ...Array.from({ length: 5 }, () => ({ status: "succeeded", at: Date.now() - 40 * DAY, gone: true })),
      { status: "failed", at: Date.now() - 2 * DAY, gone: false },
      { status: "processing", at: undefined, gone: false },
    ];
    for (const j of jobs) {
      const body = job(j.status, j.at);
      const uuid = (JSON.parse(body) as { uuid: string }).uuid;
      await mkdir(join(state, "jobs", uuid), { recursive: true });
      await writeFile(join(state, "jobs", uuid, "job"), body);
      await writeFile(join(state, "jobs", uuid, "lease"), JSON.stringify({ owner: "x", until: 0 }));
      const t = new Date(j.at ?? Date.now() - 40 * DAY);
      await utimes(join(state, "jobs", uuid, "job"), t, t);
    }
    // Download leases of a replica that died two hours ago go; a running one stays.
    await mkdir(join(state, "downloads", "0123456789abcdef"), { recursive: true });
    for (let i = 0; i < 3; i++) {
      const p = join(state, "downloads", "0123456789abcdef", uuidv7());
      await writeFile(p, "");
      const t = new Date(Date.now() - 2 * 3600_000);
      await utimes(p, t, t);
    }
    await writeFile(join(state, "downloads", "0123456789abcdef", uuidv7()), "");
    // CRC-index shards of folders nobody has read for 100 days go; recent ones stay.
    await mkdir(join(state, "crc"), { recursive: true });
    const stale = new Date(Date.now() - 100 * DAY);
    for (let i = 0; i < 2000; i += 200) {
      await Promise.all(
        Array.from({ length: 200 }, async (_, j) => {
          const p = join(state, "crc", `${(i + j).toString(16).padStart(32, "0")}`);
          await writeFile(p, "mac\n{}");
          await utimes(p, stale, stale);
        }),
      );
    }
    await writeFile(join(state, "crc", "f".repeat(32)), "mac\n{}");

    const env = { ZIPGATE_STORAGE: root, ZIPGATE_SWEEP_INTERVAL: "1s", ZIPGATE_SWEEP_RATE: "20000" };
    [a, b] = await Promise.all([startGatewayProcess(env), startGatewayProcess(env)]);
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await dir?.cleanup();
  });

  it("sweeps 10,000 expired zipballs to none, once, while downloads go on, and keeps what is due to stay", async () => {
    const live = await post(a, { objects: [{ path: "/a.txt" }, { path: "/big.bin" }] });
    let downloads = 0;
    let sweeping = true;
    const downloader = (async () => {
      // Downloads on both replicas for as long as the sweep runs: each one whole and exact.
      while (sweeping) {
        const res = await fetch((downloads % 2 === 0 ? a : b).url + live.path);
        expect(res.status).toBe(200);
        const body = Buffer.from(await res.arrayBuffer());
        expect(body.length).toBe(Number(res.headers.get("content-length")));
        expect(body.includes(BIG.subarray(0, 1024 * 1024))).toBe(true);
        downloads += 1;
        // A steady stream of downloads, not one that takes every core from the sweep.
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const zipballs = join(root, ".zipgate", "zipballs");
    await until("the expired zipballs are gone", async () => (await readdir(zipballs)).length <= kept.length + 1, 240_000).catch((err: Error) => {
      throw new Error(`${err.message}: ${(a.stdout() + b.stdout()).slice(-2000)} ${a.stderr()}`);
    });
    sweeping = false;
    await downloader;
    expect(downloads).toBeGreaterThan(0);
    expect((await readdir(zipballs)).sort()).toEqual([...kept, live.id].sort());
    // Only one replica swept each object: the counts add up to exactly what there was.
    await until("the sweep is logged", async () => sweptTotals(a, b).lines > 0, 10_000);
    await until("the stale CRC shards are gone", async () => sweptTotals(a, b).crcShards >= 2000, 60_000);
    expect(sweptTotals(a, b)).toMatchObject({ zipballs: 10_000, orphans: 10, jobs: 5, downloadLeases: 3, crcShards: 2000 });
    const shards = await readdir(join(root, ".zipgate", "crc"));
    expect(shards).toContain("f".repeat(32));
    expect(shards.every((name) => !/^0{20}/.test(name))).toBe(true);
    // Counted in the metrics too, by the replica that swept each.
    const swept = async (p: GatewayProcess): Promise<number> =>
      Number(/zipgate_swept_total\{what="crc_shards"\} (\d+)/.exec(await (await fetch(`${p.url}/metrics`)).text())?.[1] ?? 0);
    expect((await swept(a)) + (await swept(b))).toBe(2000);
    expect((await readdir(join(root, ".zipgate", "jobs"))).length).toBe(2);
    expect((await readdir(join(root, ".zipgate", "downloads", "0123456789abcdef"))).length).toBe(1);
    // What stayed still works.
    const again = await fetch(b.url + live.path);
    expect(again.status).toBe(200);
    await again.arrayBuffer();
    for (const p of [a, b]) expect(p.stdout()).not.toContain('"level":"error"');
  }, 300_000);
});

describe("the state sweeper on Swift, with two replicas", () => {
  let a: GatewayProcess;
  let b: GatewayProcess;
  const prefix = freshPrefix("sweep");
  const client = adminClient();

  beforeAll(async () => {
    await putObjects(client, prefix, { "a.txt": "alpha" });
    const expired = await manifestBody(Date.now() - 2 * DAY);
    const objects: Record<string, string> = {};
    for (let i = 0; i < 60; i++) {
      const id = randomUUID();
      objects[`.zipgate/zipballs/${id}/manifest`] = expired;
      if (i % 3 === 0) objects[`.zipgate/zipballs/${id}/progress`] = "{}";
    }
    const finished = job("succeeded", Date.now() - 40 * DAY);
    const uuid = (JSON.parse(finished) as { uuid: string }).uuid;
    objects[`.zipgate/jobs/${uuid}/job`] = finished;
    // A store without conditional writes keeps a claim marker beside a lease: it goes too.
    objects[`.zipgate/jobs/${uuid}/lease`] = JSON.stringify({ owner: "x", until: 0 });
    objects[`.zipgate/jobs/${uuid}/lease.claim`] = "token";
    await putObjects(client, prefix, objects);
    const env = { ...s3Env(prefix), ZIPGATE_SWEEP_INTERVAL: "1s", ZIPGATE_JOB_RETENTION: "1s" };
    [a, b] = await Promise.all([startGatewayProcess(env), startGatewayProcess(env)]);
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    client.destroy();
  });

  async function keys(under: string): Promise<string[]> {
    const s3 = s3Server();
    const out = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix + under }));
    return (out.Contents ?? []).map((o) => (o.Key as string).slice(prefix.length));
  }

  it("removes expired zipballs and finished jobs past retention, and keeps a live zipball", async () => {
    const live = await post(a, { objects: [{ path: "/a.txt" }] });
    await until("the expired state is gone", async () => {
      const left = await keys(".zipgate/zipballs/");
      return left.length === 1 && (await keys(".zipgate/jobs/")).length === 0;
    });
    expect(await keys(".zipgate/zipballs/")).toEqual([`.zipgate/zipballs/${live.id}/manifest`]);
    const res = await fetch(a.url + live.path);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect(sweptTotals(a, b)).toMatchObject({ zipballs: 60, jobs: 1 });
  });
});
