import { randomBytes } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { DeleteObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFsStorage } from "../../src/storage/fs.js";
import { tempDir, writeTree } from "../helpers/archive.js";
import { local, type RunningGateway, startGateway, TEST_KEY } from "../helpers/gateway.js";
import { adminClient, freshPrefix, putObjects, s3Env, s3Server, s3Storage } from "../helpers/s3.js";
import { type ExpectedEntry, sha256, verifyWithUnzippers } from "../helpers/unzippers.js";

interface Created {
  download_url: string;
  status_url: string;
  expires_at: string;
  name_conflicts: Array<Array<{ id: string; type: string; original_name: string; download_name: string }>>;
}

interface Store {
  name: string;
  setup(files: Record<string, string | Buffer>): Promise<void>;
  remove(key: string): Promise<void>;
  /** A gateway on this store; a second call gives a second process on the same store. */
  gateway(env?: Record<string, string>): Promise<RunningGateway>;
  teardown(): Promise<void>;
}

function folderStore(): Store {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let root = "";
  return {
    name: "folder store",
    async setup(files) {
      dir = await tempDir();
      root = join(dir.path, "store");
      await writeTree(root, files);
    },
    remove: (key) => rm(join(root, key)),
    gateway: async (env) => startGateway({ storage: await createFsStorage({ root }), env }),
    teardown: () => dir.cleanup(),
  };
}

function s3Store(): Store {
  const prefix = freshPrefix("box");
  const client = adminClient();
  return {
    name: "S3 store (Swift)",
    setup: (files) => putObjects(client, prefix, files),
    async remove(key) {
      await client.send(new DeleteObjectCommand({ Bucket: s3Server().bucket, Key: prefix + key }));
    },
    gateway: async (env) => startGateway({ storage: s3Storage(prefix), env: { ...s3Env(prefix), ...env } }),
    teardown: async () => client.destroy(),
  };
}

const FILES: Record<string, string | Buffer> = {
  "finance/january.xlsx": "january numbers",
  "finance/february.xlsx": "february numbers",
  "reports/2024/q1.pdf": "q1",
  "reports/2024/q2.pdf": "q2",
  "reports/summary.txt": "summary",
  "a/report.pdf": "report from a",
  "b/report.pdf": "report from b",
  "b/Report.PDF": "report from b, shouting",
  "big/blob-1.bin": randomBytes(3 * 1024 * 1024),
  "big/blob-2.bin": randomBytes(3 * 1024 * 1024),
  "big/blob-3.bin": randomBytes(3 * 1024 * 1024),
  "gone/only.txt": "about to be deleted",
  "keep/stays.txt": "stays",
};

async function boxError(res: Response, status: number, code: string): Promise<void> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  const body = JSON.parse(text) as Record<string, unknown>;
  expect(body).toMatchObject({ type: "error", status, code });
  expect(typeof body.message).toBe("string");
  expect(body.request_id).toBe(res.headers.get("x-request-id"));
}

async function waitForState(url: string, state: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 200; i++) {
    const res = await fetch(url, { headers: { authorization: `Bearer ${TEST_KEY}` } });
    if (res.status === 200) {
      const body = (await res.json()) as Record<string, unknown>;
      if (body.state === state) return body;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`status never became ${state}`);
}

for (const makeStore of [folderStore, s3Store]) {
  const store = makeStore();
  describe(`Box zip downloads API on the ${store.name}`, () => {
    let gw: RunningGateway;
    let dir: Awaited<ReturnType<typeof tempDir>>;
    const create = async (body: unknown, on = gw): Promise<Created> => {
      const res = await on.post("/2.0/zip_downloads", body);
      const text = await res.text();
      expect(res.status, text).toBe(202);
      return JSON.parse(text) as Created;
    };
    const status = (created: Created, on = gw) => fetch(local(on, created.status_url), { headers: { authorization: `Bearer ${TEST_KEY}` } });

    beforeAll(async () => {
      dir = await tempDir();
      await store.setup(FILES);
      gw = await store.gateway({ ZIPGATE_MAX_FILES: "20", ZIPGATE_MAX_BYTES: "9 MiB" });
    });
    afterAll(async () => {
      await gw?.close();
      await store.teardown();
      await dir.cleanup();
    });

    it("creates a zip download of two files and a folder, streams it, and reports success", async () => {
      const created = await create({
        download_file_name: "January Financials",
        items: [
          { type: "file", id: "/finance/january.xlsx" },
          { type: "file", id: "finance/february.xlsx" },
          { type: "folder", id: "/reports" },
        ],
      });
      expect(created.name_conflicts).toEqual([]);
      expect(Date.parse(created.expires_at)).toBeGreaterThan(Date.now());
      expect(created.expires_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      await boxError(await status(created), 404, "not_found");

      const res = await fetch(local(gw, created.download_url));
      expect(res.status).toBe(200);
      expect(res.headers.get("content-disposition")).toBe(`attachment; filename="January Financials.zip"; filename*=UTF-8''January%20Financials.zip`);
      const body = Buffer.from(await res.arrayBuffer());
      expect(body.length).toBe(Number(res.headers.get("content-length")));
      const zip = join(dir.path, `${store.name}-seed.zip`);
      await writeFile(zip, body);
      await verifyWithUnzippers(zip, [
        { name: "january.xlsx", sha256: sha256("january numbers") },
        { name: "february.xlsx", sha256: sha256("february numbers") },
        { name: "reports/", dir: true },
        ...(store.name.startsWith("folder") ? [{ name: "reports/2024/", dir: true }] : []),
        { name: "reports/2024/q1.pdf", sha256: sha256("q1") },
        { name: "reports/2024/q2.pdf", sha256: sha256("q2") },
        { name: "reports/summary.txt", sha256: sha256("summary") },
      ] as ExpectedEntry[]);
      const done = await waitForState(local(gw, created.status_url), "succeeded");
      expect(done).toEqual({ total_file_count: 5, downloaded_file_count: 5, skipped_file_count: 0, skipped_folder_count: 0, state: "succeeded" });
    });

    it("reports renaming groups for same-name files and case-only differences, agreeing with the archive", async () => {
      const created = await create({
        items: [
          { type: "file", id: "/a/report.pdf" },
          { type: "file", id: "/b/report.pdf" },
          { type: "file", id: "/b/Report.PDF" },
          { type: "file", id: "/keep/stays.txt" },
        ],
      });
      expect(created.name_conflicts).toEqual([
        [
          { id: "/a/report.pdf", type: "file", original_name: "report.pdf", download_name: "report.pdf" },
          { id: "/b/report.pdf", type: "file", original_name: "report.pdf", download_name: "report (1).pdf" },
          { id: "/b/Report.PDF", type: "file", original_name: "Report.PDF", download_name: "Report (2).PDF" },
        ],
      ]);
      const zip = join(dir.path, `${store.name}-conflicts.zip`);
      await writeFile(zip, Buffer.from(await (await fetch(local(gw, created.download_url))).arrayBuffer()));
      await verifyWithUnzippers(zip, [
        { name: "report.pdf", sha256: sha256("report from a") },
        { name: "report (1).pdf", sha256: sha256("report from b") },
        { name: "Report (2).PDF", sha256: sha256("report from b, shouting") },
        { name: "stays.txt", sha256: sha256("stays") },
      ]);
    });

    it("answers every error in Box's shape with a request id", async () => {
      const item = [{ type: "file", id: "/keep/stays.txt" }];
      await boxError(await gw.post("/2.0/zip_downloads", { items: item }, null), 401, "unauthorized");
      await boxError(await gw.post("/2.0/zip_downloads", { items: item }, "not-the-right-key-at-all"), 401, "unauthorized");
      await boxError(await gw.post("/2.0/zip_downloads", "{oops"), 400, "bad_request");
      await boxError(await gw.post("/2.0/zip_downloads", { items: [] }), 400, "bad_request");
      await boxError(await gw.post("/2.0/zip_downloads", { items: [{ type: "web_link", id: "1" }] }), 400, "bad_request");
      await boxError(await gw.post("/2.0/zip_downloads", { items: [{ type: "folder", id: "0" }] }), 400, "bad_request");
      await boxError(await gw.post("/2.0/zip_downloads", { items: [{ type: "folder", id: "/" }] }), 400, "bad_request");
      await boxError(await gw.post("/2.0/zip_downloads", { items: [{ type: "file", id: "/.zipgate/secrets.json" }] }), 400, "bad_request");
      await boxError(await gw.post("/2.0/zip_downloads", { items: [{ type: "file", id: "/nope.txt" }] }), 404, "not_found");
      await boxError(
        await gw.post("/2.0/zip_downloads", {
          items: [
            { type: "folder", id: "/reports" },
            { type: "folder", id: "/big" },
            { type: "folder", id: "/finance" },
          ],
        }),
        400,
        "zip_download_pre_compressed_bytes_exceeded_limit",
      );
      const many = Array.from({ length: 21 }, () => ({ type: "file", id: "/keep/stays.txt" }));
      await boxError(await gw.post("/2.0/zip_downloads", { items: many }), 400, "zip_download_file_count_exceeded_limit");
      await boxError(await fetch(`${gw.url}/2.0/zip_downloads/6f1c2f8e-3b7a-4c1d-9e2f-0a1b2c3d4e5f/content`), 404, "not_found");

      const scoped = await store.gateway({ ZIPGATE_API_KEYS: `${TEST_KEY}=/finance/` });
      try {
        await boxError(
          await scoped.post("/2.0/zip_downloads", { items: [{ type: "file", id: "/keep/stays.txt" }] }),
          403,
          "access_denied_insufficient_permissions",
        );
        expect((await scoped.post("/2.0/zip_downloads", { items: [{ type: "file", id: "/finance/january.xlsx" }] })).status).toBe(202);
      } finally {
        await scoped.close();
      }
      const failed = await gw.post("/2.0/zip_downloads", { items: [{ type: "file", id: "/nope.txt" }] });
      const requestId = failed.headers.get("x-request-id") as string;
      expect(gw.logs.some((l) => l.includes(requestId))).toBe(true);
    });

    it("refuses a download URL that expired before its download started", async () => {
      const short = await store.gateway({ ZIPGATE_BOX_TTL: "1" });
      try {
        const created = await create({ items: [{ type: "file", id: "/keep/stays.txt" }] }, short);
        await new Promise((r) => setTimeout(r, 2100));
        await boxError(await fetch(local(short, created.download_url)), 404, "not_found");
      } finally {
        await short.close();
      }
    });

    it("serves a download URL once by default, and resumes with Range when configured", async () => {
      const created = await create({ items: [{ type: "folder", id: "/finance" }] });
      const first = await fetch(local(gw, created.download_url));
      const whole = Buffer.from(await first.arrayBuffer());
      await boxError(await fetch(local(gw, created.download_url)), 404, "not_found");

      const resumable = await store.gateway({ ZIPGATE_BOX_ALLOW_RESUME: "true" });
      try {
        const again = await create({ items: [{ type: "folder", id: "/finance" }] }, resumable);
        const full = Buffer.from(await (await fetch(local(resumable, again.download_url))).arrayBuffer());
        expect(full.length).toBe(whole.length);
        const tail = await fetch(local(resumable, again.download_url), { headers: { range: "bytes=100-" } });
        expect(tail.status).toBe(206);
        expect(Buffer.from(await tail.arrayBuffer()).equals(full.subarray(100))).toBe(true);
      } finally {
        await resumable.close();
      }
    });

    it("skips files deleted between creation and download, with an exact length, and counts them", async () => {
      const created = await create({
        items: [
          { type: "folder", id: "/gone" },
          { type: "file", id: "/keep/stays.txt" },
        ],
      });
      await store.remove("gone/only.txt");
      const res = await fetch(local(gw, created.download_url));
      expect(res.status).toBe(200);
      const body = Buffer.from(await res.arrayBuffer());
      expect(body.length).toBe(Number(res.headers.get("content-length")));
      const zip = join(dir.path, `${store.name}-skipped.zip`);
      await writeFile(zip, body);
      await verifyWithUnzippers(zip, [
        { name: "gone/", dir: true },
        { name: "stays.txt", sha256: sha256("stays") },
      ]);
      const done = await waitForState(local(gw, created.status_url), "succeeded");
      expect(done).toMatchObject({ total_file_count: 2, downloaded_file_count: 1, skipped_file_count: 1, skipped_folder_count: 1 });
    });

    it("moves status from in_progress to succeeded, visible from another gateway process on the same store", async () => {
      const other = await store.gateway();
      try {
        const created = await create({ items: [{ type: "folder", id: "/big" }] });
        const res = await fetch(local(gw, created.download_url));
        const reader = (res.body as ReadableStream<Uint8Array>).getReader();
        await reader.read();
        const running = (await (await status(created, other)).json()) as Record<string, unknown>;
        expect(running.state).toBe("in_progress");
        expect(running.total_file_count).toBe(3);
        expect(running.downloaded_file_count as number).toBeLessThan(3);
        while (!(await reader.read()).done) {}
        const done = await waitForState(local(other, created.status_url), "succeeded");
        expect(done.downloaded_file_count).toBe(3);
      } finally {
        await other.close();
      }
    });

    it("marks a download failed when the connection is cut, and limits concurrent downloads per key", async () => {
      const limited = await store.gateway({ ZIPGATE_BOX_MAX_DOWNLOADS: "1" });
      try {
        const first = await create({ items: [{ type: "folder", id: "/big" }] }, limited);
        const second = await create({ items: [{ type: "folder", id: "/big" }] }, limited);
        const controller = new AbortController();
        const res = await fetch(local(limited, first.download_url), { signal: controller.signal });
        await (res.body as ReadableStream<Uint8Array>).getReader().read();
        await boxError(await fetch(local(limited, second.download_url)), 429, "user_too_many_concurrent_downloads");
        controller.abort();
        const failed = await waitForState(local(limited, first.status_url), "failed");
        expect(failed.downloaded_file_count as number).toBeLessThan(3);
        // The slot is free again.
        const third = await create({ items: [{ type: "file", id: "/keep/stays.txt" }] }, limited);
        expect((await fetch(local(limited, third.download_url))).status).toBe(200);
      } finally {
        await limited.close();
      }
    });
  });
}
