import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import * as nodeSdk from "box-node-sdk";
import { BaseUrls as NodeBaseUrls, BoxRetryStrategy as NodeRetry, NetworkSession as NodeSession } from "box-node-sdk/networking";
import * as genSdk from "box-typescript-sdk-gen";
import { BaseUrls as GenBaseUrls } from "box-typescript-sdk-gen/networking/baseUrls.generated";
import { NetworkSession as GenSession } from "box-typescript-sdk-gen/networking/network.generated";
import { BoxRetryStrategy as GenRetry } from "box-typescript-sdk-gen/networking/retries.generated";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir, writeTree } from "../helpers/archive.js";
import { pausedGet } from "../helpers/paused.js";
import { type GatewayProcess, startGatewayProcess } from "../helpers/process.js";
import { type ExpectedEntry, sha256, verifyWithUnzippers } from "../helpers/unzippers.js";

/**
 * Box's own SDKs, unmodified, configured only as their documentation says: custom base URLs,
 * a developer token (a zipgate key), and a retry strategy of one attempt for the 429 case.
 */
const SDKS = [
  {
    name: "box-node-sdk 10.12.0",
    client: (url: string, token: string, attempts?: number) =>
      new nodeSdk.BoxClient({
        auth: new nodeSdk.BoxDeveloperTokenAuth({ token }),
        networkSession: new NodeSession({
          baseUrls: new NodeBaseUrls({ baseUrl: url, uploadUrl: url, oauth2Url: `${url}/oauth2` }),
          ...(attempts ? { retryStrategy: new NodeRetry({ maxAttempts: attempts }) } : {}),
        }),
      }),
  },
  {
    name: "box-typescript-sdk-gen 1.19.1",
    client: (url: string, token: string, attempts?: number) =>
      new genSdk.BoxClient({
        auth: new genSdk.BoxDeveloperTokenAuth({ token }),
        networkSession: new GenSession({
          baseUrls: new GenBaseUrls({ baseUrl: url, uploadUrl: url, oauth2Url: `${url}/oauth2` }),
          ...(attempts ? { retryStrategy: new GenRetry({ maxAttempts: attempts }) } : {}),
        }),
      }),
  },
] as const;

const FILES = {
  "docs/a.txt": "alpha in docs",
  "docs/Grüße.txt": "non-ASCII name",
  "pics/a.txt": "alpha in pics",
  "pics/deep/b.bin": Buffer.alloc(300_000, 7),
};

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

/** What an SDK error carries of the answer: node-sdk keeps responseInfo; the generated SDK 1.19.1 only its message. */
function answerOf(err: unknown): { status: number; code?: string; retryAfter?: string; message: string } {
  expect(err, "the call was expected to fail").toBeInstanceOf(Error);
  const e = err as { name?: string; message: string; responseInfo?: { statusCode: number; body?: { code?: string }; headers?: Record<string, string> } };
  expect(e.name).toBe("BoxApiError");
  if (e.responseInfo) {
    return { status: e.responseInfo.statusCode, code: e.responseInfo.body?.code, retryAfter: e.responseInfo.headers?.["retry-after"], message: e.message };
  }
  return { status: Number(/^(\d{3}) /.exec(e.message)?.[1]), message: e.message };
}

describe.each(SDKS)("$name against a real gateway process", (sdk) => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let gw: GatewayProcess;

  beforeAll(async () => {
    dir = await tempDir();
    await writeTree(join(dir.path, "data"), { ...FILES, "held/big.bin": Buffer.alloc(48 * 1024 * 1024, 1) });
    gw = await startGatewayProcess({ ZIPGATE_STORAGE: join(dir.path, "data"), ZIPGATE_BOX_MAX_DOWNLOADS: "1", ZIPGATE_MAX_FILES: "6" });
  });
  afterAll(async () => {
    await gw?.stop();
    await dir?.cleanup();
  });

  const items = [
    { type: "file" as const, id: "/docs/a.txt" },
    { type: "file" as const, id: "/docs/Grüße.txt" },
    { type: "file" as const, id: "/pics/a.txt" },
    { type: "folder" as const, id: "/pics" },
  ];
  const expected: ExpectedEntry[] = [
    { name: "a.txt", sha256: sha256(FILES["docs/a.txt"]) },
    { name: "Grüße.txt", sha256: sha256(FILES["docs/Grüße.txt"]) },
    { name: "a (1).txt", sha256: sha256(FILES["pics/a.txt"]) },
    { name: "pics/", dir: true },
    { name: "pics/deep/", dir: true },
    { name: "pics/a.txt", sha256: sha256(FILES["pics/a.txt"]) },
    { name: "pics/deep/b.bin", sha256: sha256(FILES["pics/deep/b.bin"]) },
  ];

  it("createZipDownload, getZipDownloadContent and getZipDownloadStatus: the zip lands, opens everywhere, and the status has Box's fields", async () => {
    const client = sdk.client(gw.url, gw.key);
    const created = await client.zipDownloads.createZipDownload({ items, downloadFileName: "Über SDK" });
    expect(created.downloadUrl).toMatch(new RegExp(`^${gw.url}/2\\.0/zip_downloads/[^/]+/content$`));
    expect(created.statusUrl).toMatch(/\/status$/);
    expect(created.expiresAt).toBeDefined();
    // The clash of the two a.txt, as Box reports it.
    expect(created.nameConflicts).toHaveLength(1);
    const clash = created.nameConflicts?.[0] ?? [];
    expect(clash.map((c) => [c.id, c.type, c.originalName, c.downloadName])).toEqual([
      ["/docs/a.txt", "file", "a.txt", "a.txt"],
      ["/pics/a.txt", "file", "a.txt", "a (1).txt"],
    ]);
    const zip = await collect((await client.zipDownloads.getZipDownloadContent(created.downloadUrl as string)) as unknown as Readable);
    const path = join(dir.path, `${sdk.name.split(" ")[0]}-content.zip`);
    await writeFile(path, zip);
    await verifyWithUnzippers(path, expected);
    // The state turns succeeded once the response has finished on the gateway's side.
    let status = await client.zipDownloads.getZipDownloadStatus(created.statusUrl as string);
    for (let i = 0; i < 50 && status.state !== "succeeded"; i++) {
      await new Promise((r) => setTimeout(r, 50));
      status = await client.zipDownloads.getZipDownloadStatus(created.statusUrl as string);
    }
    expect({
      totalFileCount: status.totalFileCount,
      downloadedFileCount: status.downloadedFileCount,
      skippedFileCount: status.skippedFileCount,
      skippedFolderCount: status.skippedFolderCount,
      state: status.state,
    }).toEqual({ totalFileCount: 5, downloadedFileCount: 5, skippedFileCount: 0, skippedFolderCount: 0, state: "succeeded" });
  });

  it("downloadZip does all three calls in one", async () => {
    const client = sdk.client(gw.url, gw.key);
    const zip = await collect((await client.zipDownloads.downloadZip({ items, downloadFileName: "all-in-one" })) as unknown as Readable);
    const path = join(dir.path, `${sdk.name.split(" ")[0]}-downloadzip.zip`);
    await writeFile(path, zip);
    await verifyWithUnzippers(path, expected);
  });

  it("carries Box-shaped errors in the SDK's error type: a missing id, a request over the file limit, 429 with Retry-After", async () => {
    const client = sdk.client(gw.url, gw.key, 1);
    const missing = answerOf(await client.zipDownloads.createZipDownload({ items: [{ type: "file", id: "/docs/none.txt" }] }).catch((e: unknown) => e));
    expect(missing.status).toBe(404);
    expect(missing.message).toMatch(/does not exist/);
    if (missing.code !== undefined) expect(missing.code).toBe("not_found");

    const tooMany = answerOf(
      await client.zipDownloads
        .createZipDownload({ items: Array.from({ length: 7 }, (_, i) => ({ type: "file" as const, id: i % 2 ? "/docs/a.txt" : "/pics/a.txt" })) })
        .catch((e: unknown) => e),
    );
    expect(tooMany.status).toBe(400);
    if (tooMany.code !== undefined) expect(tooMany.code).toBe("zip_download_file_count_exceeded_limit");

    // The key's one download slot held by a client that reads nothing.
    const held = await client.zipDownloads.createZipDownload({ items: [{ type: "file", id: "/held/big.bin" }] });
    const paused = await pausedGet(held.downloadUrl as string);
    expect(paused.status).toBe(200);
    try {
      const other = await client.zipDownloads.createZipDownload({ items: [{ type: "file", id: "/docs/a.txt" }] });
      const busy = answerOf(await client.zipDownloads.getZipDownloadContent(other.downloadUrl as string).catch((e: unknown) => e));
      expect(busy.status).toBe(429);
      if (busy.code !== undefined) expect(busy.code).toBe("user_too_many_concurrent_downloads");
      if (busy.code !== undefined) expect(busy.retryAfter).toMatch(/^\d+$/);
    } finally {
      await paused.resume();
    }
  });
});
