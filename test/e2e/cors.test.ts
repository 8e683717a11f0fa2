import { writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir, writeTree } from "../helpers/archive.js";
import { launchChromium, type RunningChromium } from "../helpers/chromium.js";
import { type RunningGateway, startGateway } from "../helpers/gateway.js";

/** What the page on the other origin saw. */
interface RoundTrip {
  created: number;
  ballId: string;
  status: number;
  bytes: number;
  head: string;
  headers: Record<string, string | null>;
  ranged: { status: number; contentRange: string | null; bytes: number };
}

/** Runs in the page: create a zipball with fetch, then download it whole and as a range. */
async function roundTrip(args: { gateway: string; key: string }): Promise<RoundTrip> {
  const res = await fetch(`${args.gateway}/v2/zipball`, {
    method: "POST",
    headers: { authorization: `Bearer ${args.key}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "from the browser", objects: [{ folder: "/docs" }] }),
  });
  const body = (await res.json()) as { data: { ball_id: string; urls: { url: string } } };
  const returned = new URL(body.data.urls.url);
  const url = args.gateway + returned.pathname + returned.search;
  const dl = await fetch(url);
  const bytes = new Uint8Array(await dl.arrayBuffer());
  const headers: Record<string, string | null> = {};
  for (const name of ["content-disposition", "content-length", "etag", "x-request-id", "content-type"]) headers[name] = dl.headers.get(name);
  const part = await fetch(url, { headers: { range: "bytes=0-99" } });
  const partBytes = (await part.arrayBuffer()).byteLength;
  return {
    created: res.status,
    ballId: body.data.ball_id,
    status: dl.status,
    bytes: bytes.length,
    head: String.fromCharCode(bytes[0] as number, bytes[1] as number),
    headers,
    ranged: { status: part.status, contentRange: part.headers.get("content-range"), bytes: partBytes },
  };
}

/** Runs in the page: what a fetch to a gateway that does not allow this origin gives. */
async function refused(args: { gateway: string; key: string }): Promise<string> {
  try {
    const res = await fetch(`${args.gateway}/v2/zipball`, {
      method: "POST",
      headers: { authorization: `Bearer ${args.key}`, "content-type": "application/json" },
      body: JSON.stringify({ objects: [{ folder: "/docs" }] }),
    });
    return `answered ${res.status}`;
  } catch (err) {
    return `refused: ${(err as Error).message}`;
  }
}

describe("CORS: a web app on another origin, in Chromium", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let page: Server;
  let origin: string;
  let chromium: RunningChromium;
  let open: RunningGateway;
  let closed: RunningGateway;
  let elsewhere: RunningGateway;

  beforeAll(async () => {
    dir = await tempDir();
    const root = join(dir.path, "store");
    await writeTree(root, { "docs/a.txt": "alpha\n", "docs/b.txt": "beta\n" });
    // The app's own origin: another port is another origin.
    page = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end("<!doctype html><title>app</title><p>an app on its own origin</p>");
    });
    await new Promise<void>((resolve) => page.listen(0, "127.0.0.1", resolve));
    origin = `http://127.0.0.1:${(page.address() as AddressInfo).port}`;
    open = await startGateway({ root, env: { ZIPGATE_CORS_ORIGINS: origin } });
    closed = await startGateway({ root });
    elsewhere = await startGateway({ root, env: { ZIPGATE_CORS_ORIGINS: "https://app.example.com" } });
    chromium = await launchChromium();
  });
  afterAll(async () => {
    await chromium?.close();
    await Promise.all([open?.close(), closed?.close(), elsewhere?.close()]);
    await new Promise((r) => page.close(r));
    await dir.cleanup();
  });

  it("creates a zipball with fetch and downloads it, reading the exposed headers", async () => {
    const tab = await chromium.context.newPage();
    try {
      await tab.goto(`${origin}/`);
      const result = await tab.evaluate(roundTrip, { gateway: open.url, key: open.key });
      if (process.env.ZIPGATE_DUMP_DIR)
        await writeFile(join(process.env.ZIPGATE_DUMP_DIR, "cors.json"), `${JSON.stringify({ page: origin, gateway: open.url, ...result }, null, 2)}\n`);
      expect(result).toMatchObject({ created: 201, status: 200, head: "PK" });
      expect(result.headers["content-disposition"]).toContain('filename="from the browser.zip"');
      expect(Number(result.headers["content-length"])).toBe(result.bytes);
      expect(result.headers.etag).toMatch(/^"/);
      expect(result.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
      expect(result.ranged).toEqual({ status: 206, contentRange: `bytes 0-99/${result.bytes}`, bytes: 100 });
      // The download line and the request lines were written as for any client.
      expect(open.logs.join("")).toContain('"outcome":"complete"');
    } finally {
      await tab.close();
    }
  });

  it("is refused by a gateway without ZIPGATE_CORS_ORIGINS, or one that allows other origins", async () => {
    const tab = await chromium.context.newPage();
    try {
      await tab.goto(`${origin}/`);
      expect(await tab.evaluate(refused, { gateway: closed.url, key: closed.key })).toMatch(/^refused: Failed to fetch/);
      expect(await tab.evaluate(refused, { gateway: elsewhere.url, key: elsewhere.key })).toMatch(/^refused: Failed to fetch/);
    } finally {
      await tab.close();
    }
    // Nothing was created on either.
    expect(closed.logs.join("")).not.toContain('"method":"POST"');
    expect(elsewhere.logs.join("")).not.toContain('"method":"POST"');
  });

  it("answers the preflight for the allowed origin only, and varies cached downloads by Origin", async () => {
    const preflight = (gw: RunningGateway, from: string) =>
      fetch(`${gw.url}/v2/zipball`, {
        method: "OPTIONS",
        headers: { origin: from, "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type" },
      });
    const ok = await preflight(open, origin);
    expect(ok.status).toBe(204);
    expect(ok.headers.get("access-control-allow-origin")).toBe(origin);
    expect(ok.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("authorization");
    expect(ok.headers.get("access-control-allow-methods")).toContain("POST");
    expect((await preflight(open, "https://evil.example")).headers.get("access-control-allow-origin")).toBeNull();
    expect((await preflight(closed, origin)).status).toBe(404);

    const res = await open.post("/v2/zipball", { objects: [{ folder: "/docs" }] });
    const { data } = (await res.json()) as { data: { urls: { url: string } } };
    const u = new URL(data.urls.url);
    const dl = await fetch(open.url + u.pathname + u.search, { headers: { origin } });
    await dl.arrayBuffer();
    expect(dl.headers.get("access-control-allow-origin")).toBe(origin);
    expect(dl.headers.get("access-control-expose-headers")).toContain("Content-Disposition");
    expect(dl.headers.get("vary")).toContain("Origin");
  });
});
