import { execFileSync } from "node:child_process";
import { mkdir, readFile, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir, writeTree } from "../helpers/archive.js";
import { local, type RunningGateway, startGateway, TEST_KEY, zipballUrl } from "../helpers/gateway.js";
import { startGatewayProcess } from "../helpers/process.js";

const SCOPED_KEY = "scoped-key-0123456789abcdef";

async function status(res: Response): Promise<{ status: number; body: string }> {
  return { status: res.status, body: await res.text() };
}

describe("the store's boundary: no symbolic link is followed, at any depth", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let root: string;
  let outside: string;
  let gw: RunningGateway;

  beforeAll(async () => {
    dir = await tempDir();
    root = join(dir.path, "store");
    outside = join(dir.path, "outside");
    await writeTree(root, {
      "photos/real.txt": "real",
      "photos/sub/deeper/ok.txt": "ok",
      "photos/swap/f.txt": "inside",
      "docs/a.txt": "alpha",
    });
    await writeTree(outside, { "secret.txt": "outside secret", "f.txt": "OUTSIDE" });
    // Links to a folder and to a file, outside the store, into the reserved prefix, and to
    // another place inside the store, at several depths.
    await mkdir(join(root, ".zipgate"), { recursive: true });
    await symlink(outside, join(root, "photos/link-out"));
    await symlink(join(outside, "secret.txt"), join(root, "photos/link-file"));
    await symlink(join(root, ".zipgate"), join(root, "photos/link-zg"));
    await symlink(join(root, "docs"), join(root, "photos/sub/deeper/link-in"));
    await symlink(outside, join(root, "link-top"));
    gw = await startGateway({ root, env: { ZIPGATE_API_KEYS: `${TEST_KEY},${SCOPED_KEY}=/photos/` } });
  });
  afterAll(async () => {
    await gw.close();
    await dir.cleanup();
  });

  it.each([
    ["a file below a link to an outside folder", { path: "/photos/link-out/secret.txt" }],
    ["a link to an outside file", { path: "/photos/link-file" }],
    ["the reserved prefix through a link", { path: "/photos/link-zg/secrets.json" }],
    ["a folder through a link to the reserved prefix", { folder: "/photos/link-zg/zipballs" }],
    ["a folder that is a link", { folder: "/photos/link-out" }],
    ["a file through a link deep inside the store", { path: "/photos/sub/deeper/link-in/a.txt" }],
  ])("refuses %s, for the scoped key and the full key alike", async (_what, object) => {
    for (const key of [SCOPED_KEY, TEST_KEY]) {
      const res = await status(await gw.post("/v2/zipball", { objects: [object] }, key));
      expect(res.status, res.body).toBe(404);
      expect(res.body).not.toContain("outside secret");
    }
  });

  it("refuses a folder through a link at the top of the store", async () => {
    const res = await status(await gw.post("/v2/zipball", { objects: [{ folder: "/link-top" }] }));
    expect(res.status, res.body).toBe(404);
  });

  it("leaves links out of folder archives", async () => {
    const zip = Buffer.from(await (await fetch(await zipballUrl(gw, { objects: [{ folder: "/photos" }] }, SCOPED_KEY))).arrayBuffer());
    expect(zip.includes(Buffer.from("outside secret"))).toBe(false);
    expect(zip.includes(Buffer.from("link-"))).toBe(false);
    expect(zip.includes(Buffer.from("photos/real.txt"))).toBe(true);
  });

  it("refuses an id whose path now passes through a link", async () => {
    const reg = await gw.post("/v2/objects", { path: "/photos/swap/f.txt" });
    const { id } = ((await reg.json()) as { data: { id: string } }).data;
    await rename(join(root, "photos/swap"), join(root, "photos/swap-old"));
    await symlink(outside, join(root, "photos/swap"));
    try {
      const res = await status(await gw.post("/v2/zipball", { objects: [{ id }] }));
      expect(res.status, res.body).toBe(404);
    } finally {
      await rm(join(root, "photos/swap"));
      await rename(join(root, "photos/swap-old"), join(root, "photos/swap"));
    }
  });

  it("does not serve outside bytes when a folder of a zipball is swapped for a link after creation", async () => {
    const url = await zipballUrl(gw, { objects: [{ path: "/photos/swap/f.txt" }, { path: "/photos/real.txt" }] });
    await rename(join(root, "photos/swap"), join(root, "photos/swap-old"));
    await symlink(outside, join(root, "photos/swap"));
    try {
      const download = await fetch(url);
      const body = download.status === 200 ? Buffer.from(await download.arrayBuffer().catch(() => new ArrayBuffer(0))) : Buffer.alloc(0);
      expect(download.status).toBe(404);
      expect(body.includes(Buffer.from("OUTSIDE"))).toBe(false);
    } finally {
      await rm(join(root, "photos/swap"));
      await rename(join(root, "photos/swap-old"), join(root, "photos/swap"));
    }
  });

  it("answers ids outside a key's scopes as unknown, never naming their path", async () => {
    const reg = await gw.post("/v2/objects", { path: "/docs/a.txt" });
    const { id } = ((await reg.json()) as { data: { id: string } }).data;
    const get = await status(await fetch(`${gw.url}/v2/objects/${id}`, { headers: { authorization: `Bearer ${SCOPED_KEY}` } }));
    expect(get.status).toBe(404);
    expect(get.body).not.toContain("docs");
    const create = await status(await gw.post("/v2/zipball", { objects: [{ id }] }, SCOPED_KEY));
    expect(create.status).toBe(404);
    expect(create.body).not.toContain("docs");
    expect(JSON.parse(create.body)).toMatchObject({ error: { code: "not_found", missing_ids: [id] } });
    const box = await status(await gw.post("/2.0/zip_downloads", { items: [{ type: "file", id }] }, SCOPED_KEY));
    expect(box.status).toBe(404);
    expect(box.body).not.toContain("docs");
  });
});

describe("a zipball whose state in the store cannot be read", () => {
  it("answers a 5xx that names no internal path (a manifest made a folder)", async () => {
    const dir = await tempDir();
    const root = join(dir.path, "store");
    await writeTree(root, { "a.txt": "alpha" });
    const first = await startGateway({ root });
    const res = await first.post("/v2/zipball", { objects: [{ path: "/a.txt" }] });
    const url = ((await res.json()) as { data: { ball_id: string; urls: { url: string } } }).data;
    await first.close();
    const manifest = join(root, ".zipgate/zipballs", url.ball_id, "manifest");
    await rm(manifest);
    await mkdir(manifest);
    // A fresh process: nothing cached, the state is read from the store.
    const gw = await startGateway({ root });
    try {
      const get = await status(await fetch(local(gw, url.urls.url)));
      expect(get.status).toBeGreaterThanOrEqual(500);
      expect(get.body).not.toContain(".zipgate");
      expect(get.body).not.toContain("manifest");
    } finally {
      await gw.close();
      await dir.cleanup();
    }
  });
});

describe("secrets stay out of logs and are kept owner-only", () => {
  it("logs a failing URL object as scheme, host and path only, and keeps huge ones short", async () => {
    const dir = await tempDir();
    const gw = await startGateway({ root: join(dir.path, "store"), env: { ZIPGATE_URL_ALLOW: "127.0.0.1" } });
    try {
      const signed = "http://127.0.0.1:1/export.csv?X-Amz-Credential=AKIDEXAMPLE&X-Amz-Signature=deadbeefcafe";
      const res = await gw.post("/v2/zipball", { objects: [{ url: signed }] });
      expect(res.status).toBe(502);
      const huge = `http://127.0.0.1:1/${"a".repeat(3_000_000)}?X-Amz-Signature=deadbeefcafe`;
      const res2 = await gw.post("/v2/zipball", { objects: [{ url: huge }] });
      expect(res2.status).toBeGreaterThanOrEqual(400);
      const logs = gw.logs.join("");
      expect(logs).toContain("127.0.0.1:1/export.csv");
      expect(logs).not.toContain("X-Amz-Signature");
      expect(logs).not.toContain("deadbeefcafe");
      expect(logs).not.toContain("AKIDEXAMPLE");
      expect(Math.max(...gw.logs.map((l) => l.length))).toBeLessThan(10_000);
    } finally {
      await gw.close();
      await dir.cleanup();
    }
  });

  it("prints a generated key only at the start that made it, and writes state 0600", async () => {
    const dir = await tempDir();
    const root = join(dir.path, "store");
    try {
      const env = { ZIPGATE_STORAGE: root, ZIPGATE_API_KEYS: "", ZIPGATE_SIGNING_SECRET: "" };
      const first = await startGatewayProcess(env);
      await first.stop("SIGTERM");
      const secrets = JSON.parse(await readFile(join(root, ".zipgate/secrets.json"), "utf8")) as { apiKey: string };
      expect(first.stderr()).toContain(secrets.apiKey);
      expect((await stat(join(root, ".zipgate/secrets.json"))).mode & 0o777).toBe(0o600);
      expect((await stat(join(root, ".zipgate"))).mode & 0o777).toBe(0o700);
      const second = await startGatewayProcess(env);
      await second.stop("SIGTERM");
      expect(second.stderr()).not.toContain(secrets.apiKey);
      expect(second.stderr()).toContain("kept in the store");
      await writeFile(join(dir.path, "done"), "");
    } finally {
      await dir.cleanup();
    }
  });
});

describe("nothing a folder holds is dropped silently", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let root: string;
  let gw: RunningGateway;

  beforeAll(async () => {
    dir = await tempDir();
    root = join(dir.path, "store");
    await writeTree(root, { "f/C:": "drive-like file", "f/D:/normal.txt": "inner", "f/normal.txt": "outer", "deep/x/start.txt": "s" });
    // A path longer than PATH_MAX, made one short step at a time.
    const segment = "d".repeat(250);
    execFileSync("bash", [
      "-c",
      `cd "$1" && for i in $(seq 1 18); do mkdir ${segment} && cd ${segment}; done && echo deep > file.txt`,
      "_",
      join(root, "deep/x"),
    ]);
    gw = await startGateway({ root });
  });
  afterAll(async () => {
    await gw.close();
    // GNU rm walks paths longer than PATH_MAX; fs.rm does not.
    execFileSync("rm", ["-rf", dir.path]);
  });

  it("keeps files and folders named like drive letters, under names derived from their own", async () => {
    const zip = Buffer.from(await (await fetch(await zipballUrl(gw, { objects: [{ folder: "/f" }] }))).arrayBuffer());
    for (const name of ["f/C_", "f/D_/normal.txt", "f/normal.txt"]) expect(zip.includes(Buffer.from(name)), name).toBe(true);
    expect(zip.includes(Buffer.from("f/normal (1).txt"))).toBe(false);
    for (const content of ["drive-like file", "inner", "outer"]) expect(zip.includes(Buffer.from(content)), content).toBe(true);
  });

  it("keeps files whose names are not UTF-8, under valid and stable names, with their own bytes", async () => {
    await mkdir(join(root, "bad"), { recursive: true });
    const raw = (bytes: number[]) => Buffer.concat([Buffer.from(`${root}/bad/`), Buffer.from(bytes), Buffer.from(".txt")]);
    await writeFile(raw([0x72, 0xe9, 0x73, 0x75, 0x6d, 0xe9]), "latin-1 e-acute");
    await writeFile(raw([0x72, 0xe8, 0x73, 0x75, 0x6d, 0xe8]), "latin-1 e-grave");
    await writeFile(join(root, "bad/fine.txt"), "fine");
    const names: string[] = [];
    for (let round = 0; round < 2; round++) {
      const zip = Buffer.from(await (await fetch(await zipballUrl(gw, { objects: [{ folder: "/bad" }] }))).arrayBuffer());
      for (const content of ["latin-1 e-acute", "latin-1 e-grave", "fine"]) expect(zip.includes(Buffer.from(content)), content).toBe(true);
      // Both names become r\ufffdsum\ufffd.txt, so the second is renamed: valid UTF-8, the same every time.
      const found = ["bad/r\ufffdsum\ufffd.txt", "bad/r\ufffdsum\ufffd (1).txt"].filter((n) => zip.includes(Buffer.from(n)));
      expect(found.length).toBe(2);
      names.push(found.join("|"));
    }
    expect(names[0]).toBe(names[1]);
  });

  it("refuses a folder with a path too long to read, naming it, with a 4xx", async () => {
    const res = await gw.post("/v2/zipball", { objects: [{ folder: "/deep" }] });
    const text = await res.text();
    expect(res.status, text).toBe(400);
    expect(JSON.parse(text)).toMatchObject({ success: false, error: { code: "path_too_long" } });
    expect(text).not.toContain(root);
  });

  it("serves archives whose given names held lone surrogates (BitPaket name, Box download_file_name)", async () => {
    const get = await fetch(await zipballUrl(gw, { name: "bad\ud800name", objects: [{ path: "/f/normal.txt", name: "x\udc00.txt" }] }));
    expect(get.status).toBe(200);
    await get.arrayBuffer();
    const box = await gw.post("/2.0/zip_downloads", { download_file_name: "box\ud800", items: [{ type: "file", id: "/f/normal.txt" }] });
    expect(box.status).toBe(202);
    const content = await fetch(local(gw, ((await box.json()) as { download_url: string }).download_url));
    expect(content.status).toBe(200);
    await content.arrayBuffer();
  });
});
