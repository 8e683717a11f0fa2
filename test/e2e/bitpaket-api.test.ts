import { execFile } from "node:child_process";
import { readFile, rm, symlink, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { zipballKey } from "../../src/manifest/store.js";
import { createFsStorage } from "../../src/storage/fs.js";
import { tempDir, writeTree } from "../helpers/archive.js";
import { countingStorage } from "../helpers/counting-storage.js";
import { local, type RunningGateway, startGateway } from "../helpers/gateway.js";
import { sha256, verifyWithUnzippers } from "../helpers/unzippers.js";

const run = promisify(execFile);
const MTIME = 1_700_000_000;

interface Created {
  success: true;
  data: { ball_id: string; urls: { url: string; domains: Array<{ domain: string; url: string }> }; expires_at: string };
}

async function create(gw: RunningGateway, body: unknown): Promise<Created> {
  const res = await gw.post("/v2/zipball", body);
  const text = await res.text();
  expect(res.status, text).toBe(201);
  return JSON.parse(text) as Created;
}

async function expectError(res: Response, status: number, code: string): Promise<Record<string, unknown>> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  const body = JSON.parse(text) as { success: boolean; error: { code: string; message: string } & Record<string, unknown> };
  expect(body.success).toBe(false);
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe("string");
  return body.error;
}

async function fetchZip(gw: RunningGateway, created: Created, file: string): Promise<Buffer> {
  const res = await fetch(local(gw, created.data.urls.url));
  expect(res.status).toBe(200);
  const body = Buffer.from(await res.arrayBuffer());
  expect(body.length).toBe(Number(res.headers.get("content-length")));
  await writeFile(file, body);
  return body;
}

describe("BitPaket ZipBall API over a real socket", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let root: string;
  let gw: RunningGateway;

  beforeAll(async () => {
    dir = await tempDir();
    root = join(dir.path, "store");
    await writeTree(
      root,
      {
        "docs/report.pdf": "report-1",
        "docs/notes.txt": "notes",
        "docs/sub/deep.txt": "deep",
        "docs/empty-sub/": "",
        "other/report.pdf": "report-2",
        "other/REPORT.PDF": "report-3",
        "photos/docs": "a file named docs",
        "big/a.bin": Buffer.alloc(1024, 1),
        "ünï/naïve café.txt": "unicode",
      },
      MTIME,
    );
    gw = await startGateway({ root, env: { ZIPGATE_MAX_FILES: "50", ZIPGATE_MAX_BYTES: "1 MiB", ZIPGATE_DOMAINS: "dl.example.com,https://cdn.example.org" } });
  });
  afterAll(async () => {
    await gw.close();
    await dir.cleanup();
  });

  it("creates a zipball and serves an archive every unzipper opens, with folders expanded", async () => {
    const created = await create(gw, { objects: [{ path: "/docs/notes.txt" }, { folder: "/docs" }] });
    expect(created.success).toBe(true);
    expect(created.data.ball_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(created.data.urls.url).toBe(`${gw.config.publicUrl}/${created.data.ball_id}.zip?zipball`);
    expect(created.data.urls.domains).toEqual([
      { domain: "dl.example.com", url: `https://dl.example.com/${created.data.ball_id}.zip?zipball` },
      { domain: "cdn.example.org", url: `https://cdn.example.org/${created.data.ball_id}.zip?zipball` },
    ]);
    const zip = join(dir.path, "expanded.zip");
    await fetchZip(gw, created, zip);
    await verifyWithUnzippers(zip, [
      { name: "notes.txt", sha256: sha256("notes"), mtime: MTIME },
      { name: "docs/", dir: true },
      { name: "docs/empty-sub/", dir: true },
      { name: "docs/notes.txt", sha256: sha256("notes"), mtime: MTIME },
      { name: "docs/report.pdf", sha256: sha256("report-1"), mtime: MTIME },
      { name: "docs/sub/", dir: true },
      { name: "docs/sub/deep.txt", sha256: sha256("deep"), mtime: MTIME },
    ]);
  });

  it("renames conflicts deterministically: same name, case-only difference, and a file against a folder", async () => {
    const created = await create(gw, {
      objects: [{ path: "/docs/report.pdf" }, { path: "/other/report.pdf" }, { path: "/other/REPORT.PDF" }, { path: "/photos/docs" }, { folder: "/docs" }],
    });
    const zip = join(dir.path, "conflicts.zip");
    await fetchZip(gw, created, zip);
    await verifyWithUnzippers(zip, [
      { name: "report.pdf", sha256: sha256("report-1") },
      { name: "report (1).pdf", sha256: sha256("report-2") },
      { name: "REPORT (2).PDF", sha256: sha256("report-3") },
      { name: "docs", sha256: sha256("a file named docs") },
      { name: "docs (1)/", dir: true },
      { name: "docs (1)/empty-sub/", dir: true },
      { name: "docs (1)/notes.txt", sha256: sha256("notes") },
      { name: "docs (1)/report.pdf", sha256: sha256("report-1") },
      { name: "docs (1)/sub/", dir: true },
      { name: "docs (1)/sub/deep.txt", sha256: sha256("deep") },
    ]);
  });

  it("uses per-object names made safe, and the download name in Content-Disposition", async () => {
    const created = await create(gw, {
      name: "Quartalsbericht Ü",
      objects: [
        { path: "/docs/notes.txt", name: "../../etc/passwd" },
        { path: "/docs/report.pdf", name: "C:\\Windows\\evil<>.pdf" },
        { path: "/ünï/naïve café.txt", name: "/abs/olute.txt" },
      ],
    });
    const res = await fetch(local(gw, created.data.urls.url));
    expect(res.headers.get("content-disposition")).toBe(`attachment; filename="Quartalsbericht U.zip"; filename*=UTF-8''Quartalsbericht%20%C3%9C.zip`);
    const zip = join(dir.path, "names.zip");
    await writeFile(zip, Buffer.from(await res.arrayBuffer()));
    await verifyWithUnzippers(zip, [
      { name: "etc/passwd", sha256: sha256("notes") },
      { name: "Windows/evil__.pdf", sha256: sha256("report-1") },
      { name: "abs/olute.txt", sha256: sha256("unicode") },
    ]);
  });

  it("serves the same bytes on every GET, with exact length, validators and cache headers; HEAD has no body", async () => {
    const created = await create(gw, { objects: [{ folder: "/docs" }], expires_in: 600 });
    const url = local(gw, created.data.urls.url);
    const a = await fetch(url);
    const b = await fetch(url);
    const bytesA = Buffer.from(await a.arrayBuffer());
    const bytesB = Buffer.from(await b.arrayBuffer());
    expect(bytesA.equals(bytesB)).toBe(true);
    expect(a.headers.get("content-type")).toBe("application/zip");
    expect(a.headers.get("etag")).toMatch(/^"[\w-]+"$/);
    expect(a.headers.get("etag")).toBe(b.headers.get("etag"));
    expect(a.headers.get("last-modified")).toBeTruthy();
    expect(a.headers.get("accept-ranges")).toBe("bytes");
    const maxAge = Number(/max-age=(\d+)/.exec(a.headers.get("cache-control") ?? "")?.[1]);
    expect(maxAge).toBeGreaterThan(500);
    expect(maxAge).toBeLessThanOrEqual(600);
    expect(a.headers.get("cache-control")).toContain("immutable");
    const head = await fetch(url, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String(bytesA.length));
    expect(head.headers.get("etag")).toBe(a.headers.get("etag"));
    expect((await head.arrayBuffer()).byteLength).toBe(0);
  });

  it("caps expires_in at the configured lifetime", async () => {
    const created = await create(gw, { objects: [{ path: "/docs/notes.txt" }], expires_in: 10 * 365 * 86_400 });
    const expires = Date.parse(created.data.expires_at);
    expect(expires - Date.now()).toBeLessThanOrEqual(86_400_000 + 1000);
  });

  it("serves single ranges, suffix and open ranges, and 416 past the end", async () => {
    const created = await create(gw, { objects: [{ folder: "/docs" }, { path: "/big/a.bin" }] });
    const url = local(gw, created.data.urls.url);
    const full = Buffer.from(await (await fetch(url)).arrayBuffer());
    const cases: Array<[string, number, number]> = [
      ["bytes=0-99", 0, 100],
      ["bytes=100-", 100, full.length],
      ["bytes=-50", full.length - 50, full.length],
      [`bytes=${full.length - 200}-${full.length + 500}`, full.length - 200, full.length],
    ];
    for (const [range, start, end] of cases) {
      const res = await fetch(url, { headers: { range } });
      expect(res.status, range).toBe(206);
      expect(res.headers.get("content-range")).toBe(`bytes ${start}-${end - 1}/${full.length}`);
      expect(Buffer.from(await res.arrayBuffer()).equals(full.subarray(start, end)), range).toBe(true);
    }
    const past = await fetch(url, { headers: { range: `bytes=${full.length}-` } });
    expect(past.status).toBe(416);
    expect(past.headers.get("content-range")).toBe(`bytes */${full.length}`);
  });

  describe("errors, in the BitPaket shape", () => {
    it("401 without a key or with a wrong key", async () => {
      await expectError(await gw.post("/v2/zipball", { objects: [{ path: "/docs/notes.txt" }] }, null), 401, "unauthorized");
      await expectError(await gw.post("/v2/zipball", { objects: [{ path: "/docs/notes.txt" }] }, "wrong-key-0123456789"), 401, "unauthorized");
    });

    it("400 for malformed JSON, wrong types, zero or two keys, and unknown fields", async () => {
      await expectError(await gw.post("/v2/zipball", "{not json"), 400, "invalid_json");
      await expectError(await gw.post("/v2/zipball", "[1,2]"), 400, "invalid_body");
      await expectError(await gw.post("/v2/zipball", { objects: "nope" }), 400, "invalid_objects");
      await expectError(await gw.post("/v2/zipball", { objects: [] }), 400, "invalid_objects");
      await expectError(await gw.post("/v2/zipball", { objects: ["/docs/notes.txt"] }), 400, "invalid_object");
      await expectError(await gw.post("/v2/zipball", { objects: [{}] }), 400, "invalid_object");
      await expectError(await gw.post("/v2/zipball", { objects: [{ path: "/a", folder: "/b" }] }), 400, "invalid_object");
      await expectError(await gw.post("/v2/zipball", { objects: [{ path: 42 }] }), 400, "invalid_path");
      await expectError(await gw.post("/v2/zipball", { objects: [{ path: "docs/notes.txt" }] }), 400, "invalid_path");
      await expectError(await gw.post("/v2/zipball", { objects: [{ path: "/docs/notes.txt", nmae: "x" }] }), 400, "invalid_field");
      await expectError(await gw.post("/v2/zipball", { objects: [{ path: "/docs/notes.txt" }], expires_in: -1 }), 400, "invalid_field");
      await expectError(await gw.post("/v2/zipball", { objects: [{ path: "/docs/notes.txt" }], compression: "zstd" }), 400, "invalid_field");
      await expectError(await gw.post("/v2/zipball", { objects: [{ id: "not-a-uuid" }] }), 400, "invalid_id");
    });

    it("400 for the root folder", async () => {
      await expectError(await gw.post("/v2/zipball", { objects: [{ folder: "/" }] }), 400, "root_folder");
    });

    it("404 listing every missing path, and every unknown id", async () => {
      const missing = await expectError(
        await gw.post("/v2/zipball", { objects: [{ path: "/docs/notes.txt" }, { path: "/nope.txt" }, { folder: "/no-folder" }] }),
        404,
        "not_found",
      );
      expect(missing.missing).toEqual(["/nope.txt", "/no-folder/"]);
      const ids = await expectError(await gw.post("/v2/zipball", { objects: [{ id: "6f1c2f8e-3b7a-4c1d-9e2f-0a1b2c3d4e5f" }] }), 404, "not_found");
      expect(ids.missing_ids).toEqual(["6f1c2f8e-3b7a-4c1d-9e2f-0a1b2c3d4e5f"]);
    });

    it("400 over the file-count and byte limits, checked by resolving folders at creation", async () => {
      for (let i = 0; i < 51; i++) await writeFile(join(root, "docs", `gen-${i}.txt`), "x");
      try {
        await expectError(await gw.post("/v2/zipball", { objects: [{ folder: "/docs" }] }), 400, "too_many_files");
      } finally {
        for (let i = 0; i < 51; i++) await rm(join(root, "docs", `gen-${i}.txt`));
      }
      await writeFile(join(root, "big", "huge.bin"), Buffer.alloc(1024 * 1024 + 1));
      try {
        await expectError(await gw.post("/v2/zipball", { objects: [{ folder: "/big" }] }), 400, "too_many_bytes");
      } finally {
        await rm(join(root, "big", "huge.bin"));
      }
    });

    it("404 for an unknown ball and for a download path without ?zipball", async () => {
      await expectError(await fetch(`${gw.url}/6f1c2f8e-3b7a-4c1d-9e2f-0a1b2c3d4e5f.zip?zipball`), 404, "not_found");
      await expectError(await fetch(`${gw.url}/whatever.zip?zipball`), 404, "not_found");
      const created = await create(gw, { objects: [{ path: "/docs/notes.txt" }] });
      await expectError(await fetch(`${gw.url}/${created.data.ball_id}.zip`), 404, "not_found");
    });

    it("404 for a manifest altered in the store, even by one byte", async () => {
      const created = await create(gw, { objects: [{ path: "/docs/notes.txt" }] });
      const id = created.data.ball_id;
      // A second gateway on the same store: no cache, it must read and verify the stored manifest.
      const other = await startGateway({ root });
      try {
        const stored = join(root, zipballKey(id));
        const original = await readFile(stored, "utf8");
        expect((await fetch(`${other.url}/${id}.zip?zipball`)).status).toBe(200);
        await writeFile(stored, original.replace('"name":"notes.txt"', '"name":"notez.txt"'));
        const third = await startGateway({ root });
        try {
          await expectError(await fetch(`${third.url}/${id}.zip?zipball`), 404, "not_found");
          const [token, json] = [original.slice(0, original.indexOf("\n")), original.slice(original.indexOf("\n") + 1)];
          const parts = token.split(".");
          const payload = JSON.parse(Buffer.from(parts[1] as string, "base64url").toString());
          payload.exp += 86_400;
          const forged = [parts[0], Buffer.from(JSON.stringify(payload)).toString("base64url"), parts[2]].join(".");
          await writeFile(stored, `${forged}\n${json}`);
          const fourth = await startGateway({ root });
          try {
            await expectError(await fetch(`${fourth.url}/${id}.zip?zipball`), 404, "not_found");
          } finally {
            await fourth.close();
          }
        } finally {
          await third.close();
        }
      } finally {
        await other.close();
      }
    });

    it("410 for an expired zipball", async () => {
      const created = await create(gw, { objects: [{ path: "/docs/notes.txt" }], expires_in: 1 });
      await new Promise((r) => setTimeout(r, 2100));
      await expectError(await fetch(local(gw, created.data.urls.url)), 410, "expired");
    });

    it("never shows a stack or the store's file system path", async () => {
      const res = await gw.post("/v2/zipball", { objects: [{ path: "/nope.txt" }] });
      const text = await res.text();
      expect(text).not.toContain(root);
      expect(text).not.toMatch(/at .*\.ts:\d+/);
    });
  });

  describe("the reserved prefix", () => {
    it("cannot be named by path, folder, case variants or .. tricks", async () => {
      for (const obj of [{ path: "/.zipgate/secrets.json" }, { path: "/.ZipGate/secrets.json" }, { folder: "/.zipgate" }, { folder: "/.zipgate/zipballs/" }]) {
        await expectError(await gw.post("/v2/zipball", { objects: [obj] }), 400, "reserved_path");
      }
      for (const obj of [{ path: "/docs/../.zipgate/secrets.json" }, { path: "/./.zipgate/secrets.json" }, { path: "//.zipgate/secrets.json" }]) {
        await expectError(await gw.post("/v2/zipball", { objects: [obj] }), 400, "invalid_path");
      }
      await expectError(await gw.post("/v2/objects", { path: "/.zipgate/secrets.json" }), 400, "reserved_path");
    });

    it("is not reachable through a symbolic link, nor served over HTTP", async () => {
      await symlink(join(root, ".zipgate"), join(root, "docs", "link-to-state"));
      await symlink(join(root, ".zipgate", "secrets.json"), join(root, "secret-link.json"));
      try {
        const missing = await expectError(await gw.post("/v2/zipball", { objects: [{ path: "/secret-link.json" }] }), 404, "not_found");
        expect(missing.missing).toEqual(["/secret-link.json"]);
        const created = await create(gw, { objects: [{ folder: "/docs" }] });
        const zip = join(dir.path, "no-links.zip");
        await fetchZip(gw, created, zip);
        const { stdout } = await run("unzip", ["-Z1", zip]);
        expect(stdout).not.toContain("link-to-state");
        expect(stdout).not.toContain("secrets");
      } finally {
        await rm(join(root, "docs", "link-to-state"));
        await rm(join(root, "secret-link.json"));
      }
      expect((await fetch(`${gw.url}/.zipgate/secrets.json`)).status).toBe(404);
    });
  });

  describe("object ids", () => {
    it("registers a path once and resolves the id to it, on any replica", async () => {
      const first = await gw.post("/v2/objects", { path: "/docs/notes.txt" });
      expect(first.status).toBe(201);
      const { data } = (await first.json()) as { data: { id: string; path: string } };
      expect(data.path).toBe("/docs/notes.txt");
      const again = await gw.post("/v2/objects", { path: "/docs/notes.txt" });
      expect(again.status).toBe(200);
      expect(((await again.json()) as { data: { id: string } }).data.id).toBe(data.id);
      await expectError(await gw.post("/v2/objects", { path: "/nope.txt" }), 404, "not_found");
      const other = await startGateway({ root });
      try {
        const res = await other.post("/v2/zipball", { objects: [{ id: data.id, name: "by-id.txt" }] });
        expect(res.status).toBe(201);
        const created = (await res.json()) as Created;
        const zip = join(dir.path, "by-id.zip");
        await fetchZip(gw, created, zip);
        await verifyWithUnzippers(zip, [{ name: "by-id.txt", sha256: sha256("notes") }]);
        const got = await fetch(`${other.url}/v2/objects/${data.id}`, { headers: { authorization: `Bearer ${other.key}` } });
        expect(((await got.json()) as { data: { path: string } }).data.path).toBe("/docs/notes.txt");
      } finally {
        await other.close();
      }
    });
  });

  it("deflate mode streams a compressed archive that every unzipper opens", async () => {
    const created = await create(gw, { compression: "deflate", objects: [{ folder: "/docs" }, { path: "/big/a.bin" }] });
    const res = await fetch(local(gw, created.data.urls.url));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBeNull();
    expect(res.headers.get("accept-ranges")).toBe("none");
    const zip = join(dir.path, "deflate.zip");
    await writeFile(zip, Buffer.from(await res.arrayBuffer()));
    const { stdout } = await run("unzip", ["-v", zip]);
    expect(stdout).toMatch(/Defl/);
    await verifyWithUnzippers(zip, [
      { name: "docs/", dir: true },
      { name: "docs/empty-sub/", dir: true },
      { name: "docs/notes.txt", sha256: sha256("notes") },
      { name: "docs/report.pdf", sha256: sha256("report-1") },
      { name: "docs/sub/", dir: true },
      { name: "docs/sub/deep.txt", sha256: sha256("deep") },
      { name: "a.bin", sha256: sha256(Buffer.alloc(1024, 1)) },
    ]);
  });

  it("logs no API key, no signing secret and no full zipball id", async () => {
    const created = await create(gw, { objects: [{ path: "/docs/notes.txt" }] });
    await (await fetch(local(gw, created.data.urls.url))).arrayBuffer();
    const logs = gw.logs.join("");
    expect(logs).toContain(created.data.ball_id.slice(0, 8));
    expect(logs).not.toContain(created.data.ball_id);
    expect(logs).not.toContain(gw.key);
    expect(logs).not.toContain("test-signing-secret");
  });
});

describe("streaming failures", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let root: string;
  const FILES = 24;
  const SIZE = 4 * 1024 * 1024;

  beforeAll(async () => {
    dir = await tempDir();
    root = join(dir.path, "store");
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < FILES; i++) files[`many/f${String(i).padStart(2, "0")}.bin`] = Buffer.alloc(SIZE, i);
    await writeTree(root, files, MTIME);
  });
  afterAll(() => dir.cleanup());

  it("a client that disconnects stops the storage reads", async () => {
    const storage = countingStorage(await createFsStorage({ root }));
    const gw = await startGateway({ storage });
    try {
      const created = await create(gw, { objects: [{ folder: "/many" }] });
      // The creation reads the objects once to learn their CRCs (its budget): counted apart.
      const atCreation = storage.bytes();
      const controller = new AbortController();
      const res = await fetch(local(gw, created.data.urls.url), { signal: controller.signal });
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      let got = 0;
      while (got < 1024 * 1024) got += ((await reader.read()).value as Uint8Array).length;
      controller.abort();
      await new Promise((r) => setTimeout(r, 500));
      const afterAbort = storage.bytes() - atCreation;
      await new Promise((r) => setTimeout(r, 500));
      expect(storage.bytes() - atCreation).toBe(afterAbort);
      // Far less than the archive: socket buffers and the read-ahead, not the whole thing.
      expect(afterAbort).toBeLessThan((FILES * SIZE) / 2);
    } finally {
      await gw.close();
    }
  });

  it("an object that fails after the first byte aborts the connection: never a well-formed short zip", async () => {
    const gw = await startGateway({ root, env: { ZIPGATE_READ_AHEAD: "2" } });
    try {
      const created = await create(gw, { objects: [{ folder: "/many" }] });
      const res = await fetch(local(gw, created.data.urls.url));
      expect(res.status).toBe(200);
      const length = Number(res.headers.get("content-length"));
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      await reader.read();
      // Same inode, fewer bytes: the object changed after the zipball was made.
      await truncate(join(root, "many", `f${FILES - 1}.bin`), 10);
      let got = 0;
      const outcome = await (async () => {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return "complete";
          got += value.length;
        }
      })().catch(() => "aborted");
      expect(outcome).toBe("aborted");
      expect(got).toBeLessThan(length);
      expect(gw.logs.join("")).toContain("aborting the connection");
    } finally {
      await gw.close();
    }
  });
});
