import { Agent, createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createObjectGetter, etagConfirmed } from "../../src/storage/s3-get.js";

// Stubbed store: a real HTTP server answering every GET with 300 KiB and the ETag header the
// test chose (none, weak, the one asked for, another). Swift always answers with the ETag it
// enforced; a store or proxy that drops or weakens it is the fault stubbed here, and then the
// body must not count as proven (the archive hashes it as it is sent).
const BODY = Buffer.alloc(300 * 1024, 7);
let etag: string | undefined;
let server: Server;
let endpoint: string;
const agent = new Agent({ keepAlive: true });

beforeAll(async () => {
  server = createServer((_req, res) => {
    const headers: Record<string, string> = { "content-length": String(BODY.length) };
    if (etag !== undefined) headers.etag = etag;
    res.writeHead(200, headers);
    res.end(BODY);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  agent.destroy();
  await new Promise((resolve) => server.close(resolve));
});

const get = () =>
  createObjectGetter({
    endpoint,
    bucket: "b",
    region: "us-east-1",
    forcePathStyle: true,
    credentials: async () => ({ accessKeyId: "k", secretAccessKey: "s" }),
    agent,
    maxAttempts: 1,
    connectTimeoutMs: 5_000,
    bufferBelow: 64 * 1024,
  });

async function read(asked: string) {
  const body = await get()({ key: "o", etag: asked, signal: new AbortController().signal });
  const confirmed = etagConfirmed(body);
  if (!Buffer.isBuffer(body)) for await (const _ of body as Readable);
  return confirmed;
}

describe("the lean S3 GET's proof of version", () => {
  it("confirms a body only when its answer carries the strong ETag asked for in If-Match", async () => {
    etag = '"abc"';
    expect(await read('"abc"')).toBe(true);
    etag = undefined;
    expect(await read('"abc"')).toBe(false);
    etag = 'W/"abc"';
    expect(await read('"abc"')).toBe(false);
    etag = '"other"';
    await expect(read('"abc"')).rejects.toMatchObject({ name: "PreconditionFailed" });
  });
});
