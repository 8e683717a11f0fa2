import { randomBytes } from "node:crypto";
import { type AddressInfo, connect, createServer as createTcpServer, type Socket } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir, writeTree } from "../helpers/archive.js";
import { CHROMIUM, clickDownloadLink, launchChromium, type RunningChromium } from "../helpers/chromium.js";
import { type Interrupter, interruptedDownload, requireTools, runTool, sha256File, sha256OfOutput, startInterrupter } from "../helpers/clients.js";
import { type GatewayProcess, startGatewayProcess } from "../helpers/process.js";
import { sha256, verifyWithUnzippers } from "../helpers/unzippers.js";

const CURL = ["-sS", "--fail"];
const ONE = randomBytes(6 * 1024 * 1024);
const TWO = randomBytes(5 * 1024 * 1024 + 17);
const digest = (d: { sha256: string; size: number }) => ({ sha256: d.sha256, size: d.size });

/**
 * Real download clients against a real gateway process, each file compared with a plain curl
 * download of the same URL: aria2c splitting into ranges, wget and curl resuming after a cut,
 * Chromium following a Box download_url.
 */
describe("download clients against a gateway process", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let gw: GatewayProcess;
  const cleanups: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    requireTools({ aria2c: "aria2", curl: "curl", wget: "wget", [CHROMIUM]: "chromium", unzip: "unzip" });
    dir = await tempDir("zipgate-download-clients-");
    await writeTree(join(dir.path, "data"), {
      "paced/big.bin": randomBytes(12 * 1024 * 1024),
      "set/one.bin": ONE,
      "set/two.bin": TWO,
      "set/Grüße/klein.txt": "grüße",
    });
    gw = await startGatewayProcess({ ZIPGATE_STORAGE: join(dir.path, "data") });
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await gw?.stop();
    await dir?.cleanup();
  });

  const post = async (path: string, body: unknown): Promise<Record<string, any>> => {
    const res = await fetch(`${gw.url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as Record<string, any>;
    expect(res.status, JSON.stringify(json)).toBeLessThan(300);
    return json;
  };
  const zipball = async (name: string): Promise<string> => {
    const url = new URL((await post("/v2/zipball", { name, objects: [{ folder: "/set" }] })).data.urls.url as string);
    return `${gw.url}${url.pathname}${url.search}`;
  };
  const expected = [
    { name: "set/", dir: true },
    { name: "set/one.bin", sha256: sha256(ONE) },
    { name: "set/two.bin", sha256: sha256(TWO) },
    { name: "set/Grüße/", dir: true },
    { name: "set/Grüße/klein.txt", sha256: sha256("grüße") },
  ];
  const ranges = (): string[] =>
    gw
      .stdout()
      .split("\n")
      .filter((l) => l.includes('"msg":"download"'))
      .map((l) => (JSON.parse(l) as { range?: string; status: number }).range ?? String((JSON.parse(l) as { status: number }).status));

  it("aria2c with 4 ranged connections: the file equals a plain curl download", async () => {
    const url = await zipball("aria");
    const reference = await sha256OfOutput("curl", [...CURL, url]);
    const before = ranges().length;
    await runTool("aria2c", ["-q", "-x4", "-s4", "-k1M", "--min-split-size=1M", "--allow-overwrite=true", "-d", dir.path, "-o", "aria.zip", url]);
    expect(await sha256File(join(dir.path, "aria.zip"))).toEqual(digest(reference));
    // It really split: several 206 answers, each a part of the archive.
    const parts = ranges()
      .slice(before)
      .filter((r) => r.startsWith("bytes "));
    expect(parts.length).toBeGreaterThanOrEqual(2);
    await verifyWithUnzippers(join(dir.path, "aria.zip"), expected);
  });

  it("aria2c on a Box download_url: told ranges are not offered, it takes the one body whole", async () => {
    const created = await post("/2.0/zip_downloads", { items: [{ type: "folder", id: "/set" }], download_file_name: "box aria" });
    const url = new URL(created.download_url as string);
    const local = `${gw.url}${url.pathname}`;
    await runTool("aria2c", ["-q", "-x4", "-s4", "-k1M", "--allow-overwrite=true", "-d", dir.path, "-o", "box-aria.zip", local]);
    await verifyWithUnzippers(join(dir.path, "box-aria.zip"), expected);
    const status = (await (
      await fetch(`${gw.url}${new URL(created.status_url as string).pathname}`, { headers: { authorization: `Bearer ${gw.key}` } })
    ).json()) as {
      state: string;
    };
    expect(["in_progress", "succeeded"]).toContain(status.state);
  });

  for (const client of ["wget", "curl"] as const) {
    it(`${client} resumes a download cut off mid-way (${client === "wget" ? "wget -c" : "curl --continue-at -"}), byte-identical to a plain download`, async () => {
      const url = await zipball(`resume ${client}`);
      const reference = await sha256OfOutput("curl", [...CURL, url]);
      const proxy: Interrupter = await startInterrupter(gw.url, { mode: "cut", after: Math.floor(reference.size * 0.45) });
      cleanups.push(() => proxy.close());
      const file = join(dir.path, `${client}-resumed.zip`);
      const through = url.replace(gw.url, proxy.url);
      const partial =
        client === "curl"
          ? await interruptedDownload("curl", [...CURL, "-o", file, through], file, proxy)
          : await interruptedDownload("wget", ["-q", "--tries=1", "-O", file, through], file, proxy);
      expect(partial).toBe(proxy.after);
      if (client === "curl") await runTool("curl", [...CURL, "--continue-at", "-", "-o", file, url]);
      else await runTool("wget", ["-q", "-c", "-O", file, url]);
      expect(await sha256File(file)).toEqual(digest(reference));
    });
  }

  describe("Chromium", () => {
    let browser: RunningChromium;
    beforeAll(async () => {
      browser = await launchChromium();
    });
    afterAll(async () => {
      await browser?.close();
    });

    it("a click on a Box download_url saves the zip under its non-ASCII Content-Disposition name, byte-identical and opening", async () => {
      const created = await post("/2.0/zip_downloads", { items: [{ type: "folder", id: "/set" }], download_file_name: "Übersicht ✓" });
      const href = `${gw.url}${new URL(created.download_url as string).pathname}`;
      const { download, tab } = await clickDownloadLink(browser, href);
      expect(download.suggestedFilename()).toBe("Übersicht ✓.zip");
      const file = join(dir.path, "chromium-box.zip");
      await download.saveAs(file);
      expect(await download.failure()).toBeNull();
      await verifyWithUnzippers(file, expected);
      // The URL was used up by that one download: the same bytes are not on offer again.
      expect((await fetch(href)).status).toBe(404);
      await tab.close();
    });

    it("a download paused and resumed in Chromium's own downloads page completes byte-identical", async () => {
      const url = new URL((await post("/v2/zipball", { name: "paced", objects: [{ folder: "/paced" }] })).data.urls.url as string);
      const direct = `${gw.url}${url.pathname}${url.search}`;
      const reference = await sha256OfOutput("curl", [...CURL, direct]);
      // About 8 MB/s, so the download is still running when it is paused.
      const paced = await pacedProxy(gw.url, 256 * 1024, 30);
      cleanups.push(paced.close);
      const { download, tab } = await clickDownloadLink(browser, direct.replace(gw.url, paced.url));
      const manager = await browser.context.newPage();
      await manager.goto("chrome://downloads/");
      // The page's own pause/resume button, inside its shadow roots.
      const press = () =>
        manager.waitForFunction(`(() => {
          const item = document.querySelector("downloads-manager")?.shadowRoot?.querySelector("downloads-item");
          const button = item?.shadowRoot?.querySelector("#pause-or-resume");
          if (!button) return null;
          const label = button.textContent.trim();
          button.click();
          return label;
        })()`);
      expect(await (await press()).jsonValue()).toMatch(/pause/i);
      const atPause = paced.forwarded();
      await manager.waitForTimeout(1500);
      expect(paced.forwarded()).toBeLessThan(reference.size);
      expect(await (await press()).jsonValue()).toMatch(/resume/i);
      const file = join(dir.path, "chromium-paused.zip");
      await download.saveAs(file);
      expect(await download.failure()).toBeNull();
      expect(atPause).toBeLessThan(reference.size);
      expect(await sha256File(file)).toEqual(digest(reference));
      await manager.close();
      await tab.close();
    });
  });
});

/** A TCP proxy that forwards the answer `chunk` bytes per `everyMs`: a slow link. */
async function pacedProxy(origin: string, chunk: number, everyMs: number): Promise<{ url: string; forwarded(): number; close(): Promise<void> }> {
  const target = new URL(origin);
  const sockets = new Set<Socket>();
  let forwarded = 0;
  const server = createTcpServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", () => client.end());
    client.pipe(upstream);
    upstream.on("data", (data: Buffer) => {
      upstream.pause();
      let at = 0;
      const next = (): void => {
        if (client.destroyed) return;
        const part = data.subarray(at, at + chunk);
        at += part.length;
        forwarded += part.length;
        client.write(part, () => (at < data.length ? setTimeout(next, everyMs) : setTimeout(() => upstream.resume(), everyMs)));
      };
      next();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    forwarded: () => forwarded,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
