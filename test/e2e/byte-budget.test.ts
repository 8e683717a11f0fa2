import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir, writeTree } from "../helpers/archive.js";
import { local, type RunningGateway, startGateway } from "../helpers/gateway.js";
import { type Origin, startOrigin } from "../helpers/origin.js";

/** The whole body, or `undefined` when the transfer was cut. */
async function body(res: Response): Promise<Buffer | undefined> {
  return res.arrayBuffer().then(
    (b) => Buffer.from(b),
    () => undefined,
  );
}

describe("the byte limit holds for URLs without a length and in deflate mode", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  let gw: RunningGateway;

  beforeAll(async () => {
    dir = await tempDir();
    const root = join(dir.path, "store");
    await writeTree(root, { "a.txt": "alpha" });
    origin = await startOrigin();
    gw = await startGateway({ root, env: { ZIPGATE_URL_ALLOW: "127.0.0.1", ZIPGATE_MAX_BYTES: "1 MiB" } });
  });
  afterAll(async () => {
    await gw.close();
    await origin.close();
    await dir.cleanup();
  });

  async function download(objects: unknown[], compression?: string): Promise<Response> {
    const res = await gw.post("/v2/zipball", { objects, ...(compression ? { compression } : {}) });
    const text = await res.text();
    expect(res.status, text).toBe(201);
    return fetch(local(gw, (JSON.parse(text) as { data: { urls: { url: string } } }).data.urls.url));
  }

  it("cuts an archive whose URL without a length delivers more than ZIPGATE_MAX_BYTES", async () => {
    const res = await download([{ url: `${origin.url}/no-length-big` }]);
    expect(res.status).toBe(200);
    expect(await body(res)).toBeUndefined();
  });

  it("cuts a deflate archive whose URL delivers more than it declared at creation", async () => {
    const res = await download([{ path: "/a.txt" }, { url: `${origin.url}/grows` }], "deflate");
    expect(res.status).toBe(200);
    expect(await body(res)).toBeUndefined();
  });

  it("still serves what stays within the limit, in both modes", async () => {
    for (const compression of ["store", "deflate"]) {
      const res = await download([{ path: "/a.txt" }, { url: `${origin.url}/no-length` }], compression);
      const got = await body(res);
      expect(got, compression).toBeDefined();
      expect((got as Buffer).includes(Buffer.from("alpha")) || compression === "deflate").toBe(true);
    }
  });
});
