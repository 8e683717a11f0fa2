import { truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { zipballKey } from "../../src/manifest/store.js";
import { tempDir, writeTree } from "../helpers/archive.js";
import { type RunningGateway, startGateway, zipballUrl } from "../helpers/gateway.js";

const FILES = 16;
const SIZE = 2 * 1024 * 1024;
const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;

interface Line {
  msg: string;
  level: string;
  [field: string]: unknown;
}

/** One sample of a scrape: `name{labels} value`, labels in any order given as an object. */
function sample(scrape: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of scrape.split("\n")) {
    const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v) && Object.keys(have).length === Object.keys(labels).length) return Number(m[3]);
  }
  return undefined;
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 25));
  if (!check()) throw new Error(`timed out waiting for ${what}`);
}

describe("metrics and download log lines after a mixed run", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let root: string;
  let gw: RunningGateway;
  const downloads = (): Line[] =>
    gw.logs
      .join("")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Line)
      .filter((l) => l.msg === "download" || l.msg.startsWith("download failed"));

  beforeAll(async () => {
    dir = await tempDir();
    root = join(dir.path, "store");
    const files: Record<string, string | Buffer> = { "docs/a.txt": "alpha\n".repeat(1000), "docs/b.txt": "beta\n".repeat(500) };
    for (let i = 0; i < FILES; i++) {
      files[`big/f${String(i).padStart(2, "0")}.bin`] = Buffer.alloc(SIZE, i);
      files[`fail/f${String(i).padStart(2, "0")}.bin`] = Buffer.alloc(SIZE, i);
    }
    await writeTree(root, files);
    gw = await startGateway({ root, env: { ZIPGATE_TRUST_PROXY: "1", ZIPGATE_MAX_DOWNLOADS: "1", ZIPGATE_READ_AHEAD: "2" } });
  });
  afterAll(async () => {
    await gw.close();
    await dir.cleanup();
  });

  it("counts completed, cut and failed downloads, creations, refusals, store requests and CRCs, and logs one line per download", async () => {
    const headers = { "x-forwarded-for": "198.51.100.1, 203.0.113.7", traceparent: TRACEPARENT };
    // 1. Complete, then a resume of its second half (CRCs recorded by the first are reused).
    const docs = await zipballUrl(gw, { objects: [{ folder: "/docs" }] });
    const whole = await fetch(docs, { headers });
    const length = (await whole.arrayBuffer()).byteLength;
    // The CRCs a download learnt are written back as it ends; a resume reuses them once they are.
    const id = new URL(docs).pathname.slice(1, -".zip".length);
    let recorded: Buffer | null = null;
    async function poll(): Promise<void> {
      while (recorded === null) {
        recorded = await gw.storage.get(zipballKey(id, "crcs"));
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    await Promise.race([poll(), until(() => recorded !== null, "the recorded CRCs").catch(() => {})]);
    expect(recorded).not.toBeNull();
    const half = await fetch(docs, { headers: { range: `bytes=${Math.floor(length / 2)}-` } });
    expect(half.status).toBe(206);
    await half.arrayBuffer();
    // 2. Cut by the client, and while it holds the only slot, a refusal.
    const big = await zipballUrl(gw, { objects: [{ folder: "/big" }] });
    const controller = new AbortController();
    const cut = await fetch(big, { signal: controller.signal });
    const reader = (cut.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    const refused = await fetch(docs);
    expect(refused.status).toBe(503);
    controller.abort();
    await until(() => downloads().length >= 3, "the cut download's line");
    // 3. Failed after the first byte: an object shrinks while the archive streams.
    const fail = await zipballUrl(gw, { objects: [{ folder: "/fail" }] });
    const failing = await fetch(fail);
    const failReader = (failing.body as ReadableStream<Uint8Array>).getReader();
    await failReader.read();
    await truncate(join(root, "fail", `f${FILES - 1}.bin`), 10);
    await (async () => {
      for (;;) if ((await failReader.read()).done) break;
    })().catch(() => {});
    // 4. A creation refused: a missing path.
    expect((await gw.post("/v2/zipball", { objects: [{ path: "/nope.txt" }] })).status).toBe(404);
    await until(() => downloads().length >= 4, "the failed download's line");

    const lines = downloads();
    const [complete, resumed, client, failed] = lines;
    expect(complete).toMatchObject({
      level: "info",
      outcome: "complete",
      flavour: "bitpaket",
      status: 200,
      bytes_sent: length,
      bytes_expected: length,
      client: "203.0.113.7",
      trace_id: TRACE_ID,
      parent_id: "00f067aa0ba902b7",
      key_id: expect.stringMatching(/^[0-9a-f]{16}$/),
      zipball: expect.stringMatching(/^[0-9a-f]{8}…$/),
      request_id: expect.any(String),
    });
    expect(complete?.ttfb_ms).toBeTypeOf("number");
    expect(complete?.ms).toBeGreaterThanOrEqual(complete?.ttfb_ms as number);
    expect(resumed).toMatchObject({ outcome: "complete", status: 206, range: `bytes ${Math.floor(length / 2)}-${length - 1}/${length}`, client: "127.0.0.1" });
    expect(client).toMatchObject({ level: "info", outcome: "client_gone", bytes_expected: expect.any(Number) });
    expect(client?.bytes_sent as number).toBeLessThan(client?.bytes_expected as number);
    expect(failed).toMatchObject({ level: "error", outcome: "failed", error: expect.stringContaining("changed") });
    const logText = gw.logs.join("");
    expect(logText).not.toContain(gw.key);
    expect(logText).not.toContain("?zipball");

    const res = await fetch(`${gw.url}/metrics`);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0.0.4/);
    const scrape = await res.text();
    if (process.env.ZIPGATE_DUMP_DIR) {
      await writeFile(join(process.env.ZIPGATE_DUMP_DIR, "metrics.txt"), scrape);
      await writeFile(join(process.env.ZIPGATE_DUMP_DIR, "downloads.jsonl"), `${lines.map((l) => JSON.stringify(l)).join("\n")}\n`);
    }
    const bitpaket = { flavour: "bitpaket" };
    expect(sample(scrape, "zipgate_downloads_started_total", bitpaket)).toBe(4);
    expect(sample(scrape, "zipgate_downloads_total", { ...bitpaket, outcome: "complete" })).toBe(2);
    expect(sample(scrape, "zipgate_downloads_total", { ...bitpaket, outcome: "client_gone" })).toBe(1);
    expect(sample(scrape, "zipgate_downloads_total", { ...bitpaket, outcome: "failed" })).toBe(1);
    expect(sample(scrape, "zipgate_download_bytes_sent_total", bitpaket)).toBe(lines.reduce((n, l) => n + (l.bytes_sent as number), 0));
    expect(sample(scrape, "zipgate_download_first_byte_seconds_count", bitpaket)).toBe(4);
    expect(sample(scrape, "zipgate_download_duration_seconds_count", { ...bitpaket, outcome: "complete" })).toBe(2);
    expect(sample(scrape, "zipgate_downloads_in_flight")).toBe(0);
    expect(sample(scrape, "zipgate_creations_total", { ...bitpaket, outcome: "created" })).toBe(3);
    expect(sample(scrape, "zipgate_creations_total", { ...bitpaket, outcome: "not_found" })).toBe(1);
    expect(sample(scrape, "zipgate_admission_refusals_total", { reason: "too_many_downloads_in_flight" })).toBe(1);
    expect(sample(scrape, "zipgate_store_requests_total", { operation: "read", outcome: "ok" })).toBeGreaterThan(4);
    expect(sample(scrape, "zipgate_store_requests_total", { operation: "list", outcome: "ok" })).toBeGreaterThanOrEqual(3);
    expect(sample(scrape, "zipgate_store_errors_total", { operation: "stat", code: "not_found" })).toBe(1);
    expect(sample(scrape, "zipgate_store_request_duration_seconds_count", { operation: "read" })).toBeGreaterThan(4);
    expect(sample(scrape, "zipgate_store_read_bytes_total")).toBeGreaterThan(SIZE);
    expect(sample(scrape, "zipgate_crcs_total", { how: "streamed" })).toBeGreaterThanOrEqual(2);
    expect(sample(scrape, "zipgate_crcs_total", { how: "reused" })).toBeGreaterThanOrEqual(1);
    expect(sample(scrape, "zipgate_jobs", { state: "queued" })).toBe(0);
    expect(sample(scrape, "zipgate_http_requests_total", { method: "GET", status: "503" })).toBe(1);
    // A gateway's registry is its own: no process metrics from tests, no other gateway's counts.
    expect(scrape).not.toContain("process_cpu");
  });
});
