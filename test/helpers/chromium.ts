import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Download, type Page } from "playwright-core";

/** Debian's Chromium (package `chromium`); Playwright's own browser download is not used. */
export const CHROMIUM = "/usr/bin/chromium";

export interface RunningChromium {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Headless Chromium with a fresh profile, accepting downloads. Throws when Chromium is not installed. */
export async function launchChromium(): Promise<RunningChromium> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (Debian package chromium); ./scripts/test.sh installs it`);
  const profile = await mkdtemp(join(tmpdir(), "zipgate-chromium-"));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      acceptDownloads: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    return {
      context,
      close: async () => {
        await context.close();
        await rm(profile, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(profile, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Serves a page holding one link to `href` on 127.0.0.1, opens it in a new tab, clicks the
 * link and resolves with the download it started (and the tab). The page's server is closed
 * once the click has started the download (Chromium keeps its connection alive: dropped too).
 */
export async function clickDownloadLink(browser: RunningChromium, href: string): Promise<{ download: Download; tab: Page }> {
  const page = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(`<!doctype html><meta charset="utf-8"><title>zipgate</title><a id="dl" href="${href}">Download</a>`);
  });
  await new Promise<void>((resolve) => page.listen(0, "127.0.0.1", resolve));
  try {
    const tab = await browser.context.newPage();
    await tab.goto(`http://127.0.0.1:${(page.address() as AddressInfo).port}/`);
    const [download] = await Promise.all([tab.waitForEvent("download"), tab.click("#dl")]);
    return { download, tab };
  } finally {
    page.closeAllConnections();
    await new Promise((resolve) => page.close(resolve));
  }
}
