import { createHash, createHmac } from "node:crypto";
import { Agent, createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { SignatureV4 } from "@smithy/signature-v4";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createObjectGetter } from "../../src/storage/s3-get.js";

/** node:crypto as the hash SignatureV4 wants (a plain hash, or an HMAC with a secret). */
class NodeSha256 {
  readonly #hash: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;
  constructor(secret?: unknown) {
    this.#hash = secret === undefined ? createHash("sha256") : createHmac("sha256", secret as string | Uint8Array);
  }
  update(data: unknown): void {
    this.#hash.update(data as string | Uint8Array);
  }
  async digest(): Promise<Uint8Array> {
    return this.#hash.digest();
  }
}

/**
 * The lean GET path's signatures, checked against the reference signer (the SDK's own
 * `@smithy/signature-v4`) on requests captured by a local server: hostile keys, ranges,
 * If-Match, a session token, path-style and virtual-hosted addressing. Swift checks the
 * path-style signatures for real in the contract suite; this covers what Swift cannot.
 */
describe("SigV4 signatures of the lean S3 GET", () => {
  let server: ReturnType<typeof createServer>;
  let endpoint: string;
  const seen: Array<{ method: string; path: string; headers: IncomingHttpHeaders }> = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers });
      res.writeHead(206, { "content-length": "12" }).end("ok-ok-ok-ok!");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
  });

  const credentials = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", sessionToken: "token/with+chars=" };

  for (const forcePathStyle of [true, false]) {
    for (const key of ["plain.txt", "dir/with space & plus+.bin", "ünï/日本語/%41~!'()*.md", "a//b/./c"]) {
      it(`${forcePathStyle ? "path-style" : "virtual-hosted"}: ${JSON.stringify(key)}`, async () => {
        const get = createObjectGetter({
          endpoint,
          bucket: "my-bucket",
          region: "eu-west-3",
          forcePathStyle,
          credentials: async () => credentials,
          agent: new Agent({ keepAlive: false }),
          maxAttempts: 1,
          connectTimeoutMs: 5000,
          bufferBelow: 1024,
        });
        seen.length = 0;
        const body = await get({ key, range: { start: 5, end: 17 }, etag: '"abc123"', signal: new AbortController().signal });
        expect(Buffer.isBuffer(body) ? body.toString() : "").toBe("ok-ok-ok-ok!");
        const req = seen[0];
        if (!req) throw new Error("no request seen");
        const headers = req.headers as Record<string, string>;
        expect(headers.range).toBe("bytes=5-16");
        expect(headers["if-match"]).toBe('"abc123"');
        expect(headers["x-amz-security-token"]).toBe(credentials.sessionToken);
        const host = forcePathStyle ? new URL(endpoint).host : `my-bucket.${new URL(endpoint).host}`;
        expect(headers.host).toBe(host);
        // The reference signer, given the same request and time, must sign it identically.
        const signer = new SignatureV4({ service: "s3", region: "eu-west-3", credentials, sha256: NodeSha256, uriEscapePath: false, applyChecksum: false });
        const amzDate = headers["x-amz-date"] as string;
        const when = new Date(
          `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
        );
        const signed = await signer.sign(
          {
            method: "GET",
            protocol: "http:",
            hostname: host.split(":")[0] as string,
            port: Number(new URL(endpoint).port),
            path: req.path,
            query: {},
            headers: {
              host,
              range: headers.range as string,
              "if-match": headers["if-match"] as string,
              "x-amz-content-sha256": headers["x-amz-content-sha256"] as string,
            },
          },
          { signingDate: when },
        );
        expect(headers.authorization).toBe(signed.headers.authorization);
        // The path carries the key exactly: decoded, it is the bucket (path-style) and the key.
        expect(decodeURIComponent(req.path)).toBe(forcePathStyle ? `/my-bucket/${key}` : `/${key}`);
      });
    }
  }
});
