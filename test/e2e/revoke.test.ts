import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir, writeTree } from "../helpers/archive.js";
import { local, type RunningGateway, startGateway, TEST_KEY } from "../helpers/gateway.js";

const OTHER_KEY = "other-key-0123456789abcdef";

describe("DELETE /v2/zipball/<id> revokes a zipball", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let root: string;
  let gw: RunningGateway;

  beforeAll(async () => {
    dir = await tempDir();
    root = join(dir.path, "store");
    await writeTree(root, { "a.txt": "alpha" });
    gw = await startGateway({ root, env: { ZIPGATE_API_KEYS: `${TEST_KEY},${OTHER_KEY}` } });
  });
  afterAll(async () => {
    await gw.close();
    await dir.cleanup();
  });

  const remove = (id: string, key: string | null) =>
    fetch(`${gw.url}/v2/zipball/${id}`, { method: "DELETE", headers: key ? { authorization: `Bearer ${key}` } : {} });

  it("for its owner only, at once on this replica and on a replica that reads the store", async () => {
    const res = await gw.post("/v2/zipball", { objects: [{ path: "/a.txt" }] });
    const { ball_id: id, urls } = ((await res.json()) as { data: { ball_id: string; urls: { url: string } } }).data;
    const url = local(gw, urls.url);
    expect((await fetch(url)).status).toBe(200);
    expect((await remove(id, null)).status).toBe(401);
    const foreign = await remove(id, OTHER_KEY);
    expect(foreign.status).toBe(404);
    expect((await fetch(url)).status).toBe(200);
    const revoked = await remove(id, TEST_KEY);
    expect(revoked.status).toBe(200);
    expect(await revoked.json()).toEqual({ success: true, data: { ball_id: id, revoked: true } });
    expect((await fetch(url)).status).toBe(404);
    const replica = await startGateway({ root });
    try {
      expect((await fetch(local(replica, urls.url))).status).toBe(404);
    } finally {
      await replica.close();
    }
    expect((await remove(id, TEST_KEY)).status).toBe(404);
  });
});
