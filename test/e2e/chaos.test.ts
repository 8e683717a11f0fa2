import { randomBytes, randomUUID } from "node:crypto";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { tempDir, writeTree } from "../helpers/archive.js";
import { TEST_KEY } from "../helpers/gateway.js";
import { descriptorTargets, type GatewayProcess, openDescriptors, startGatewayProcess } from "../helpers/process.js";
import { adminClient, freshPrefix, putObjects, s3Env, s3Server } from "../helpers/s3.js";

/**
 * Hostile clients against a gateway running as its own process: every route, with and
 * without a key, the request sent whole or cut in its headers or body, the socket closed
 * after a random delay. Seeded (CHAOS_SEED), so a failing run can be replayed.
 */
const SEED = Number(process.env.CHAOS_SEED ?? 20261201);
const TRIES = Number(process.env.CHAOS_TRIES ?? 320);
const PARALLEL = 16;

/** mulberry32: small, seedable, good enough to pick routes and delays. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Prepared {
  zipball: string;
  /** Zipballs of larger objects, each fresh: a suffix range makes the gateway compute CRCs. */
  crcZipballs: string[];
  boxContent: string[];
  boxStatus: string[];
}

interface Route {
  method: string;
  path: string;
  body?: string;
  headers?: Record<string, string>;
}

function routes(p: Prepared, pick: () => number): Route[] {
  const any = <T>(list: T[]): T => list[Math.floor(pick() * list.length)] as T;
  const json = (body: unknown): Pick<Route, "body" | "headers"> => ({ body: JSON.stringify(body), headers: { "content-type": "application/json" } });
  return [
    { method: "POST", path: "/v2/zipball", ...json({ objects: [{ path: "/docs/a.txt" }, { folder: "/docs" }] }) },
    { method: "POST", path: "/v2/zipball", ...json({ objects: [{ folder: "/many" }, { folder: "/many" }] }) },
    { method: "POST", path: "/v2/zipball", ...json({ objects: [{ path: "/missing.txt" }] }) },
    { method: "GET", path: `/${randomUUID()}.zip?zipball` },
    { method: "GET", path: p.zipball },
    { method: "HEAD", path: p.zipball },
    { method: "GET", path: p.zipball, headers: { range: "bytes=100-2000" } },
    { method: "GET", path: any(p.crcZipballs), headers: { range: "bytes=-100" } },
    { method: "POST", path: "/2.0/zip_downloads", ...json({ items: [{ type: "folder", id: "/docs" }], download_file_name: "x" }) },
    { method: "GET", path: any(p.boxContent) },
    { method: "HEAD", path: any(p.boxContent) },
    { method: "GET", path: any(p.boxStatus) },
    { method: "GET", path: `/2.0/zip_downloads/${randomUUID()}/content` },
    { method: "POST", path: "/api/v1/zips", ...json({ urls: [{ url: "https://example.com/a" }], bucket_name: "nope", key: "a.zip" }) },
    { method: "GET", path: "/api/v1/zips?limit=5" },
    { method: "GET", path: `/api/v1/zips/${randomUUID()}` },
    { method: "POST", path: "/v2/objects", ...json({ path: "/docs/a.txt" }) },
    { method: "GET", path: `/v2/objects/${randomUUID()}` },
    { method: "GET", path: "/nope" },
    { method: "POST", path: "/v2/zipball", body: "{not json", headers: { "content-type": "application/json" } },
  ];
}

/** One hostile try: the request (maybe cut), then the socket destroyed after `delay` ms. */
function attack(base: URL, route: Route, withKey: boolean, cut: "whole" | "headers" | "body", at: number, delay: number): Promise<void> {
  const body = Buffer.from(route.body ?? "");
  const lines = [`${route.method} ${route.path} HTTP/1.1`, `host: ${base.host}`];
  if (withKey) lines.push(`authorization: Bearer ${TEST_KEY}`);
  for (const [k, v] of Object.entries(route.headers ?? {})) lines.push(`${k}: ${v}`);
  if (body.length > 0) lines.push(`content-length: ${body.length}`);
  const head = Buffer.from(`${lines.join("\r\n")}\r\n\r\n`);
  let bytes = Buffer.concat([head, body]);
  if (cut === "headers") bytes = head.subarray(0, Math.max(1, Math.floor(at * head.length)));
  if (cut === "body") bytes = Buffer.concat([head, body.subarray(0, Math.floor(at * body.length))]);
  return new Promise((resolve) => {
    const socket = connect(Number(base.port), base.hostname);
    socket.on("error", () => {});
    socket.on("data", () => {}); // read whatever comes, at full speed
    socket.once("connect", () => {
      socket.write(bytes);
      setTimeout(() => {
        socket.destroy();
        resolve();
      }, delay);
    });
    socket.once("close", () => resolve());
  });
}

async function prepare(gw: GatewayProcess): Promise<Prepared> {
  const post = async (path: string, body: unknown): Promise<Record<string, unknown>> => {
    const res = await fetch(gw.url + path, {
      method: "POST",
      headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    expect(res.status, text).toBeLessThan(300);
    return JSON.parse(text) as Record<string, unknown>;
  };
  const path = (url: string): string => {
    const u = new URL(url);
    return u.pathname + u.search;
  };
  const ball = (await post("/v2/zipball", { objects: [{ folder: "/docs" }, { folder: "/many" }] })) as { data: { urls: { url: string } } };
  const crcZipballs: string[] = [];
  for (let i = 0; i < 12; i++) {
    const made = (await post("/v2/zipball", { objects: [{ folder: "/big" }] })) as { data: { urls: { url: string } } };
    crcZipballs.push(path(made.data.urls.url));
  }
  const boxContent: string[] = [];
  const boxStatus: string[] = [];
  for (let i = 0; i < 12; i++) {
    const made = (await post("/2.0/zip_downloads", { items: [{ type: "folder", id: "/docs" }] })) as { download_url: string; status_url: string };
    boxContent.push(path(made.download_url));
    boxStatus.push(path(made.status_url));
  }
  return { zipball: path(ball.data.urls.url), crcZipballs, boxContent, boxStatus };
}

const TREE: Record<string, string | Buffer> = {
  "docs/a.txt": "alpha",
  "docs/sub/b.txt": "beta",
  ...Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`many/f${i}.txt`, `file ${i}`])),
  ...Object.fromEntries(Array.from({ length: 4 }, (_, i) => [`big/b${i}.bin`, randomBytes(2 * 1024 * 1024)])),
};

async function survive(gw: GatewayProcess, ignorePorts: number[]): Promise<void> {
  const prepared = await prepare(gw);
  // Downloads at once, normally, so that the store's threads (made as load needs them, up
  // to their limit) and caches exist before counting.
  for (let round = 0; round < 3; round++) {
    await Promise.all(Array.from({ length: 16 }, async () => (await fetch(gw.url + prepared.zipball)).arrayBuffer()));
  }
  await (await fetch(`${gw.url}/healthz`)).text();
  const pid = gw.child.pid as number;
  const before = openDescriptors(pid, ignorePorts);
  const beforeTargets = descriptorTargets(pid, ignorePorts);

  const pick = prng(SEED);
  const base = new URL(gw.url);
  let next = 0;
  let tried = 0;
  const worker = async (): Promise<void> => {
    while (next < TRIES) {
      next += 1;
      const list = routes(prepared, pick);
      const route = list[Math.floor(pick() * list.length)] as Route;
      const r = pick();
      const cut = r < 0.2 ? "headers" : r < 0.4 && route.body ? "body" : "whole";
      await attack(base, route, pick() < 0.8, cut, pick(), Math.floor(pick() * 500));
      tried += 1;
      expect(gw.child.exitCode, `the gateway died after ${tried} tries:\n${gw.stderr()}`).toBeNull();
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  expect(tried).toBe(TRIES);

  // The same process still answers, whole archives included.
  const health = await fetch(`${gw.url}/healthz`);
  expect(health.status).toBe(200);
  const res = await fetch(gw.url + prepared.zipball);
  expect(res.status).toBe(200);
  expect((await res.arrayBuffer()).byteLength).toBe(Number(res.headers.get("content-length")));

  // Descriptors go back to where they were once the aborted work has wound down.
  let after = openDescriptors(pid, ignorePorts);
  for (let i = 0; i < 100 && after > before; i++) {
    await new Promise((r) => setTimeout(r, 100));
    after = openDescriptors(pid, ignorePorts);
  }
  const afterTargets = descriptorTargets(pid, ignorePorts);
  const added = afterTargets.filter((t) => !beforeTargets.includes(t));
  expect(after, `descriptors: ${before} before, ${after} after; new: ${added.join(", ")}`).toBeLessThanOrEqual(before);

  expect(gw.child.exitCode).toBeNull();
  const stderr = gw.stderr();
  expect(stderr).not.toMatch(/Unhandled|uncaught|ERR_|TypeError|RangeError|^\s+at /im);
  const errors = gw
    .stdout()
    .split("\n")
    .filter((l) => l.includes('"level":"error"'));
  expect(errors, errors.join("\n")).toEqual([]);
}

describe(`hostile clients (seed ${SEED}, ${TRIES} tries per store)`, () => {
  const started: GatewayProcess[] = [];
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const gw of started) await gw.stop();
    for (const c of cleanups) await c();
  });

  it("never end, wedge or leak the gateway on the folder store", async () => {
    const dir = await tempDir();
    cleanups.push(dir.cleanup);
    const root = join(dir.path, "store");
    await writeTree(root, TREE);
    const gw = await startGatewayProcess({ ZIPGATE_STORAGE: root });
    started.push(gw);
    await survive(gw, []);
  });

  it("never end, wedge or leak the gateway on S3", async () => {
    const prefix = freshPrefix("chaos");
    const client = adminClient();
    await putObjects(client, prefix, TREE);
    client.destroy();
    const gw = await startGatewayProcess(s3Env(prefix));
    started.push(gw);
    await survive(gw, [Number(new URL(s3Server().endpoint).port)]);
  });
});
