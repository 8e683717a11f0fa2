import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, parseDuration, parseSize } from "../../src/config.js";

describe("configuration", () => {
  it("has the documented defaults", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 8080,
      host: "127.0.0.1",
      storage: { kind: "fs", root: "./data" },
      apiKeys: undefined,
      signingSecret: undefined,
      publicUrl: "http://127.0.0.1:8080",
      domains: [],
      maxFiles: 10_000,
      maxBytes: 25 * 2 ** 30,
      ttlSeconds: 86_400,
      readAhead: 8,
      cacheBytes: 128 * 2 ** 20,
    });
    expect(loadConfig({ ZIPGATE_CACHE_MB: "16" }).cacheBytes).toBe(16 * 2 ** 20);
    expect(() => loadConfig({ ZIPGATE_CACHE_MB: "0" })).toThrow(/ZIPGATE_CACHE_MB/);
  });

  it("reads the state settings: sweep, retention, cache time, Box lease", () => {
    expect(loadConfig({}).state).toEqual({
      sweepIntervalMs: 3_600_000,
      sweepRate: 100,
      jobRetentionMs: 30 * 86_400_000,
      crcRetentionMs: 90 * 86_400_000,
      cacheTtlMs: 60_000,
    });
    expect(loadConfig({ ZIPGATE_CRC_RETENTION: "0" }).state.crcRetentionMs).toBe(0);
    expect(loadConfig({}).box.leaseMs).toBe(60_000);
    const c = loadConfig({ ZIPGATE_SWEEP_INTERVAL: "0", ZIPGATE_JOB_RETENTION: "0", ZIPGATE_CACHE_TTL: "5s", ZIPGATE_BOX_LEASE: "10s" });
    expect(c.state).toMatchObject({ sweepIntervalMs: 0, jobRetentionMs: 0, cacheTtlMs: 5000 });
    expect(c.box.leaseMs).toBe(10_000);
    expect(loadConfig({ ZIPGATE_JOB_RETENTION: "400d" }).state.jobRetentionMs).toBe(400 * 86_400_000);
    try {
      loadConfig({ ZIPGATE_JOB_RETENTION: "forever", ZIPGATE_SWEEP_RATE: "0", ZIPGATE_BOX_LEASE: "1s", ZIPGATE_CACHE_TTL: "0" });
      expect.unreachable();
    } catch (err) {
      const problems = (err as ConfigError).problems.join("\n");
      for (const v of ["ZIPGATE_JOB_RETENTION", "ZIPGATE_SWEEP_RATE", "ZIPGATE_BOX_LEASE", "ZIPGATE_CACHE_TTL"]) expect(problems).toContain(v);
    }
  });

  it("reports every bad value at once", () => {
    try {
      loadConfig({ PORT: "nope", ZIPGATE_SIGNING_SECRET: "short", ZIPGATE_MAX_BYTES: "lots", ZIPGATE_TTL: "soon", ZIPGATE_API_KEYS: "tiny" });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const problems = (err as ConfigError).problems.join("\n");
      for (const v of ["PORT", "ZIPGATE_SIGNING_SECRET", "ZIPGATE_MAX_BYTES", "ZIPGATE_TTL", "ZIPGATE_API_KEYS"]) expect(problems).toContain(v);
    }
  });

  it("parses storage URLs, keys with scopes, sizes and durations", () => {
    expect(loadConfig({ ZIPGATE_STORAGE: "file:///srv/files" }).storage).toEqual({ kind: "fs", root: "/srv/files" });
    expect(loadConfig({ ZIPGATE_STORAGE: "s3://my-bucket/some/prefix" }).storage).toEqual({
      kind: "s3",
      bucket: "my-bucket",
      prefix: "some/prefix/",
      forcePathStyle: false,
      region: "us-east-1",
      endpoint: undefined,
      read: "lean",
      partSize: 8 * 2 ** 20,
      partDepth: 8,
      partMemory: 256 * 2 ** 20,
    });
    expect(
      loadConfig({ ZIPGATE_STORAGE: "s3://b-1", AWS_REGION: "eu-west-1", AWS_ENDPOINT_URL_S3: "http://127.0.0.1:9000", ZIPGATE_S3_FORCE_PATH_STYLE: "true" })
        .storage,
    ).toMatchObject({ kind: "s3", bucket: "b-1", prefix: "", forcePathStyle: true, region: "eu-west-1", endpoint: "http://127.0.0.1:9000" });
    expect(loadConfig({ ZIPGATE_API_KEYS: "aaaaaaaaaaaaaaaa,bbbbbbbbbbbbbbbb=/photos|/docs/" }).apiKeys).toEqual([
      { key: "aaaaaaaaaaaaaaaa" },
      { key: "bbbbbbbbbbbbbbbb", scopes: ["/photos/", "/docs/"] },
    ]);
    expect(parseSize("25 GiB")).toBe(25 * 2 ** 30);
    expect(parseSize("500MB")).toBe(500e6);
    expect(parseSize("12")).toBe(12);
    expect(parseDuration("24h")).toBe(86_400);
    expect(parseDuration("90")).toBe(90);
    expect(loadConfig({ HOST: "0.0.0.0", PORT: "9000" }).publicUrl).toBe("http://127.0.0.1:9000");
    expect(loadConfig({ ZIPGATE_PUBLIC_URL: "https://dl.example.com/zips/" }).publicUrl).toBe("https://dl.example.com/zips");
  });

  it("confines job outputs to each key's prefix, and refuses destinations that overlap the store", () => {
    const dest = (extra: Record<string, unknown>) => JSON.stringify([{ bucket: "shared", endpoint: "http://s3.local", ...extra }]);
    expect(loadConfig({ ZIPGATE_DESTINATIONS: dest({}) }).jobs.destinations[0]?.prefix).toBe("{key_id}/");
    const store = { ZIPGATE_STORAGE: "s3://shared/data", AWS_ENDPOINT_URL_S3: "http://s3.local" };
    // A separate prefix of the store's own bucket is fine; the store's prefix, or all of the bucket, is not.
    expect(loadConfig({ ...store, ZIPGATE_DESTINATIONS: dest({ prefix: "exports/{key_id}/" }) }).jobs.destinations).toHaveLength(1);
    expect(() => loadConfig({ ...store, ZIPGATE_DESTINATIONS: dest({ prefix: "data/{key_id}/" }) })).toThrow(/overlaps the store/);
    expect(() => loadConfig({ ...store, ZIPGATE_DESTINATIONS: dest({}) })).toThrow(/overlaps the store/);
    expect(() => loadConfig({ ZIPGATE_STORAGE: "s3://shared", AWS_ENDPOINT_URL_S3: "http://s3.local", ZIPGATE_DESTINATIONS: dest({ prefix: "x/" }) })).toThrow(
      /overlaps the store/,
    );
    // Another endpoint's bucket of the same name is another bucket.
    expect(loadConfig({ ...store, ZIPGATE_DESTINATIONS: JSON.stringify([{ bucket: "shared", endpoint: "http://other" }]) }).jobs.destinations).toHaveLength(1);
    expect(() => loadConfig({ ZIPGATE_DESTINATIONS: dest({ prefix: "../{key_id}/" }) })).toThrow(/prefix/);
  });

  it("reports a ZIPGATE_* variable nothing reads, with the name it probably meant", () => {
    const problems = (env: Record<string, string>): string => {
      try {
        loadConfig(env);
        return "";
      } catch (err) {
        return (err as ConfigError).problems.join("\n");
      }
    };
    expect(problems({ ZIPGATE_API_KEY: "aaaaaaaaaaaaaaaa" })).toMatch(/ZIPGATE_API_KEY is not a zipgate setting \(did you mean ZIPGATE_API_KEYS\?\)/);
    expect(problems({ ZIPGATE_MAX_DOWNLAODS: "3" })).toMatch(/did you mean ZIPGATE_MAX_DOWNLOADS/);
    expect(problems({ ZIPGATE_WHATEVER_ELSE: "1" })).toMatch(/ZIPGATE_WHATEVER_ELSE is not a zipgate setting; see/);
    // Settings that matter only with another one are known all the same: a webhook turned
    // off by emptying its URL leaves its secret harmless.
    expect(problems({ ZIPGATE_WEBHOOK_URL: "", ZIPGATE_WEBHOOK_SECRET: "x".repeat(20), ZIPGATE_WEBHOOK_BACKOFF_MS: "20" })).toBe("");
    expect(problems({ ZIPGATE_S3_FORCE_PATH_STYLE: "true" })).toBe("");
    // Every documented setting is known.
    expect(
      problems({
        ZIPGATE_TRUST_PROXY: "true",
        ZIPGATE_CORS_ORIGINS: "https://app.example.com",
        ZIPGATE_KEEPALIVE_TIMEOUT: "75s",
        ZIPGATE_DOMAINS: "dl.example.com",
        ZIPGATE_BOX_ALLOW_RESUME: "false",
        LOG_LEVEL: "debug",
      }),
    ).toBe("");
  });

  it("takes only plain digits for numbers", () => {
    for (const bad of ["0x1F90", "1e3", " 8080 ", "8080.0", "+8080", "-1", ""]) {
      if (bad === "") continue;
      expect(() => loadConfig({ PORT: bad }), bad).toThrow(/PORT must be an integer from 0 to 65535/);
    }
    expect(loadConfig({ PORT: "8081" }).port).toBe(8081);
    expect(() => loadConfig({ ZIPGATE_MAX_FILES: "1e3" })).toThrow(/ZIPGATE_MAX_FILES/);
  });

  it("refuses a CIDR with a bad prefix length with a message, not later with a stack", () => {
    for (const bad of ["10.0.0.0/8.5", "10.0.0.0/33", "10.0.0.0/8/9", "fd00::/129", "10.0.0.0/"]) {
      expect(() => loadConfig({ ZIPGATE_URL_ALLOW: bad }), bad).toThrow(/ZIPGATE_URL_ALLOW: .* bad prefix length/);
    }
    expect(loadConfig({ ZIPGATE_URL_ALLOW: "10.0.0.0/8, fd00::/8, files.internal, *.corp.example, 192.168.1.7" }).urlAllow).toHaveLength(5);
  });

  it("accepts API keys with = (base64 padding), scoped or not", () => {
    expect(loadConfig({ ZIPGATE_API_KEYS: "c2VjcmV0LWtleS0xMjM0NTY3OA==,YWJjZGVmZ2hpamtsbW5vcA===/photos/|/docs" }).apiKeys).toEqual([
      { key: "c2VjcmV0LWtleS0xMjM0NTY3OA==" },
      { key: "YWJjZGVmZ2hpamtsbW5vcA==", scopes: ["/photos/", "/docs/"] },
    ]);
    expect(loadConfig({ ZIPGATE_API_KEYS: "a/b+c=d0123456789abcdef=" }).apiKeys).toEqual([{ key: "a/b+c=d0123456789abcdef=" }]);
  });

  it("reads secrets from *_FILE variables, and refuses both forms at once", () => {
    const files: Record<string, string> = {
      "/run/secrets/keys": "aaaaaaaaaaaaaaaa\n",
      "/run/secrets/signing": "s".repeat(40),
      "/run/secrets/aws-id": "AKIDEXAMPLE\n",
      "/run/secrets/aws-secret": "wJalrXUtnFEMI/K7MDENG\n",
    };
    const readFile = (path: string): string => {
      const text = files[path];
      if (text === undefined) throw Object.assign(new Error("nope"), { code: "ENOENT" });
      return text;
    };
    const c = loadConfig(
      {
        ZIPGATE_API_KEYS_FILE: "/run/secrets/keys",
        ZIPGATE_SIGNING_SECRET_FILE: "/run/secrets/signing",
        ZIPGATE_STORAGE: "s3://bucket-1",
        AWS_ACCESS_KEY_ID_FILE: "/run/secrets/aws-id",
        AWS_SECRET_ACCESS_KEY_FILE: "/run/secrets/aws-secret",
      },
      { readFile },
    );
    expect(c.apiKeys).toEqual([{ key: "aaaaaaaaaaaaaaaa" }]);
    expect(c.signingSecret).toBe("s".repeat(40));
    expect(c.storage).toMatchObject({ kind: "s3", credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG" } });
    expect(() => loadConfig({ ZIPGATE_API_KEYS: "aaaaaaaaaaaaaaaa", ZIPGATE_API_KEYS_FILE: "/run/secrets/keys" }, { readFile })).toThrow(/both set/);
    expect(() => loadConfig({ ZIPGATE_SIGNING_SECRET_FILE: "/run/secrets/missing" }, { readFile })).toThrow(/cannot read "\/run\/secrets\/missing" \(ENOENT\)/);
  });

  it("parses log level, trusted proxies, CORS origins and the keep-alive timeout", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ logLevel: "info", trustProxy: 0, corsOrigins: [] });
    expect(c.limits.keepAliveTimeoutMs).toBe(65_000);
    expect(loadConfig({ LOG_LEVEL: "DEBUG" }).logLevel).toBe("debug");
    expect(() => loadConfig({ LOG_LEVEL: "loud" })).toThrow(/LOG_LEVEL must be one of/);
    expect(loadConfig({ ZIPGATE_TRUST_PROXY: "true" }).trustProxy).toBe(1);
    expect(loadConfig({ ZIPGATE_TRUST_PROXY: "2" }).trustProxy).toBe(2);
    expect(() => loadConfig({ ZIPGATE_TRUST_PROXY: "yes" })).toThrow(/ZIPGATE_TRUST_PROXY/);
    expect(loadConfig({ ZIPGATE_CORS_ORIGINS: "https://app.example.com, http://localhost:3000/" }).corsOrigins).toEqual([
      "https://app.example.com",
      "http://localhost:3000",
    ]);
    expect(loadConfig({ ZIPGATE_CORS_ORIGINS: "*" }).corsOrigins).toEqual(["*"]);
    expect(() => loadConfig({ ZIPGATE_CORS_ORIGINS: "https://app.example.com/path" })).toThrow(/is not an origin/);
    expect(loadConfig({ ZIPGATE_KEEPALIVE_TIMEOUT: "2m" }).limits.keepAliveTimeoutMs).toBe(120_000);
  });
});

describe("the documented settings", () => {
  it("are all known: every ZIPGATE_* name in --help and the README is read", async () => {
    const { readFile } = await import("node:fs/promises");
    const { helpText } = await import("../../src/help.js");
    const readme = await readFile(new URL("../../README.md", import.meta.url), "utf8");
    const names = new Set([...`${helpText()}\n${readme}`.matchAll(/\bZIPGATE_[A-Z0-9_]*[A-Z0-9]\b/g)].map((m) => m[0]));
    expect(names.size).toBeGreaterThan(30);
    // The README's own example of a typo.
    names.delete("ZIPGATE_API_KEY");
    for (const name of names) {
      let problems = "";
      try {
        loadConfig({ [name]: "x" });
      } catch (err) {
        problems = (err as ConfigError).problems.join("\n");
      }
      expect(problems, name).not.toContain("is not a zipgate setting");
    }
  });
});
