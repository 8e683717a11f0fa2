import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../helpers/archive.js";
import { freePort } from "../helpers/clients.js";
import { pausedGet } from "../helpers/paused.js";
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

  it("answers a wrong caller crc32 found before the first byte with its status, and logs that status", async () => {
    await writeFile(join(dir.path, "data", "d", "small.txt"), "hello world\n");
    const res = await fetch(`${gw.url}/v2/zipball`, {
      method: "POST",
      headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" },
      body: JSON.stringify({ objects: [{ path: "/d/small.txt", crc32: "00000000" }] }),
    });
    expect(res.status).toBe(201);
    const url = new URL((JSON.parse(await res.text()) as { data: { urls: { url: string } } }).data.urls.url);
    const got = await fetch(`${gw.url}${url.pathname}${url.search}`);
    expect(got.status).toBe(409);
    expect(((await got.json()) as { error: { code: string } }).error.code).toBe("object_changed");
    await new Promise((r) => setTimeout(r, 100));
    const line = gw
      .stdout()
      .split("\n")
      .find((l) => l.includes(url.pathname.slice(1, 9)) && l.includes('"outcome":"failed"'));
    expect(line).toMatch(/"status":409/);
  });

  it("reads an object named by 100 entries once at creation (prepare: true), and makes them all classic", async () => {
    await writeFile(join(dir.path, "data", "d", "shared.bin"), randomBytes(16 * 1024 * 1024));
    const rchar = async (): Promise<number> => Number(/rchar: (\d+)/.exec(await readFile(`/proc/${gw.child.pid}/io`, "utf8"))?.[1]);
    const before = await rchar();
    const res = await fetch(`${gw.url}/v2/zipball`, {
      method: "POST",
      headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" },
      body: JSON.stringify({ prepare: true, objects: Array.from({ length: 100 }, (_, i) => ({ path: "/d/shared.bin", name: `copy-${i}.bin` })) }),
    });
    const body = (await res.json()) as { data: { entry_forms: { classic: number; descriptor: number } } };
    expect(res.status).toBe(201);
    expect(body.data.entry_forms).toMatchObject({ classic: 100, descriptor: 0 });
    // Once, not 100 times (1.6 GiB): at most twice the object, for whatever else was read.
    expect((await rchar()) - before).toBeLessThan(32 * 1024 * 1024);
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

describe("what a Box reply promises", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let gw: GatewayProcess;
  const BIG = 48 * 1024 * 1024;

  beforeAll(async () => {
    dir = await tempDir();
    await mkdir(join(dir.path, "data", "box"), { recursive: true });
    await writeFile(join(dir.path, "data", "box", "big.bin"), randomBytes(BIG));
    gw = await startGatewayProcess({ ZIPGATE_STORAGE: join(dir.path, "data"), ZIPGATE_BOX_MAX_DOWNLOADS: "1" });
  });
  afterAll(async () => {
    await gw?.stop();
    await dir?.cleanup();
  });

  const create = async (): Promise<{ id: string; download_url: string; status_url: string }> => {
    const res = await fetch(`${gw.url}/2.0/zip_downloads`, {
      method: "POST",
      headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" },
      body: JSON.stringify({ items: [{ type: "file", id: "/box/big.bin" }] }),
    });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { download_url: string; status_url: string };
    const id = /zip_downloads\/([^/]+)\/content/.exec(body.download_url)?.[1] as string;
    return { id, ...body };
  };
  const local = (u: string): string => {
    const url = new URL(u);
    return `${gw.url}${url.pathname}${url.search}`;
  };
  const state = async (statusUrl: string): Promise<string> =>
    ((await (await fetch(local(statusUrl), { headers: { authorization: `Bearer ${gw.key}` } })).json()) as { state: string }).state;
  const stored = async (id: string): Promise<{ updated_at: string; state: string }> =>
    JSON.parse(await readFile(join(dir.path, "data", ".zipgate", "zipballs", id, "progress"), "utf8"));

  it("invites no Range on a used-up URL, answers a busy key with Retry-After, writes progress every second, and succeeds only once the body is taken", async () => {
    const first = await create();
    const get = await pausedGet(local(first.download_url));
    expect(get.status).toBe(200);
    expect(get.head).toMatch(/\r\naccept-ranges: none\r\n/i);
    expect(get.head).not.toMatch(/accept-ranges: bytes/i);

    // The key's one download slot is taken: 429 with a Retry-After.
    const second = await create();
    const busy = await fetch(local(second.download_url));
    expect(busy.status).toBe(429);
    expect(busy.headers.get("retry-after")).toMatch(/^\d+$/);
    expect((await busy.json()) as { code: string }).toMatchObject({ code: "user_too_many_concurrent_downloads" });

    // One file, a client taking nothing: the stored progress still moves every second.
    const before = await stored(first.id);
    await new Promise((r) => setTimeout(r, 2500));
    const after = await stored(first.id);
    expect(after.state).toBe("in_progress");
    expect(Date.parse(after.updated_at)).toBeGreaterThan(Date.parse(before.updated_at));
    expect(await state(first.status_url)).toBe("in_progress");

    const received = await get.resume();
    expect(received).toBeGreaterThan(BIG);
    for (let i = 0; i < 100 && (await state(first.status_url)) !== "succeeded"; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await state(first.status_url)).toBe("succeeded");
  });
});

describe("connections", () => {
  it("closes idle keep-alive connections first when the cap is near, so a new client gets in", async () => {
    const dir = await tempDir();
    const gw = await startGatewayProcess({ ZIPGATE_STORAGE: join(dir.path, "data"), ZIPGATE_MAX_CONNECTIONS: "32" });
    const u = new URL(gw.url);
    const sockets: Socket[] = [];
    try {
      // 32 clients, each served once and then idle on its keep-alive connection.
      const closedCount = { n: 0 };
      await Promise.all(
        Array.from(
          { length: 32 },
          () =>
            new Promise<void>((resolve, reject) => {
              const socket = connect(Number(u.port), u.hostname);
              sockets.push(socket);
              socket.on("error", () => {});
              socket.once("close", () => {
                closedCount.n += 1;
              });
              let text = "";
              socket.on("data", (d: Buffer) => {
                text += d.toString("latin1");
                if (/\r\n\r\nok|\r\n\r\n.+/s.test(text)) resolve();
              });
              socket.once("connect", () => socket.write(`GET /livez HTTP/1.1\r\nhost: ${u.host}\r\n\r\n`));
              setTimeout(() => reject(new Error("no answer")), 10_000);
            }),
        ),
      );
      // The cap is full (of idle connections, some already closed to keep room): a new client gets its answer.
      const res = await fetch(`${gw.url}/livez`, { headers: { connection: "close" } });
      expect(res.status).toBe(200);
      await res.text();
      await new Promise((r) => setTimeout(r, 100));
      // The room was made from idle keep-alive connections (1/16 of the cap, at least one).
      expect(closedCount.n).toBeGreaterThanOrEqual(1);
      expect(closedCount.n).toBeLessThan(32);
    } finally {
      for (const s of sockets) s.destroy();
      await gw.stop();
      await dir.cleanup();
    }
  });
});

describe("slow readers", () => {
  it("cuts clients that read slower than the minimum rate within the window, caps downloads per address, and serves everyone else meanwhile", async () => {
    const dir = await tempDir();
    await mkdir(join(dir.path, "data", "s"), { recursive: true });
    await writeFile(join(dir.path, "data", "s", "big.bin"), randomBytes(32 * 1024 * 1024));
    await writeFile(join(dir.path, "data", "s", "small.txt"), "small");
    const other = "second-key-0123456789abcdef";
    const gw = await startGatewayProcess({
      ZIPGATE_STORAGE: join(dir.path, "data"),
      ZIPGATE_API_KEYS: `${"test-key-0123456789abcdef"},${other}`,
      ZIPGATE_TRUST_PROXY: "1",
      ZIPGATE_MAX_DOWNLOADS_PER_CLIENT: "8",
      ZIPGATE_MIN_RATE_WINDOW: "2s",
    });
    const zipball = async (key: string, path: string): Promise<string> => {
      const res = await fetch(`${gw.url}/v2/zipball`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ objects: [{ path }] }),
      });
      const url = new URL(((await res.json()) as { data: { urls: { url: string } } }).data.urls.url);
      return `${gw.url}${url.pathname}${url.search}`;
    };
    try {
      const big = await zipball(gw.key, "/s/big.bin");
      // 50 readers from one address that read nothing after the head.
      const slow = await Promise.all(Array.from({ length: 50 }, () => pausedGet(big, { "x-forwarded-for": "10.0.0.1" })));
      const admitted = slow.filter((s) => s.status === 200);
      expect(admitted).toHaveLength(8);
      expect(slow.filter((s) => s.status === 429)).toHaveLength(42);
      // Meanwhile another address gets whole downloads, of this key's zipball and another key's.
      for (const url of [big, await zipball(other, "/s/small.txt")]) {
        const res = await fetch(url, { headers: { "x-forwarded-for": "10.0.0.2" } });
        expect(res.status).toBe(200);
        expect((await res.arrayBuffer()).byteLength).toBe(Number(res.headers.get("content-length")));
      }
      // The slow ones are cut by the gateway within a window or two (2 s each), short of the archive.
      let metrics = "";
      for (let i = 0; i < 100 && !/outcome="too_slow"\} 8/.test(metrics); i++) {
        await new Promise((r) => setTimeout(r, 100));
        metrics = await (await fetch(`${gw.url}/metrics`)).text();
      }
      const received = await Promise.all(admitted.map((s) => s.resume()));
      for (const n of received) expect(n).toBeLessThan(32 * 1024 * 1024);
      expect(metrics).toMatch(/zipgate_downloads_total\{flavour="bitpaket",outcome="too_slow"\} 8/);
      expect(metrics).toMatch(/zipgate_admission_refusals_total\{reason="too_many_downloads_from_client"\} 42/);
      expect(gw.stdout()).toMatch(/"outcome":"too_slow"/);
      // Their slots are free again: the address is served.
      expect((await fetch(big, { headers: { "x-forwarded-for": "10.0.0.1" } })).status).toBe(200);
    } finally {
      await gw.stop();
      await dir.cleanup();
    }
  });
});

describe("who may read /metrics", () => {
  it("answers loopback clients only by default, a bearer token when one is set, and only its own listener when given one", async () => {
    const dir = await tempDir();
    const data = join(dir.path, "data");
    const TOKEN = "metrics-token-0123456789";
    const port = await freePort();
    const plain = await startGatewayProcess({ ZIPGATE_STORAGE: data, ZIPGATE_TRUST_PROXY: "1" });
    const withToken = await startGatewayProcess({ ZIPGATE_STORAGE: data, ZIPGATE_METRICS_TOKEN: TOKEN });
    const apart = await startGatewayProcess({ ZIPGATE_STORAGE: data, ZIPGATE_METRICS_LISTEN: `127.0.0.1:${port}` });
    try {
      expect((await fetch(`${plain.url}/metrics`)).status).toBe(200);
      // A client a trusted proxy names is not local.
      expect((await fetch(`${plain.url}/metrics`, { headers: { "x-forwarded-for": "203.0.113.9" } })).status).toBe(403);
      expect((await fetch(`${withToken.url}/metrics`)).status).toBe(401);
      expect((await fetch(`${withToken.url}/metrics`, { headers: { authorization: "Bearer wrong-token-0123456789" } })).status).toBe(401);
      const ok = await fetch(`${withToken.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toMatch(/zipgate_downloads_in_flight/);
      expect((await fetch(`${apart.url}/metrics`)).status).toBe(404);
      let own: Response | undefined;
      for (let i = 0; i < 50 && !own; i++)
        own = await fetch(`http://127.0.0.1:${port}/metrics`).catch(() => new Promise<undefined>((r) => setTimeout(() => r(undefined), 50)));
      expect(own?.status).toBe(200);
      expect(await own?.text()).toMatch(/zipgate_http_requests_total/);
      // The token never reaches the logs.
      expect(withToken.stdout() + withToken.stderr()).not.toContain(TOKEN);
    } finally {
      await Promise.all([plain.stop(), withToken.stop(), apart.stop()]);
      await dir.cleanup();
    }
  });
});
