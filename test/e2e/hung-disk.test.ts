import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../helpers/archive.js";
import { type GatewayProcess, startGatewayProcess } from "../helpers/process.js";

const HANGFS = fileURLToPath(new URL("../helpers/hangfs.py", import.meta.url));

/**
 * A folder store on a disk that stops answering: a FUSE file system (test/helpers/hangfs.py,
 * Debian's python3-fusepy) mounted inside the store, whose reads under hang/ block in the
 * kernel while a hold file exists, as on a dead NFS or FUSE mount.
 */
describe("a folder store whose disk stops answering (FUSE)", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let mount: string;
  let hold: string;
  let fuse: ChildProcess;
  let gw: GatewayProcess;

  beforeAll(async () => {
    // Loud, not skipped: this test is about a real hung mount.
    if (!existsSync("/dev/fuse")) throw new Error("/dev/fuse is missing: the hung-disk test needs FUSE (./scripts/test.sh installs fuse3)");
    dir = await tempDir("zipgate-hung-");
    const root = join(dir.path, "data");
    mount = join(root, "m");
    hold = join(dir.path, "hold");
    await mkdir(mount, { recursive: true });
    await writeFile(join(root, "plain.txt"), "on the healthy disk");
    await writeFile(hold, "");
    // Debian's Python, where python3-fusepy is installed (another python3 may come first on PATH).
    fuse = spawn(existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3", [HANGFS, mount, hold], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    fuse.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    let mounted = false;
    for (let i = 0; i < 100 && !mounted; i++) {
      mounted = (await stat(join(mount, "ok.txt")).catch(() => null)) !== null;
      if (!mounted) await new Promise((r) => setTimeout(r, 50));
    }
    if (!mounted) throw new Error(`the FUSE file system did not mount: ${stderr}`);
    gw = await startGatewayProcess({ ZIPGATE_STORAGE: root, ZIPGATE_STORE_TIMEOUT: "1s" });
  });
  afterAll(async () => {
    await rm(hold, { force: true });
    await gw?.stop();
    try {
      execFileSync("fusermount3", ["-u", mount]);
    } catch {
      fuse?.kill("SIGKILL");
      try {
        execFileSync("umount", ["-l", mount]);
      } catch {}
    }
    await dir?.cleanup();
  });

  const create = async (path: string): Promise<string> => {
    const res = await fetch(`${gw.url}/v2/zipball`, {
      method: "POST",
      headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" },
      body: JSON.stringify({ objects: [{ path }], prepare: false }),
    });
    expect(res.status).toBe(201);
    const url = new URL(((await res.json()) as { data: { urls: { url: string } } }).data.urls.url);
    return `${gw.url}${url.pathname}${url.search}`;
  };
  const ready = async (): Promise<number> => (await fetch(`${gw.url}/readyz`)).status;

  it("fails reads the disk does not answer, replaces the stuck threads, is unready until they are back, and serves the healthy files meanwhile", async () => {
    expect(await ready()).toBe(200);
    const hung = await Promise.all(["/m/hang/one.bin", "/m/hang/two.bin"].map(create));
    const healthy = await create("/plain.txt");
    // The disk does not answer: each download fails with the store's timeout, before its first byte.
    for (const url of [...hung, hung[0] as string]) {
      const res = await fetch(url);
      expect(res.status).toBe(504);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("storage_timeout");
    }
    // The threads left in those reads are replaced: the healthy disk is served meanwhile.
    for (let i = 0; i < 3; i++) {
      const res = await fetch(healthy);
      expect(res.status).toBe(200);
      expect((await res.arrayBuffer()).byteLength).toBe(Number(res.headers.get("content-length")));
    }
    // And the process says it is not ready while threads are stuck.
    const unready = await fetch(`${gw.url}/readyz`);
    expect(unready.status).toBe(503);
    expect(await unready.text()).toMatch(/storage_timeout/);

    // The disk answers again: the stuck threads end, and the process is ready again.
    await rm(hold);
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = await ready();
    }
    expect(status).toBe(200);
    const res = await fetch(hung[0] as string);
    expect(res.status).toBe(200);
    expect((await res.arrayBuffer()).byteLength).toBe(Number(res.headers.get("content-length")));
    expect(gw.stdout()).not.toContain('"level":"fatal"');
  });
});
