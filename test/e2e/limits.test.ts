import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFsStorage } from "../../src/storage/fs.js";
import type { ListItem, Storage } from "../../src/storage/types.js";
import { tempDir, writeTree } from "../helpers/archive.js";
import { local, type RunningGateway, startGateway, TEST_KEY, zipballUrl } from "../helpers/gateway.js";

/** A GET whose client reads the head and then nothing: the socket and its slot stay taken. */
function stalledGet(url: string): Promise<{ status: number; length: number; closed: Promise<void>; resume(): void; received(): number }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(u.port), u.hostname);
    socket.on("error", () => {});
    let head = "";
    let received = 0;
    const closed = new Promise<void>((r) => socket.once("close", () => r()));
    socket.once("connect", () => socket.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nhost: ${u.host}\r\n\r\n`));
    const onData = (chunk: Buffer): void => {
      head += chunk.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.off("data", onData);
      socket.pause(); // not read again until resumed
      received = Buffer.byteLength(head.slice(end + 4), "latin1");
      socket.on("data", (more: Buffer) => {
        received += more.length;
      });
      socket.pause();
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? "0");
      resolve({ status: Number(head.slice(9, 12)), length, closed, resume: () => socket.resume(), received: () => received });
    };
    socket.on("data", onData);
    socket.once("close", () => reject(new Error("closed before the head")));
  });
}

describe("limits on what one client can make the gateway hold", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let root: string;
  let gw: RunningGateway;
  const lists: string[] = [];

  beforeAll(async () => {
    dir = await tempDir();
    root = join(dir.path, "store");
    await writeTree(root, {
      "docs/a.txt": "alpha",
      "big/one.bin": randomBytes(32 * 1024 * 1024),
      ...Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`f/${i}/file.txt`, `file ${i}`])),
      ...Object.fromEntries(Array.from({ length: 120 }, (_, i) => [`wide/${i}.txt`, "x"])),
    });
    const fs = await createFsStorage({ root });
    // The real folder store, with its walks recorded.
    const storage: Storage = {
      ...fs,
      list(prefix, opts) {
        lists.push(prefix);
        return fs.list(prefix, opts);
      },
    };
    gw = await startGateway({
      storage,
      env: { ZIPGATE_MAX_DOWNLOADS: "2", ZIPGATE_SEND_TIMEOUT: "2s", ZIPGATE_MAX_FILES: "1100", ZIPGATE_BOX_MAX_DOWNLOADS: "10" },
    });
  });
  afterAll(async () => {
    await gw.close();
    await dir.cleanup();
  });

  it("takes 1,000 one-file folder items in one creation, and walks a folder named twice once", async () => {
    lists.length = 0;
    const objects = Array.from({ length: 1000 }, (_, i) => ({ folder: `/f/${i}` }));
    const res = await gw.post("/v2/zipball", { objects });
    expect(res.status, await res.clone().text()).toBe(201);
    expect(lists.length).toBe(1000);
    lists.length = 0;
    await zipballUrl(gw, { objects: [{ folder: "/wide" }, { folder: "/wide", name: "again" }] });
    expect(lists).toEqual(["wide/"]);
  });

  it("stops a walk once it has more files than asked, and cancels it when its signal aborts", async () => {
    const files: string[] = [];
    for await (const e of gw.storage.list("f/", { limit: 10 })) if (e.kind === "file") files.push(e.key);
    expect(files.length).toBe(11);
    const controller = new AbortController();
    const walk = (async () => {
      for await (const _ of gw.storage.list("f/", { signal: controller.signal })) {
        // drained
      }
    })();
    controller.abort(new Error("client went away"));
    await expect(walk).rejects.toThrow("client went away");
  });

  it("stops a walk past the file limit, with the limit's error", async () => {
    const res = await gw.post("/v2/zipball", { objects: [{ folder: "/f" }, { folder: "/wide" }] });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("too_many_files");
  });

  it("refuses a chunked body past 4 MiB while it arrives, without reading the rest", async () => {
    const u = new URL(gw.url);
    let sent = 0;
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const result = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        {
          host: u.hostname,
          port: u.port,
          method: "POST",
          path: "/v2/zipball",
          headers: { authorization: `Bearer ${TEST_KEY}`, "content-type": "application/json" },
        },
        (res) => {
          let body = "";
          res.setEncoding("utf8").on("data", (s: string) => {
            body += s;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on("error", () => {});
      req.once("close", () => resolve({ status: -1, body: "" }));
      // Up to 300 MiB, sent only as fast as the gateway takes it.
      const pump = (): void => {
        while (sent < 300 * 1024 * 1024) {
          sent += chunk.length;
          if (!req.write(chunk)) {
            req.once("drain", pump);
            return;
          }
        }
        req.end();
      };
      req.on("response", () => req.removeAllListeners("drain"));
      pump();
      setTimeout(() => reject(new Error("no answer")), 60_000).unref();
    });
    expect(result.status).toBe(413);
    expect(JSON.parse(result.body)).toMatchObject({ success: false, error: { code: "body_too_large" } });
    // Answered while it arrived: the client stopped long before the whole 300 MiB.
    expect(sent).toBeLessThan(200 * 1024 * 1024);
  });

  it("admits at most ZIPGATE_MAX_DOWNLOADS bodies at once, 503 with Retry-After beyond, and cuts clients that stop reading", async () => {
    const url = await zipballUrl(gw, { objects: [{ path: "/big/one.bin" }] });
    const a = await stalledGet(url);
    const b = await stalledGet(url);
    expect([a.status, b.status]).toEqual([200, 200]);
    const refused = await fetch(url);
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("5");
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("too_many_downloads_in_flight");
    // HEAD and conditional answers take no slot.
    expect((await fetch(url, { method: "HEAD" })).status).toBe(200);
    // The send timeout (2 s here) cuts both stalled clients and gives their slots back.
    let freed = 503;
    for (let i = 0; i < 60 && freed === 503; i++) {
      await new Promise((r) => setTimeout(r, 250));
      const probe = await fetch(url, { headers: { range: "bytes=0-0" } });
      await probe.arrayBuffer();
      freed = probe.status;
    }
    expect(freed).toBe(206);
    // Reading again, each stalled client finds its connection cut short of the archive.
    a.resume();
    b.resume();
    await Promise.all([a.closed, b.closed]);
    expect(a.received()).toBeLessThan(a.length);
    expect(b.received()).toBeLessThan(b.length);
    const after = await fetch(url);
    expect(after.status).toBe(200);
    expect((await after.arrayBuffer()).byteLength).toBe(Number(after.headers.get("content-length")));
    const cut = gw.logs.filter((l) => l.includes('"outcome":"stalled"'));
    expect(cut.length).toBe(2);
  });

  it("answers at once when a FIFO took a file's place, and keeps serving others", async () => {
    const url = await zipballUrl(gw, { objects: [{ path: "/docs/a.txt" }] });
    await rm(join(root, "docs/a.txt"));
    execFileSync("mkfifo", [join(root, "docs/a.txt")]);
    try {
      const res = await fetch(url);
      expect(res.status).toBe(404);
      const other = await fetch(await zipballUrl(gw, { objects: [{ folder: "/wide" }] }));
      expect(other.status).toBe(200);
      await other.arrayBuffer();
      // A walk never lists it, and a stat refuses it.
      const list: ListItem[] = [];
      for await (const e of gw.storage.list("docs/")) list.push(e);
      expect(list.map((e) => e.key)).toEqual([]);
    } finally {
      await rm(join(root, "docs/a.txt"));
      await writeFile(join(root, "docs/a.txt"), "alpha");
    }
  });
});

describe("Box download URLs under admission control", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let gw: RunningGateway;

  beforeAll(async () => {
    dir = await tempDir();
    const root = join(dir.path, "store");
    await writeTree(root, { "docs/a.txt": "alpha", "big/one.bin": randomBytes(32 * 1024 * 1024) });
    gw = await startGateway({ root, env: { ZIPGATE_MAX_DOWNLOADS: "1", ZIPGATE_SEND_TIMEOUT: "2s", ZIPGATE_BOX_MAX_DOWNLOADS: "2" } });
  });
  afterAll(async () => {
    await gw.close();
    // A progress write of the last download may still be landing.
    await rm(dir.path, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  });

  async function boxUrl(): Promise<string> {
    const res = await gw.post("/2.0/zip_downloads", { items: [{ type: "file", id: "/docs/a.txt" }] });
    expect(res.status).toBe(202);
    return local(gw, ((await res.json()) as { download_url: string }).download_url);
  }

  it("answers 503 in Box's shape while the gateway is full, without using up the URL", async () => {
    const content = await boxUrl();
    const busy = await stalledGet(await zipballUrl(gw, { objects: [{ path: "/big/one.bin" }] }));
    expect(busy.status).toBe(200);
    const refused = await fetch(content);
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("5");
    expect(await refused.json()).toMatchObject({ type: "error", status: 503, code: "too_many_downloads_in_flight" });
    // Once the stalled client is cut (2 s), the same URL serves its one download.
    let res = refused;
    for (let i = 0; i < 60 && res.status === 503; i++) {
      await new Promise((r) => setTimeout(r, 250));
      res = await fetch(content);
      if (res.status === 503) await res.arrayBuffer();
    }
    expect(res.status).toBe(200);
    expect((await res.arrayBuffer()).byteLength).toBe(Number(res.headers.get("content-length")));
  });

  it("answers probes (HEAD, 416, 304, 412) without claiming the URL or holding a per-key slot", async () => {
    const content = await boxUrl();
    for (let i = 0; i < 3; i++) {
      expect((await fetch(content, { method: "HEAD" })).status).toBe(200);
      expect((await fetch(content, { headers: { range: "bytes=999999999-" } })).status).toBe(416);
      expect((await fetch(content, { headers: { "if-match": '"nope"' } })).status).toBe(412);
      expect((await fetch(content, { headers: { "if-none-match": "*" } })).status).toBe(304);
    }
    // More probes than the key's two concurrent downloads, and the download still runs.
    const res = await fetch(content);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  });
});

describe("state writes that fail", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let state: string;
  let gw: RunningGateway;

  beforeAll(async () => {
    dir = await tempDir();
    const root = join(dir.path, "store");
    await writeTree(root, { "docs/a.txt": "alpha" });
    state = join(root, ".zipgate");
    await mkdir(state, { recursive: true });
    // A small file system of its own for the state, to fill and to make read-only (root only).
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", state]);
    gw = await startGateway({ root });
  });
  afterAll(async () => {
    await gw?.close();
    execFileSync("umount", [state]);
    await dir.cleanup();
  });

  async function tmpFiles(): Promise<string[]> {
    const out: string[] = [];
    const walk = async (d: string): Promise<void> => {
      for (const e of await readdir(d, { withFileTypes: true })) {
        if (e.isDirectory()) await walk(join(d, e.name));
        else if (e.name.endsWith(".tmp")) out.push(e.name);
      }
    };
    await walk(state);
    return out;
  }

  async function expectState(code: string): Promise<void> {
    const res = await gw.post("/v2/zipball", { objects: [{ path: "/docs/a.txt" }] });
    const text = await res.text();
    expect(res.status, text).toBe(503);
    expect(JSON.parse(text)).toMatchObject({ success: false, error: { code } });
    expect(res.headers.get("retry-after")).toBeTruthy();
  }

  it("answers 503 storage_full when the store is full, leaves no .tmp files, and recovers when space comes back", async () => {
    const filler = join(state, "filler");
    const block = Buffer.alloc(4096);
    let written = 0;
    await writeFile(filler, "");
    try {
      for (;;) {
        await writeFile(filler, block, { flag: "a" });
        written += block.length;
      }
    } catch (err) {
      expect((err as NodeJS.ErrnoException).code).toBe("ENOSPC");
    }
    expect(written).toBeGreaterThan(0);
    await expectState("storage_full");
    expect(await tmpFiles()).toEqual([]);
    await rm(filler);
    expect((await gw.post("/v2/zipball", { objects: [{ path: "/docs/a.txt" }] })).status).toBe(201);
  });

  it("answers 503 storage_read_only when the state is read-only, and recovers without a restart", async () => {
    execFileSync("mount", ["-o", "remount,ro", state]);
    try {
      await expectState("storage_read_only");
    } finally {
      execFileSync("mount", ["-o", "remount,rw", state]);
    }
    expect(await tmpFiles()).toEqual([]);
    expect((await gw.post("/v2/zipball", { objects: [{ path: "/docs/a.txt" }] })).status).toBe(201);
  });
});
