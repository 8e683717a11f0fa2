import { chmod, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../helpers/archive.js";
import { type Freezer, startFreezer } from "../helpers/freezer.js";
import { TEST_KEY } from "../helpers/gateway.js";
import { type GatewayProcess, startGatewayProcess } from "../helpers/process.js";
import { adminClient, freshPrefix, putObjects, s3Env, s3Server } from "../helpers/s3.js";
import { sha256, verifyWithUnzippers } from "../helpers/unzippers.js";

/**
 * Credentials come from the AWS SDK's own chain on both read paths: here from a profile whose
 * `credential_process` (a real script, run by the SDK) numbers each call and hands out a session
 * token with that number. A relay in front of the store shows which token each object GET
 * carried. Long-lived credentials are fetched once and shared by the lean GETs and the SDK's own
 * calls; credentials about to expire are fetched again as the SDK refreshes them, and the object
 * GETs sign with the new ones.
 */
const OBJECTS: Record<string, string> = { "c/a.txt": "alpha", "c/b.txt": "bravo", "c/d/e.txt": "echo" };

describe.each(["lean", "sdk"])("S3 credentials from a profile's credential_process (%s read path)", (read) => {
  const prefix = freshPrefix(`creds-${read}`);
  const client = adminClient();
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let relay: Freezer;
  const gateways: GatewayProcess[] = [];

  beforeAll(async () => {
    dir = await tempDir();
    await putObjects(client, prefix, OBJECTS);
    relay = await startFreezer(s3Server().endpoint);
  });
  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await relay?.close();
    client.destroy();
    await dir?.cleanup();
  });

  /** A gateway whose only credentials are the profile's process, expiring `expiresInS` from each call. */
  async function gatewayWithProfile(name: string, expiresInS: number): Promise<{ gw: GatewayProcess; calls: () => Promise<number> }> {
    const { accessKeyId, secretAccessKey } = s3Server().admin;
    const log = join(dir.path, `${name}.calls`);
    const script = join(dir.path, `${name}.sh`);
    await writeFile(
      script,
      `#!/bin/sh\necho call >> '${log}'\nn=$(wc -l < '${log}')\nprintf '{"Version":1,"AccessKeyId":"%s","SecretAccessKey":"%s","SessionToken":"zipgate-test-token-%s","Expiration":"%s"}' '${accessKeyId}' '${secretAccessKey}' "$n" "$(date -u -d "+${expiresInS} seconds" +%Y-%m-%dT%H:%M:%SZ)"\n`,
    );
    await chmod(script, 0o755);
    const config = join(dir.path, `${name}.config`);
    await writeFile(config, `[profile zipgate-test]\ncredential_process = ${script}\n`);
    const { AWS_ACCESS_KEY_ID: _id, AWS_SECRET_ACCESS_KEY: _secret, ...env } = s3Env(prefix);
    const gw = await startGatewayProcess({
      ...env,
      AWS_ENDPOINT_URL_S3: relay.url,
      ZIPGATE_S3_READ: read,
      AWS_PROFILE: "zipgate-test",
      AWS_CONFIG_FILE: config,
      AWS_SHARED_CREDENTIALS_FILE: join(dir.path, "none"),
    });
    gateways.push(gw);
    const calls = async () => (await readFile(log, "utf8").catch(() => "")).split("\n").filter(Boolean).length;
    return { gw, calls };
  }

  /** The session-token numbers the object GETs carried since `from` requests had been seen. */
  function tokensOfObjectGets(from: number): number[] {
    return relay
      .requestHeads()
      .slice(from)
      .filter((h) => h.startsWith("GET ") && /\/c\/(?:a|b|d\/e)\.txt[ ?]/.test(h.split("\r\n")[0] as string))
      .map((h) => Number(/\r\nx-amz-security-token: zipgate-test-token-(\d+)/i.exec(h)?.[1] ?? Number.NaN));
  }

  async function downloadTwice(gw: GatewayProcess): Promise<number[]> {
    const res = await fetch(`${gw.url}/v2/zipball`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${TEST_KEY}` },
      body: JSON.stringify({ objects: Object.keys(OBJECTS).map((key) => ({ path: `/${key}` })) }),
    });
    expect(res.status).toBe(201);
    const u = new URL(((await res.json()) as { data: { urls: { url: string } } }).data.urls.url);
    const from = relay.requestHeads().length;
    for (const round of [1, 2]) {
      const got = await fetch(gw.url + u.pathname + u.search);
      expect(got.status).toBe(200);
      const file = join(dir.path, `${read}-${round}-${Date.now()}.zip`);
      await writeFile(file, Buffer.from(await got.arrayBuffer()));
      await verifyWithUnzippers(
        file,
        Object.entries(OBJECTS).map(([key, body]) => ({ name: key.split("/").pop() as string, size: body.length, sha256: sha256(body) })),
      );
    }
    const tokens = tokensOfObjectGets(from);
    expect(tokens.length).toBeGreaterThanOrEqual(Object.keys(OBJECTS).length);
    return tokens;
  }

  it("fetches long-lived credentials once for every request", async () => {
    const { gw, calls } = await gatewayWithProfile(`${read}-long`, 3600);
    const tokens = await downloadTwice(gw);
    expect(await calls()).toBe(1);
    expect(new Set(tokens)).toEqual(new Set([1]));
  });

  it("fetches credentials again as they near their expiry, and signs with them", async () => {
    // Within the SDK's five-minute refresh window from the start: every use refreshes.
    const { gw, calls } = await gatewayWithProfile(`${read}-expiring`, 120);
    const first = await downloadTwice(gw);
    const second = await downloadTwice(gw);
    expect(await calls()).toBeGreaterThan(2);
    // The later download's GETs carried newer credentials than any of the earlier one's.
    expect(first.every(Number.isFinite) && second.every(Number.isFinite)).toBe(true);
    expect(Math.min(...second)).toBeGreaterThan(Math.max(...first));
  });
});
