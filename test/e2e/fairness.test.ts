import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../helpers/archive.js";
import { type GatewayProcess, startGatewayProcess } from "../helpers/process.js";
import { pythonEntries } from "../helpers/unzippers.js";

/** One request must never stall everyone: each case against a real gateway process. */
describe("one request never stalls the others", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let gw: GatewayProcess;
  const long = `${"n".repeat(236)}.bin`;

  beforeAll(async () => {
    dir = await tempDir();
    await mkdir(join(dir.path, "data", "d"), { recursive: true });
    await writeFile(join(dir.path, "data", "d", long), "same bytes");
    gw = await startGatewayProcess({ ZIPGATE_STORAGE: join(dir.path, "data") });
  });
  afterAll(async () => {
    await gw?.stop();
    await dir?.cleanup();
  });

  /** Sends `create`, then asks /livez once it is under way: which answered first. */
  async function livezDuring(create: () => Promise<Response>): Promise<{ order: string[]; status: number; body: string }> {
    const order: string[] = [];
    const created = create().then(async (r) => {
      const body = await r.text();
      order.push("create");
      return { status: r.status, body };
    });
    // The body is on its way; this health check queues behind whatever the create holds.
    await new Promise((r) => setTimeout(r, 100));
    const live = fetch(`${gw.url}/livez`).then(async (r) => {
      await r.text();
      order.push(`livez ${r.status}`);
    });
    const [{ status, body }] = await Promise.all([created, live]);
    return { order, status, body };
  }

  it("names 10,000 objects of one 240-byte name linearly, and /livez answers while they are named", async () => {
    const objects = Array.from({ length: 10_000 }, () => ({ path: `/d/${long}` }));
    const { order, status, body } = await livezDuring(() =>
      fetch(`${gw.url}/v2/zipball`, {
        method: "POST",
        headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" },
        body: JSON.stringify({ objects }),
      }),
    );
    expect(status, body).toBe(201);
    expect(order).toEqual(["livez 200", "create"]);
    const url = new URL((JSON.parse(body) as { data: { urls: { url: string } } }).data.urls.url);
    const zip = Buffer.from(await (await fetch(`${gw.url}${url.pathname}${url.search}`)).arrayBuffer());
    const zipPath = join(dir.path, "dups.zip");
    await writeFile(zipPath, zip);
    const names = (await pythonEntries(zipPath)).map((e) => e.name);
    expect(names).toHaveLength(10_000);
    expect(new Set(names.map((n) => n.toLowerCase())).size).toBe(10_000);
    expect(names).toContain(`${"n".repeat(236)} (9999).bin`);
  });

  it("refuses a body nested 100,000 levels deep with 400 before parsing it", async () => {
    const res = await fetch(`${gw.url}/v2/zipball`, {
      method: "POST",
      headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" },
      body: `{"objects":${"[".repeat(100_000)}${"]".repeat(100_000)}}`,
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: "invalid_json",
      message: expect.stringContaining("deeper than 32"),
    });
    expect((await fetch(`${gw.url}/livez`)).status).toBe(200);
  });
});
