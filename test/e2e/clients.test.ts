import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, stat, truncate, utimes } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir, writeTree } from "../helpers/archive.js";
import { CHROMIUM, clickDownloadLink, launchChromium, type RunningChromium } from "../helpers/chromium.js";
import {
  downloadGets,
  type Interrupter,
  interruptedDownload,
  requireTools,
  runTool,
  sha256File,
  sha256OfOutput,
  startInterrupter,
} from "../helpers/clients.js";
import { local, type RunningGateway, startGateway } from "../helpers/gateway.js";
import { NGINX, type RunningNginx, SLICE, startNginx } from "../helpers/nginx.js";
import { type ExpectedEntry, SEVEN_ZIP, sha256, verifyWithUnzippers } from "../helpers/unzippers.js";

const MTIME = 1_700_000_000;
const CURL = ["-sS", "--fail"];

interface Zipball {
  id: string;
  /** The URL as returned (built from the configured public URL). */
  url: string;
  total: number;
  etag: string;
  lastModified: string;
}

/** Creates a zipball through the API and reads its length and validators with a HEAD. */
async function createZipball(gw: RunningGateway, body: unknown): Promise<Zipball> {
  const res = await gw.post("/v2/zipball", body);
  const text = await res.text();
  expect(res.status, text).toBe(201);
  const { data } = JSON.parse(text) as { data: { ball_id: string; urls: { url: string } } };
  const head = await fetch(local(gw, data.urls.url), { method: "HEAD" });
  expect(head.status).toBe(200);
  return {
    id: data.ball_id,
    url: data.urls.url,
    total: Number(head.headers.get("content-length")),
    etag: head.headers.get("etag") as string,
    lastModified: head.headers.get("last-modified") as string,
  };
}

/**
 * 300 files in nested folders (some with non-ASCII names), sizes from empty to
 * 150 kB, plus an empty folder: about 11 MB stored. Returns what the archive
 * of `{"folder": "/many"}` must hold.
 */
async function writeManyObjects(root: string): Promise<ExpectedEntry[]> {
  const sizes = [0, 1, 17, 512, 4096, 10_000, 65_535, 65_536, 70_000, 150_000];
  const files: Record<string, Buffer> = { "many/empty folder/": Buffer.alloc(0) };
  for (let i = 0; i < 300; i++) {
    const size = sizes[i % sizes.length] as number;
    const name =
      i % 5 === 0
        ? `many/f${i}.bin`
        : i % 5 === 1
          ? `many/d${i % 7}/f${i}.bin`
          : i % 5 === 2
            ? `many/d${i % 7}/s${i % 3}/f${i}.dat`
            : `many/ünïcødé 📁/fïlé ${i}.txt`;
    files[name] = randomBytes(size);
  }
  await writeTree(root, files, MTIME);
  const expected: ExpectedEntry[] = [];
  const dirs = new Set<string>();
  for (const [name, body] of Object.entries(files)) {
    const parts = name.split("/").filter(Boolean);
    for (let i = 1; i < parts.length + (name.endsWith("/") ? 1 : 0); i++) dirs.add(`${parts.slice(0, i).join("/")}/`);
    if (!name.endsWith("/")) expected.push({ name, size: body.length, sha256: sha256(body), mtime: MTIME });
  }
  for (const d of dirs) expected.push({ name: d, dir: true });
  return expected;
}

/** The same URL path through another base (a proxy, nginx). */
function via(base: string, ball: Zipball): string {
  const u = new URL(ball.url);
  return base + u.pathname + u.search;
}

/** What two downloads are compared on. */
function digest(d: { sha256: string; size: number }): { sha256: string; size: number } {
  return { sha256: d.sha256, size: d.size };
}

/** The last `length` bytes of a file. */
async function readTail(file: string, length: number): Promise<Buffer> {
  const fh = await open(file, "r");
  try {
    const { size } = await fh.stat();
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, size - length);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

describe("real clients against a gateway", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let root: string;
  let many: ExpectedEntry[];
  const cleanups: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    // Loud, not skipped: these tests are about these programs.
    requireTools({
      curl: "curl",
      wget: "wget",
      [NGINX]: "nginx",
      [CHROMIUM]: "chromium",
      unzip: "unzip",
      [SEVEN_ZIP]: "7zip",
      bsdtar: "libarchive-tools",
      python3: "python3",
    });
    dir = await tempDir("zipgate-clients-");
    root = join(dir.path, "store");
    many = await writeManyObjects(root);
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    await dir?.cleanup();
  });

  /** A gateway on the shared store, closed in afterAll (closing twice is harmless). */
  async function gateway(env: Record<string, string> = {}): Promise<RunningGateway> {
    const gw = await startGateway({ root, env });
    cleanups.push(() => gw.close());
    return gw;
  }

  /** An interrupting proxy in front of `origin`, closed in afterAll. */
  async function interrupter(origin: string, mode: "cut" | "stall", after: number): Promise<Interrupter> {
    const proxy = await startInterrupter(origin, { mode, after });
    cleanups.push(() => proxy.close());
    return proxy;
  }

  describe("curl and wget resume an interrupted download", () => {
    let gw: RunningGateway;
    let ball: Zipball;
    let reference: { sha256: string; size: number };

    beforeAll(async () => {
      gw = await gateway();
      ball = await createZipball(gw, { name: "many", objects: [{ folder: "/many" }] });
      // The uninterrupted download everything is compared with.
      reference = await sha256OfOutput("curl", [...CURL, local(gw, ball.url)]);
      expect(reference.size).toBe(ball.total);
      expect(ball.total).toBeGreaterThan(10_000_000);
    });

    // Each client is cut at its own point, then resumes with its own flag.
    const resumes = {
      curl: {
        cutAt: 0.4,
        flag: "-C -",
        get: (file: string, url: string) => [...CURL, "-o", file, url],
        resume: (file: string, url: string) => [...CURL, "-C", "-", "-o", file, url],
      },
      wget: {
        cutAt: 0.6,
        flag: "-c",
        get: (file: string, url: string) => ["-q", "-O", file, url],
        resume: (file: string, url: string) => ["-q", "-c", "-O", file, url],
      },
    };
    for (const client of ["curl", "wget"] as const) {
      const how = resumes[client];
      it(`${client}: killed mid-way and resumed with \`${client} ${how.flag}\`, the file is byte-identical to an uninterrupted download${client === "curl" ? " and opens in every unzipper" : ""}`, async () => {
        const file = join(dir.path, `${client}-many.zip`);
        const proxy = await interrupter(gw.url, "stall", Math.floor(ball.total * how.cutAt));
        const before = downloadGets(gw.logs, ball.id).length;
        const partial = await interruptedDownload(client, how.get(file, via(proxy.url, ball)), file, proxy);
        expect(partial).toBeGreaterThan(proxy.after - 64 * 1024);
        expect(partial).toBeLessThanOrEqual(proxy.after);
        await runTool(client, how.resume(file, local(gw, ball.url)));
        // The first request got the whole archive (cut short), the second a 206 from where the file ended.
        expect(
          downloadGets(gw.logs, ball.id)
            .slice(before)
            .map((l) => l.status),
        ).toEqual([200, 206]);
        expect(await sha256File(file)).toEqual(digest(reference));
        if (client === "curl") await verifyWithUnzippers(file, many);
      });
    }

    for (const client of ["curl", "wget"] as const) {
      it(`${client}: a download cut off on one gateway resumes byte-identically on a new gateway started on the same store`, async () => {
        const first = await gateway();
        const restartBall = await createZipball(first, { name: `restart ${client}`, objects: [{ folder: "/many" }] });
        const ref = await sha256OfOutput("curl", [...CURL, local(first, restartBall.url)]);
        const file = join(dir.path, `${client}-restart.zip`);
        const proxy = await interrupter(first.url, "cut", Math.floor(restartBall.total * (client === "curl" ? 0.3 : 0.7)));
        const partial =
          client === "curl"
            ? await interruptedDownload("curl", [...CURL, "-o", file, via(proxy.url, restartBall)], file, proxy)
            : await interruptedDownload("wget", ["-q", "--tries=1", "-O", file, via(proxy.url, restartBall)], file, proxy);
        expect(partial).toBe(proxy.after);
        await first.close();

        // Same store and secrets, nothing else shared; another port.
        const second = await gateway();
        expect(second.url).not.toBe(first.url);
        const url = local(second, restartBall.url);
        // The same validators, so a client resuming with If-Range gets a 206 too.
        const head = await fetch(url, { method: "HEAD" });
        expect([head.headers.get("etag"), head.headers.get("last-modified")]).toEqual([restartBall.etag, restartBall.lastModified]);
        if (client === "curl") await runTool("curl", [...CURL, "-C", "-", "-o", file, url]);
        else await runTool("wget", ["-q", "-c", "-O", file, url]);
        expect(downloadGets(second.logs, restartBall.id).map((l) => l.status)).toEqual([206]);
        expect(await sha256File(file)).toEqual(digest(ref));
      });
    }
  });

  describe("a zip64 archive (an object over 4 GiB, offsets past 4 GiB) resumed with curl", () => {
    const HUGE = 2 ** 32 + 2 ** 20;
    let gw: RunningGateway;
    let ball: Zipball;
    let reference: { sha256: string; size: number; tail: Buffer };

    beforeAll(async () => {
      // Sparse: markers at both ends, zeros between; small files after it so their offsets pass 4 GiB.
      await mkdir(join(root, "big"), { recursive: true });
      const fh = await open(join(root, "big", "huge.bin"), "w");
      await fh.write(Buffer.from("start"), 0, 5, 0);
      await fh.write(Buffer.from("end"), 0, 3, HUGE - 3);
      await fh.close();
      await utimes(join(root, "big", "huge.bin"), MTIME, MTIME);
      await writeTree(join(root, "big"), { "after-1.txt": "after one", "after-2.txt": "after two" }, MTIME);
      gw = await gateway({ ZIPGATE_MAX_BYTES: "10 GiB" });
      ball = await createZipball(gw, { objects: [{ path: "/big/huge.bin" }, { path: "/big/after-1.txt" }, { path: "/big/after-2.txt" }] });
      expect(ball.total).toBeGreaterThan(HUGE);
      reference = await sha256OfOutput("curl", [...CURL, local(gw, ball.url)], 64 * 1024);
      expect(reference.size).toBe(ball.total);
    }, 300_000);

    it("cut off after 1 MiB and resumed with `curl -C -`, the file is byte-identical; resuming again from points past 4 GiB gives the same tail", async () => {
      const file = join(dir.path, "zip64.zip");
      const url = local(gw, ball.url);
      const proxy = await interrupter(gw.url, "cut", 2 ** 20);
      expect(await interruptedDownload("curl", [...CURL, "-o", file, via(proxy.url, ball)], file, proxy)).toBe(2 ** 20);
      await runTool("curl", [...CURL, "-C", "-", "-o", file, url]);
      const whole = await sha256File(file);
      expect(whole.size).toBe(reference.size);
      expect(whole.sha256).toBe(reference.sha256);

      // Now cut the verified file at points past 4 GiB and resume again: the
      // prefix is unchanged, so the tail must be the reference's tail.
      const tail = reference.tail;
      const tailStart = ball.total - tail.length;
      const localHeader = tail.indexOf(Buffer.from("after-1.txt")); // first occurrence: its local header
      const central = tail.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])); // first central directory record
      expect(localHeader).toBeGreaterThan(30);
      expect(central).toBeGreaterThan(localHeader);
      const cuts = {
        "in huge.bin's data descriptor": tailStart + localHeader - 30 - 10,
        "in after-1.txt's local header": tailStart + localHeader - 5,
        "in the central directory": tailStart + central + 10,
      };
      for (const [where, at] of Object.entries(cuts)) {
        expect(at, where).toBeGreaterThan(2 ** 32);
        await truncate(file, at);
        const before = downloadGets(gw.logs, ball.id).length;
        await runTool("curl", [...CURL, "-C", "-", "-o", file, url]);
        expect(
          downloadGets(gw.logs, ball.id)
            .slice(before)
            .map((l) => l.status),
          where,
        ).toEqual([206]);
        expect(await readTail(file, tail.length), where).toEqual(tail);
        expect((await stat(file)).size, where).toBe(ball.total);
      }
    }, 300_000);
  });

  describe("Chromium", () => {
    let gw: RunningGateway;
    let browser: RunningChromium;

    beforeAll(async () => {
      gw = await gateway();
      await writeTree(
        join(root, "chromium"),
        { "Grüße.txt": "grüße", "日本/報告.md": "こんにちは", "empty.txt": "", "data.bin": Buffer.alloc(300_000, 7) },
        MTIME,
      );
      browser = await launchChromium();
      cleanups.push(() => browser.close());
    });

    it("a click on a download link saves the archive under its Content-Disposition name (non-ASCII), and it unzips", async () => {
      const ball = await createZipball(gw, { name: "Résumé 2024 ✓", objects: [{ folder: "/chromium" }] });
      const href = local(gw, ball.url);
      const { download, tab } = await clickDownloadLink(browser, href);
      expect(download.suggestedFilename()).toBe("Résumé 2024 ✓.zip");
      const file = join(dir.path, "chromium.zip");
      await download.saveAs(file);
      expect(await download.failure()).toBeNull();
      expect(await sha256File(file)).toEqual(digest(await sha256OfOutput("curl", [...CURL, href])));
      expect(downloadGets(gw.logs, ball.id)[0]?.status).toBe(200);
      await verifyWithUnzippers(file, [
        { name: "chromium/", dir: true },
        { name: "chromium/Grüße.txt", sha256: sha256("grüße"), mtime: MTIME },
        { name: "chromium/empty.txt", size: 0, mtime: MTIME },
        { name: "chromium/data.bin", sha256: sha256(Buffer.alloc(300_000, 7)), mtime: MTIME },
        { name: "chromium/日本/", dir: true },
        { name: "chromium/日本/報告.md", sha256: sha256("こんにちは"), mtime: MTIME },
      ]);
      await tab.close();
    });
  });

  describe("nginx as a caching CDN edge, fetching the origin in 1 MiB slices", () => {
    let gw: RunningGateway;
    let edge: RunningNginx;
    let whole: Zipball;
    let resumed: Zipball;
    let reference: { sha256: string; size: number };
    const slices = (total: number): number => Math.ceil(total / SLICE);

    /** A download through nginx: SHA-256, size and the response headers curl saw. */
    async function throughEdge(ball: Zipball, file: string, extra: string[] = []): Promise<{ sha256: string; size: number; cache: string }> {
      const headers = `${file}.headers`;
      await runTool("curl", [...CURL, ...extra, "-D", headers, "-o", file, via(edge.url, ball)]);
      const cache = /^x-cache-status:\s*(\S+)/im.exec(await readFile(headers, "utf8"))?.[1] ?? "";
      return { ...(await sha256File(file)), cache };
    }

    beforeAll(async () => {
      gw = await gateway();
      whole = await createZipball(gw, { name: "edge whole", objects: [{ folder: "/many" }] });
      resumed = await createZipball(gw, { name: "edge resumed", objects: [{ folder: "/many" }] });
      // Same objects, same entries: both archives have the same bytes, under different ids.
      reference = await sha256OfOutput("curl", [...CURL, local(gw, whole.url)]);
      const edgeDir = join(dir.path, "nginx");
      await mkdir(edgeDir, { recursive: true });
      edge = await startNginx({ upstream: gw.url, dir: edgeDir });
      cleanups.push(() => edge.close());
    });

    it("a whole download through nginx is byte-identical to the origin's, fetched from the origin as 206 slices", async () => {
      const before = downloadGets(gw.logs, whole.id).length;
      const got = await throughEdge(whole, join(dir.path, "edge-whole-1.zip"));
      expect(digest(got)).toEqual(digest(reference));
      expect(got.cache).toBe("MISS");
      const origin = downloadGets(gw.logs, whole.id).slice(before);
      expect(origin.map((l) => l.status)).toEqual(Array(slices(whole.total)).fill(206));
    });

    it("a download killed mid-way and resumed through nginx with `curl -C -` is byte-identical to the origin's", async () => {
      const file = join(dir.path, "edge-resumed.zip");
      // The interrupting proxy sits between curl and nginx: the client goes away, not the origin.
      const proxy = await interrupter(edge.url, "stall", Math.floor(resumed.total * 0.45));
      const partial = await interruptedDownload("curl", [...CURL, "-o", file, via(proxy.url, resumed)], file, proxy);
      expect(partial).toBeGreaterThan(proxy.after - 64 * 1024);
      await runTool("curl", [...CURL, "-C", "-", "-o", file, via(edge.url, resumed)]);
      expect(await sha256File(file)).toEqual(digest(reference));
      // Only nginx's slice requests reached the origin.
      const origin = downloadGets(gw.logs, resumed.id);
      expect(origin.length).toBeGreaterThan(0);
      expect(origin.filter((l) => l.status !== 206)).toEqual([]);
      expect(await edge.errorLog()).not.toMatch(/\[(error|crit|alert|emerg)\]/);
    });

    it("second downloads (whole, and a resumed range) are served from the nginx cache: no new GET reaches the origin", async () => {
      const before = { whole: downloadGets(gw.logs, whole.id).length, resumed: downloadGets(gw.logs, resumed.id).length };
      for (const ball of [whole, resumed]) {
        const got = await throughEdge(ball, join(dir.path, `edge-again-${ball.id}.zip`));
        expect(digest(got)).toEqual(digest(reference));
        expect(got.cache).toBe("HIT");
      }
      // A resume from the middle of a slice, from the cache.
      const file = join(dir.path, "edge-again-range.zip");
      const full = join(dir.path, "edge-whole-1.zip");
      await runTool("cp", [full, file]);
      const cut = SLICE * 3 + 12_345;
      await truncate(file, cut);
      const got = await throughEdge(whole, file, ["-C", "-"]);
      expect(digest(got)).toEqual(digest(reference));
      expect(got.cache).toBe("HIT");
      expect(downloadGets(gw.logs, whole.id).length).toBe(before.whole);
      expect(downloadGets(gw.logs, resumed.id).length).toBe(before.resumed);
      const access = await edge.accessLog();
      expect(access).toContain(`"bytes=${cut}-" 206 HIT`);
    });
  });

  describe("byte ranges (property)", () => {
    let gw: RunningGateway;
    let cases = 0;

    beforeAll(async () => {
      gw = await gateway();
    });

    // biome-ignore lint/suspicious/noControlCharactersInRegex: names with control characters are refused by the API
    const unusable = /[/\u0000-\u001f\u007f]/;
    const segment = fc
      .oneof(
        fc.string({ unit: "grapheme", minLength: 1, maxLength: 8 }),
        fc.constantFrom("a", "A", "Résumé", "日本語", "emoji 🎉", "con", "x.txt", "X.TXT", " lead", "trail.", "a\\b", "c:d"),
      )
      .filter((s) => s !== "." && s !== ".." && !unusable.test(s) && Buffer.byteLength(s) <= 120);
    const entry = fc.record({
      path: fc.array(segment, { minLength: 1, maxLength: 3 }),
      size: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 65, max: 200_000 })),
      dir: fc.oneof({ arbitrary: fc.constant(false), weight: 6 }, { arbitrary: fc.constant(true), weight: 1 }),
      seed: fc.integer({ min: 0, max: 255 }),
    });
    const range = fc.record({
      kind: fc.constantFrom("closed", "open", "suffix"),
      a: fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), fc.constantFrom(0, 1)),
      b: fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), fc.constantFrom(0, 1)),
      nudge: fc.integer({ min: -2, max: 2 }),
      ifRange: fc.constantFrom("none", "none", "etag", "date", "stale"),
    });

    /** Files for writeTree: the first entry at a path wins; a file never sits where a folder is. */
    function tree(entries: Array<{ path: string[]; size: number; dir: boolean; seed: number }>): Record<string, Buffer> {
      const files: Record<string, Buffer> = {};
      const taken = new Map<string, "file" | "dir">();
      for (const e of entries) {
        const prefixes = e.path.slice(0, -1).map((_, i) => e.path.slice(0, i + 1).join("/"));
        const path = e.path.join("/");
        if (taken.has(path) || prefixes.some((p) => taken.get(p) === "file")) continue;
        for (const p of prefixes) taken.set(p, "dir");
        taken.set(path, e.dir ? "dir" : "file");
        if (e.dir) files[`${path}/`] = Buffer.alloc(0);
        else {
          const body = Buffer.alloc(e.size);
          for (let i = 0; i < body.length; i++) body[i] = (i * 131 + e.seed * 7 + (i >> 8)) & 0xff;
          files[path] = body;
        }
      }
      return files;
    }

    it("every range of random archives (unicode names, empty files, nested folders) equals the same slice of the whole archive", async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(entry, { maxLength: 25 }), fc.array(range, { minLength: 10, maxLength: 10 }), async (entries, ranges) => {
          const name = `case-${++cases}`;
          const folder = join(root, "prop", name);
          await mkdir(folder, { recursive: true });
          await writeTree(folder, tree(entries), MTIME);
          const ball = await createZipball(gw, { objects: [{ folder: `/prop/${name}` }] });
          const url = local(gw, ball.url);
          const res = await fetch(url);
          expect(res.status).toBe(200);
          const full = Buffer.from(await res.arrayBuffer());
          expect(full.length).toBe(ball.total);
          const total = full.length;

          for (const r of ranges) {
            const at = (f: number): number => Math.max(0, Math.round(f * total) + r.nudge);
            let header: string;
            let want: { start: number; end: number } | "unsatisfiable";
            if (r.kind === "closed") {
              const [first, last] = [at(r.a), at(r.b)].sort((x, y) => x - y) as [number, number];
              header = `bytes=${first}-${last}`;
              want = first >= total ? "unsatisfiable" : { start: first, end: Math.min(last, total - 1) + 1 };
            } else if (r.kind === "open") {
              const first = at(r.a);
              header = `bytes=${first}-`;
              want = first >= total ? "unsatisfiable" : { start: first, end: total };
            } else {
              const n = at(r.b);
              header = `bytes=-${n}`;
              want = n === 0 ? "unsatisfiable" : { start: Math.max(0, total - n), end: total };
            }
            const headers: Record<string, string> = { range: header };
            if (r.ifRange === "etag") headers["if-range"] = ball.etag;
            if (r.ifRange === "date") headers["if-range"] = ball.lastModified;
            if (r.ifRange === "stale") {
              headers["if-range"] = '"stale-etag"';
              want = { start: 0, end: total };
            }
            const got = await fetch(url, { headers });
            const body = Buffer.from(await got.arrayBuffer());
            const label = `${header} if-range=${r.ifRange} of ${total}`;
            if (want === "unsatisfiable") {
              expect(got.status, label).toBe(416);
              expect(got.headers.get("content-range"), label).toBe(`bytes */${total}`);
              continue;
            }
            const whole = r.ifRange === "stale";
            expect(got.status, label).toBe(whole ? 200 : 206);
            if (!whole) expect(got.headers.get("content-range"), label).toBe(`bytes ${want.start}-${want.end - 1}/${total}`);
            expect(Number(got.headers.get("content-length")), label).toBe(want.end - want.start);
            expect(body.equals(full.subarray(want.start, want.end)), label).toBe(true);
          }
        }),
        { numRuns: 15 },
      );
    });
  });
  describe("clients that go away", () => {
    it("clients disconnecting mid-download cause no unhandled error in the gateway (which would kill a real process)", async () => {
      const gw = await gateway();
      const ball = await createZipball(gw, { objects: [{ folder: "/many" }] });
      const uncaught: unknown[] = [];
      const record = (err: unknown): void => {
        uncaught.push(err);
      };
      process.on("uncaughtException", record);
      try {
        // Each download is abandoned after a different number of bytes, as
        // cancelled browser tabs and killed download managers do.
        for (let i = 0; i < 60 && uncaught.length === 0; i++) {
          const controller = new AbortController();
          const res = await fetch(local(gw, ball.url), { signal: controller.signal });
          const reader = (res.body as ReadableStream<Uint8Array>).getReader();
          const stopAt = ((i * 7919) % 97) * 100_000;
          let got = 0;
          while (got <= stopAt) {
            const { done, value } = await reader.read();
            if (done) break;
            got += value.length;
          }
          controller.abort();
          await reader.cancel().catch(() => undefined);
          await sleep(20);
        }
        await sleep(200);
      } finally {
        process.off("uncaughtException", record);
      }
      expect(uncaught.map((e) => String((e as Error).stack ?? e))).toEqual([]);
      // And the gateway still answers.
      expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
    });
  });
});
