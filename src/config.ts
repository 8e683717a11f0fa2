import { readFileSync } from "node:fs";
import { isIP } from "node:net";

/**
 * Configuration, read once from the environment by main.ts and passed down.
 * Every bad value is collected and reported at once.
 */

export type StorageConfig =
  | { kind: "fs"; root: string }
  | {
      kind: "s3";
      bucket: string;
      /** Scopes everything: objects, folders and `.zipgate/`. Empty or ending in `/`. */
      prefix: string;
      forcePathStyle: boolean;
      /** AWS_REGION, then AWS_DEFAULT_REGION. */
      region: string;
      /** AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL: a non-AWS store. */
      endpoint: string | undefined;
      /** ZIPGATE_S3_READ: objects read by the lean GET path or the SDK's GetObject. */
      read: "lean" | "sdk";
      /** ZIPGATE_S3_PART_SIZE, ZIPGATE_S3_PARTS: large objects as ranged GETs of this size, this many in flight. */
      partSize: number;
      partDepth: number;
      /** ZIPGATE_S3_PART_MEMORY: memory for parts read ahead, for the whole process. */
      partMemory: number;
      /**
       * Keys read from AWS_ACCESS_KEY_ID_FILE / AWS_SECRET_ACCESS_KEY_FILE (container secrets);
       * otherwise undefined and the SDK's standard chain (environment, profile, IMDS…) is used.
       */
      credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string | undefined } | undefined;
    };

/** A bucket jobs may write into (ZIPGATE_DESTINATIONS). */
export interface Destination {
  bucket: string;
  service: "s3" | "r2";
  region: string;
  endpoint: string | undefined;
  forcePathStyle: boolean;
  /** Explicit keys; otherwise the SDK's standard credential chain. */
  credentials: { accessKeyId: string; secretAccessKey: string } | undefined;
  /**
   * Where each API key's job outputs go: `{key_id}` is replaced by the caller's key id, so
   * one key can neither overwrite nor place objects beside another's. @default "{key_id}/"
   */
  prefix: string;
}

export interface ApiKey {
  key: string;
  /** Path prefixes (`/dir/`) the key may read; undefined = everything. */
  scopes?: string[] | undefined;
}

/** LOG_LEVEL values, pino's names. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  port: number;
  host: string;
  /** LOG_LEVEL. @default "info" */
  logLevel: LogLevel;
  /**
   * ZIPGATE_TRUST_PROXY: how many proxies in front append to X-Forwarded-For; the client
   * address logged is the one the outermost trusted proxy saw. 0 = the socket's peer. @default 0
   */
  trustProxy: number;
  /** ZIPGATE_CORS_ORIGINS: origins a browser app may call from; "*" for any; empty = no CORS. */
  corsOrigins: string[];
  /**
   * Who may read /metrics. ZIPGATE_METRICS_TOKEN: anyone with `Authorization: Bearer <it>`.
   * ZIPGATE_METRICS_LISTEN (`host:port`): served there only, not on the main listener. Neither:
   * clients from a loopback address only.
   */
  metrics: { token: string | undefined; listen: { host: string; port: number } | undefined };
  storage: StorageConfig;
  /** Keys allowed to create zips; undefined = generate one and keep it in the store. */
  apiKeys: ApiKey[] | undefined;
  /** Secret for manifest signatures; undefined = generate one and keep it in the store. */
  signingSecret: string | undefined;
  /** Base of returned URLs, without a trailing slash. */
  publicUrl: string;
  /** Custom domains returned in `urls.domains`. */
  domains: string[];
  maxFiles: number;
  maxBytes: number;
  /** Lifetime of a zipball, in seconds. */
  ttlSeconds: number;
  /** Objects opened ahead of the one being streamed. */
  readAhead: number;
  /** Memory for cached zipballs and layouts (ZIPGATE_CACHE_MB), half each, estimated from entry counts. */
  cacheBytes: number;
  /**
   * ZIPGATE_PREPARE_BYTES and ZIPGATE_PREPARE_MS: what a creation reads to learn unknown CRCs,
   * so its archive is classic from the first download (0 bytes or 0 ms: nothing).
   */
  prepareBudget: { bytes: number; ms: number };
  /** ZIPGATE_DEFLATE_INLINE: largest entry a deflate-mode archive compresses in memory (classic form). */
  deflateInlineMax: number;
  /** ZIPGATE_URL_ALLOW: non-public hosts and CIDRs URL objects may still fetch. */
  urlAllow: string[];
  jobs: {
    /** ZIPGATE_DESTINATIONS: buckets jobs may write into. */
    destinations: Destination[];
    /** ZIPGATE_JOB_CONCURRENCY */
    concurrency: number;
    /** ZIPGATE_JOB_LEASE, in ms. */
    leaseMs: number;
    /** ZIPGATE_WEBHOOK_URL and friends. */
    webhook: { url: string; secret: string; attempts: number; backoffMs: number } | undefined;
  };
  /** Ceilings on what clients can make the process hold, and how long it waits. */
  limits: {
    /** ZIPGATE_MAX_DOWNLOADS: archive bodies produced at once; more get 503 with Retry-After. */
    maxDownloads: number;
    /** ZIPGATE_MAX_DOWNLOADS_PER_CLIENT: of those, at once from one client address; more get 429. */
    maxDownloadsPerClient: number;
    /**
     * ZIPGATE_MIN_RATE (bytes per second, 0: off) and ZIPGATE_MIN_RATE_WINDOW (ms): a download
     * whose client took less than the rate over a window, while the gateway waited on it for
     * most of that window, is cut (`too_slow`).
     */
    minRate: { bytesPerSecond: number; windowMs: number };
    /** ZIPGATE_MAX_CONNECTIONS: open client connections. */
    maxConnections: number;
    /** ZIPGATE_SEND_TIMEOUT, in ms: a download whose client takes nothing for this long is cut. */
    sendTimeoutMs: number;
    /** ZIPGATE_REQUEST_TIMEOUT, in ms: to receive a whole request (headers get a third of it). */
    requestTimeoutMs: number;
    /** ZIPGATE_DRAIN_TIMEOUT, in ms: how long downloads may finish after SIGTERM. */
    drainTimeoutMs: number;
    /** ZIPGATE_SHUTDOWN_DELAY, in ms: after SIGTERM, how long the listener stays open answering 503. */
    shutdownDelayMs: number;
    /** ZIPGATE_STORE_CONNECT_TIMEOUT, in ms: to connect to the object store. */
    storeConnectTimeoutMs: number;
    /** ZIPGATE_STORE_TIMEOUT, in ms: for the store's first byte, and any silence after it. */
    storeTimeoutMs: number;
    /**
     * ZIPGATE_KEEPALIVE_TIMEOUT, in ms: how long an idle client connection is kept. Above the
     * idle timeouts of load balancers (60 s on AWS ALB, GCP and nginx's default 75 s upstream is
     * the client side), so a balancer never reuses a socket the gateway just closed. @default 65_000
     */
    keepAliveTimeoutMs: number;
  };
  box: {
    /** ZIPGATE_BOX_TTL: lifetime of a download URL until it is used. */
    ttlSeconds: number;
    /** ZIPGATE_BOX_MAX_DOWNLOADS: concurrent downloads per key. */
    maxConcurrent: number;
    /** ZIPGATE_BOX_ALLOW_RESUME: allow resuming a started download with Range. */
    allowResume: boolean;
    /** ZIPGATE_BOX_LEASE, in ms: how long a running download still counts once its replica stops renewing it. */
    leaseMs: number;
  };
  /** The gateway's own state in the store, over time. */
  state: {
    /** ZIPGATE_SWEEP_INTERVAL, in ms: how often a replica sweeps expired state; 0 = never. */
    sweepIntervalMs: number;
    /** ZIPGATE_SWEEP_RATE: store requests per second a sweep may make. */
    sweepRate: number;
    /** ZIPGATE_JOB_RETENTION, in ms: finished jobs are removed this long after they finished; 0 = kept. */
    jobRetentionMs: number;
    /** ZIPGATE_CRC_RETENTION, in ms: a CRC-index shard not written for this long is removed; 0 keeps them. */
    crcRetentionMs: number;
    /** ZIPGATE_CACHE_TTL, in ms: how long a verified zipball is served from memory (a revocation reaches every replica within it). */
    cacheTtlMs: number;
  };
}

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  kib: 2 ** 10,
  m: 1e6,
  mb: 1e6,
  mib: 2 ** 20,
  g: 1e9,
  gb: 1e9,
  gib: 2 ** 30,
  t: 1e12,
  tb: 1e12,
  tib: 2 ** 40,
};
const DURATION_UNITS: Record<string, number> = { "": 1, s: 1, m: 60, h: 3600, d: 86_400 };

/** `25 GiB`, `500MB`, `1048576` → bytes; undefined when malformed. */
export function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = SIZE_UNITS[(m?.[2] ?? "").toLowerCase()];
  if (!m || unit === undefined) return undefined;
  const value = Math.floor(Number(m[1]) * unit);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** `24h`, `30m`, `7d`, `3600` (seconds) → seconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  const m = /^\s*(\d+)\s*([smhd]?)\s*$/i.exec(text);
  const unit = DURATION_UNITS[(m?.[2] ?? "").toLowerCase()];
  if (!m || unit === undefined) return undefined;
  return Number(m[1]) * unit;
}

/**
 * `key1,key2` or, to limit a key to path prefixes, `key1=/photos/|/docs/,key2`. A key may
 * contain `=` (base64 padding): only an `=` followed by `/` starts the scopes.
 */
export function parseApiKeys(text: string): ApiKey[] | string {
  const keys: ApiKey[] = [];
  for (const part of text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^(.+?)=(\/.*)$/.exec(part);
    const key = m ? (m[1] as string) : part;
    const scopeText = m ? m[2] : undefined;
    if (key.length < 16) return "each API key must be at least 16 characters";
    if (!/^[\x21-\x7e]+$/.test(key)) return "API keys must be printable ASCII without spaces";
    if (scopeText === undefined) {
      keys.push({ key });
      continue;
    }
    const scopes = scopeText
      .split("|")
      .map((s) => s.trim())
      .filter(Boolean);
    if (scopes.length === 0 || scopes.some((s) => !s.startsWith("/"))) return `scopes of a key must be paths starting with "/"`;
    keys.push({ key, scopes: scopes.map((s) => (s.endsWith("/") ? s : `${s}/`)) });
  }
  return keys.length > 0 ? keys : "ZIPGATE_API_KEYS is set but holds no key";
}

function parseStorage(text: string, env: Record<string, string | undefined>, problems: string[]): StorageConfig {
  if (text.startsWith("s3://")) {
    const rest = text.slice("s3://".length);
    const slash = rest.indexOf("/");
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    let prefix = slash < 0 ? "" : rest.slice(slash + 1).replace(/^\/+/, "");
    if (prefix !== "" && !prefix.endsWith("/")) prefix += "/";
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) problems.push(`ZIPGATE_STORAGE: "${bucket}" is not a valid bucket name`);
    const forcePathStyle = bool(env, "ZIPGATE_S3_FORCE_PATH_STYLE", problems);
    const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
    if (endpoint !== undefined && !/^https?:\/\/[^/]+/.test(endpoint)) problems.push(`AWS_ENDPOINT_URL_S3 must be an http(s) URL (got "${endpoint}")`);
    const read = env.ZIPGATE_S3_READ || "lean";
    if (read !== "lean" && read !== "sdk") problems.push(`ZIPGATE_S3_READ must be "lean" or "sdk" (got "${read}")`);
    const size = (name: string, fallback: number, min: number, max: number): number => {
      const text = env[name];
      if (text === undefined || text === "") return fallback;
      const parsed = parseSize(text);
      if (parsed === undefined || parsed < min || parsed > max) {
        problems.push(`${name} must be a size from ${min / 2 ** 20} MiB to ${max / 2 ** 20} MiB (got "${text}")`);
        return fallback;
      }
      return parsed;
    };
    return {
      kind: "s3",
      bucket,
      prefix,
      forcePathStyle,
      region: env.AWS_REGION || env.AWS_DEFAULT_REGION || "us-east-1",
      endpoint,
      read: read === "sdk" ? "sdk" : "lean",
      partSize: size("ZIPGATE_S3_PART_SIZE", 8 * 2 ** 20, 2 ** 20, 512 * 2 ** 20),
      partDepth: int(env, "ZIPGATE_S3_PARTS", 8, 1, 64, problems),
      partMemory: size("ZIPGATE_S3_PART_MEMORY", 256 * 2 ** 20, 2 ** 20, 64 * 2 ** 30),
    };
  }
  if (text.startsWith("file:")) {
    try {
      return { kind: "fs", root: decodeURIComponent(new URL(text).pathname) };
    } catch {
      problems.push(`ZIPGATE_STORAGE: "${text}" is not a valid file: URL`);
      return { kind: "fs", root: "./data" };
    }
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) problems.push(`ZIPGATE_STORAGE: unsupported scheme in "${text}" (use a folder path, file: or s3://)`);
  return { kind: "fs", root: text };
}

/** A size setting ("1 GiB", "512 KiB", bytes), within [min, max]. */
function size(env: Record<string, string | undefined>, name: string, fallback: number, min: number, max: number, problems: string[]): number {
  const text = env[name];
  if (text === undefined || text === "") return fallback;
  const parsed = parseSize(text);
  if (parsed === undefined || parsed < min || parsed > max) {
    problems.push(`${name} must be a size like "1 MiB" between ${min} and ${max} bytes (got "${text}")`);
    return fallback;
  }
  return parsed;
}

function int(env: Record<string, string | undefined>, name: string, fallback: number, min: number, max: number, problems: string[]): number {
  const text = env[name];
  if (text === undefined || text === "") return fallback;
  // Digits only: Number() would take "0x1F90", "1e3" and " 8080 " too.
  const value = /^\d{1,16}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(value) || value < min || value > max) {
    problems.push(`${name} must be an integer from ${min} to ${max} (got "${text}")`);
    return fallback;
  }
  return value;
}

/**
 * `[{"bucket": "exports", "service": "s3"|"r2", "endpoint": "…", "region": "…",
 *   "access_key_id": "…", "secret_access_key": "…", "force_path_style": true}]`
 */
function parseDestinations(text: string | undefined, problems: string[]): Destination[] {
  if (!text) return [];
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    problems.push("ZIPGATE_DESTINATIONS must be a JSON array");
    return [];
  }
  if (!Array.isArray(value)) {
    problems.push("ZIPGATE_DESTINATIONS must be a JSON array");
    return [];
  }
  const out: Destination[] = [];
  for (const [i, d] of (value as Array<Record<string, unknown>>).entries()) {
    const where = `ZIPGATE_DESTINATIONS[${i}]`;
    if (typeof d !== "object" || d === null || typeof d.bucket !== "string" || d.bucket === "") {
      problems.push(`${where} needs a "bucket"`);
      continue;
    }
    const service = d.service ?? "s3";
    if (service !== "s3" && service !== "r2") {
      problems.push(`${where}.service must be "s3" or "r2"`);
      continue;
    }
    if (service === "r2" && typeof d.endpoint !== "string") {
      problems.push(`${where}: an r2 destination needs its "endpoint"`);
      continue;
    }
    if (d.endpoint !== undefined && (typeof d.endpoint !== "string" || !/^https?:\/\//.test(d.endpoint))) {
      problems.push(`${where}.endpoint must be an http(s) URL`);
      continue;
    }
    const keys = typeof d.access_key_id === "string" && typeof d.secret_access_key === "string";
    if ((d.access_key_id !== undefined || d.secret_access_key !== undefined) && !keys) {
      problems.push(`${where} needs both access_key_id and secret_access_key`);
      continue;
    }
    const prefix = d.prefix === undefined ? "{key_id}/" : d.prefix;
    if (typeof prefix !== "string" || prefix.startsWith("/") || prefix.split("/").some((seg) => seg === "." || seg === "..")) {
      problems.push(`${where}.prefix must be a key prefix such as "exports/{key_id}/"`);
      continue;
    }
    out.push({
      prefix,
      bucket: d.bucket,
      service,
      region: typeof d.region === "string" ? d.region : service === "r2" ? "auto" : "us-east-1",
      endpoint: d.endpoint as string | undefined,
      forcePathStyle: d.force_path_style === true,
      credentials: keys ? { accessKeyId: d.access_key_id as string, secretAccessKey: d.secret_access_key as string } : undefined,
    });
  }
  return out;
}

/** Longest duration of a timer-backed setting: Node's timers hold at most about 24.8 days. */
const MAX_TIMER_SECONDS = 7 * 86_400;

/**
 * Whether job outputs could land among the store's own keys: the same bucket on the same
 * endpoint, and neither prefix inside the other (the destination's up to its first `{`).
 */
function overlapsStore(d: Destination, storage: StorageConfig): boolean {
  if (storage.kind !== "s3" || d.bucket !== storage.bucket || (d.endpoint ?? "") !== (storage.endpoint ?? "")) return false;
  const fixed = d.prefix.split("{", 1)[0] ?? "";
  return fixed.startsWith(storage.prefix) || storage.prefix.startsWith(fixed);
}

/** A duration variable (`90`, `2m`) in seconds, from `min` to a week. */
function seconds(env: Record<string, string | undefined>, name: string, fallback: number, problems: string[], min = 1): number {
  const text = env[name];
  if (text === undefined || text === "") return fallback;
  const parsed = parseDuration(text);
  if (parsed === undefined || parsed < min || parsed > MAX_TIMER_SECONDS) {
    problems.push(`${name} must be a duration like "30s" or "2m", at most 7d (got "${text}")`);
    return fallback;
  }
  return parsed;
}

/** A retention (`30d`) in seconds, up to ten years; `0` keeps for ever. */
function retention(env: Record<string, string | undefined>, name: string, fallback: number, problems: string[]): number {
  const text = env[name];
  if (text === undefined || text === "") return fallback;
  const parsed = parseDuration(text);
  if (parsed === undefined || parsed > 3650 * 86_400) {
    problems.push(`${name} must be a duration like "30d", or 0 to keep for ever (got "${text}")`);
    return fallback;
  }
  return parsed;
}

function bool(env: Record<string, string | undefined>, name: string, problems: string[]): boolean {
  const text = env[name];
  if (text === undefined || text === "") return false;
  if (!/^(true|false|1|0)$/i.test(text)) problems.push(`${name} must be true or false (got "${text}")`);
  return /^(true|1)$/i.test(text);
}

/**
 * Secrets that may come from a file instead (`NAME_FILE=/run/secrets/…`: Docker and
 * Kubernetes secrets), so they need not sit in the process environment.
 */
export const SECRET_FILE_VARIABLES = [
  "ZIPGATE_API_KEYS",
  "ZIPGATE_SIGNING_SECRET",
  "ZIPGATE_WEBHOOK_SECRET",
  "ZIPGATE_DESTINATIONS",
  "ZIPGATE_METRICS_TOKEN",
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
] as const;

/**
 * Settings read only with another one (the S3 store's, the webhook's): known either way,
 * so turning a feature off by emptying its main variable leaves the rest harmless.
 */
const READ_ONLY_WITH = [
  "ZIPGATE_S3_FORCE_PATH_STYLE",
  "ZIPGATE_S3_READ",
  "ZIPGATE_S3_PART_SIZE",
  "ZIPGATE_S3_PARTS",
  "ZIPGATE_S3_PART_MEMORY",
  "ZIPGATE_WEBHOOK_SECRET",
  "ZIPGATE_WEBHOOK_ATTEMPTS",
  "ZIPGATE_WEBHOOK_BACKOFF_MS",
  // Read by bin/zipgate, which starts the process with these Node flags.
  "ZIPGATE_NODE_FLAGS",
];

export interface LoadOptions {
  /** Reads a `*_FILE` secret. @default fs.readFileSync(path, "utf8") */
  readFile?: (path: string) => string;
}

/** `NAME_FILE` variables replaced by their file's content (one trailing newline dropped). */
function withSecretFiles(env: Record<string, string | undefined>, readFile: (path: string) => string, problems: string[]): Record<string, string | undefined> {
  const out = { ...env };
  for (const name of SECRET_FILE_VARIABLES) {
    const path = env[`${name}_FILE`];
    if (path === undefined || path === "") continue;
    if (env[name]) {
      problems.push(`${name} and ${name}_FILE are both set: use one`);
      continue;
    }
    try {
      out[name] = readFile(path).replace(/\r?\n$/, "");
    } catch (err) {
      problems.push(`${name}_FILE: cannot read "${path}" (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
  }
  return out;
}

/** Edit distance, for "did you mean" on a mistyped variable name. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length] as number;
}

/**
 * Every ZIPGATE_* variable nothing read: a typo (ZIPGATE_API_KEY for ZIPGATE_API_KEYS) must
 * not silently fall back to a default. Known names are the ones loadConfig read, so a new
 * setting is known as soon as it is read.
 */
function unread(env: Record<string, string | undefined>, read: ReadonlySet<string>, problems: string[]): void {
  const known = [...read, ...READ_ONLY_WITH, ...SECRET_FILE_VARIABLES.map((n) => `${n}_FILE`)].filter((n) => n.startsWith("ZIPGATE_"));
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith("ZIPGATE_") || read.has(name) || READ_ONLY_WITH.includes(name) || env[name] === undefined) continue;
    const best = known.map((k) => ({ k, d: distance(name, k) })).sort((x, y) => x.d - y.d)[0];
    const hint = best && best.d <= Math.max(2, Math.floor(name.length / 6)) ? ` (did you mean ${best.k}?)` : "";
    problems.push(`${name} is not a zipgate setting${hint}; see zipgate --help`);
  }
}

/** ZIPGATE_URL_ALLOW: hosts (`files.internal`, `*.corp.example`) and CIDRs (`10.0.0.0/8`). */
function parseUrlAllow(text: string | undefined, problems: string[]): string[] {
  const entries = (text ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const entry of entries) {
    const parts = entry.split("/");
    const addr = parts[0] ?? "";
    const family = isIP(addr);
    if (family === 0) {
      if (parts.length > 1 || !/^(\*\.)?[a-z0-9.-]+$/i.test(addr)) problems.push(`ZIPGATE_URL_ALLOW: "${entry}" is neither a host nor a CIDR`);
      continue;
    }
    if (parts.length === 1) continue;
    const bits = parts[1] ?? "";
    if (parts.length > 2 || !/^\d{1,3}$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128)) {
      problems.push(`ZIPGATE_URL_ALLOW: "${entry}" has a bad prefix length (a whole number up to ${family === 4 ? 32 : 128})`);
    }
  }
  return entries;
}

/** ZIPGATE_CORS_ORIGINS: `https://app.example.com,http://localhost:3000`, or `*`. */
function parseCorsOrigins(text: string | undefined, problems: string[]): string[] {
  const origins = (text ?? "")
    .split(",")
    .map((s) => s.trim().replace(/\/+$/, ""))
    .filter(Boolean);
  if (origins.includes("*")) {
    if (origins.length > 1) problems.push(`ZIPGATE_CORS_ORIGINS: "*" allows every origin and cannot be combined with others`);
    return ["*"];
  }
  for (const o of origins) {
    let ok = false;
    try {
      const u = new URL(o);
      ok = (u.protocol === "http:" || u.protocol === "https:") && u.origin === o;
    } catch {}
    if (!ok) problems.push(`ZIPGATE_CORS_ORIGINS: "${o}" is not an origin such as https://app.example.com (scheme, host, optional port, no path)`);
  }
  return origins;
}

function parseTrustProxy(text: string | undefined, problems: string[]): number {
  if (text === undefined || text === "" || /^false$/i.test(text)) return 0;
  if (/^true$/i.test(text)) return 1;
  if (/^\d{1,2}$/.test(text) && Number(text) <= 16) return Number(text);
  problems.push(`ZIPGATE_TRUST_PROXY must be true, false or the number of proxies in front (0 to 16) (got "${text}")`);
  return 0;
}

export function loadConfig(given: Record<string, string | undefined>, options: LoadOptions = {}): Config {
  const problems: string[] = [];
  const read = new Set<string>();
  // Every name looked up is recorded: what is set and never looked up is reported.
  const env = new Proxy(withSecretFiles(given, options.readFile ?? ((path) => readFileSync(path, "utf8")), problems), {
    get: (target, name) => {
      if (typeof name !== "string") return undefined;
      read.add(name);
      return target[name];
    },
  });
  for (const name of SECRET_FILE_VARIABLES) read.add(`${name}_FILE`);
  const logText = env.LOG_LEVEL || "info";
  const logLevel = (LOG_LEVELS as readonly string[]).includes(logText.toLowerCase()) ? (logText.toLowerCase() as LogLevel) : "info";
  if (logLevel !== logText.toLowerCase()) problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")} (got "${logText}")`);
  const trustProxy = parseTrustProxy(env.ZIPGATE_TRUST_PROXY, problems);
  const corsOrigins = parseCorsOrigins(env.ZIPGATE_CORS_ORIGINS, problems);
  const port = int(env, "PORT", 8080, 0, 65_535, problems);
  const host = env.HOST || "127.0.0.1";
  const storage = parseStorage(env.ZIPGATE_STORAGE || "./data", env, problems);

  let apiKeys: ApiKey[] | undefined;
  if (env.ZIPGATE_API_KEYS) {
    const parsed = parseApiKeys(env.ZIPGATE_API_KEYS);
    if (typeof parsed === "string") problems.push(`ZIPGATE_API_KEYS: ${parsed}`);
    else apiKeys = parsed;
  }

  const signingSecret = env.ZIPGATE_SIGNING_SECRET || undefined;
  if (signingSecret !== undefined && Buffer.byteLength(signingSecret) < 32) {
    problems.push("ZIPGATE_SIGNING_SECRET must be at least 32 bytes");
  }

  const urlHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  let publicUrl = env.ZIPGATE_PUBLIC_URL || `http://${urlHost}:${port}`;
  try {
    const u = new URL(publicUrl);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("scheme");
    if (u.search || u.hash) throw new Error("query");
    publicUrl = u.href.replace(/\/+$/, "");
  } catch {
    problems.push(`ZIPGATE_PUBLIC_URL must be an http(s) URL without query (got "${publicUrl}")`);
  }

  const domains = (env.ZIPGATE_DOMAINS ?? "")
    .split(",")
    .map((d) => d.trim())
    .filter(Boolean);
  for (const d of domains) {
    const bare = d.replace(/^https?:\/\//, "").replace(/\/+$/, "");
    if (!/^[a-z0-9.-]+(:\d+)?$/i.test(bare)) problems.push(`ZIPGATE_DOMAINS: "${d}" is not a domain`);
  }

  const maxFiles = int(env, "ZIPGATE_MAX_FILES", 10_000, 1, 10_000_000, problems);
  let maxBytes = 25 * 2 ** 30;
  if (env.ZIPGATE_MAX_BYTES) {
    const parsed = parseSize(env.ZIPGATE_MAX_BYTES);
    if (parsed === undefined || parsed < 1) problems.push(`ZIPGATE_MAX_BYTES must be a size like "25 GiB" (got "${env.ZIPGATE_MAX_BYTES}")`);
    else maxBytes = parsed;
  }
  let ttlSeconds = 86_400;
  if (env.ZIPGATE_TTL) {
    const parsed = parseDuration(env.ZIPGATE_TTL);
    if (parsed === undefined || parsed < 1) problems.push(`ZIPGATE_TTL must be a duration like "24h" (got "${env.ZIPGATE_TTL}")`);
    else ttlSeconds = parsed;
  }
  const readAhead = int(env, "ZIPGATE_READ_AHEAD", 8, 1, 256, problems);
  const cacheBytes = int(env, "ZIPGATE_CACHE_MB", 128, 1, 1_048_576, problems) * 1024 * 1024;
  const prepareBudget = {
    bytes: size(env, "ZIPGATE_PREPARE_BYTES", 2 ** 30, 0, Number.MAX_SAFE_INTEGER, problems),
    ms: int(env, "ZIPGATE_PREPARE_MS", 10_000, 0, 600_000, problems),
  };
  const deflateInlineMax = size(env, "ZIPGATE_DEFLATE_INLINE", 1024 * 1024, 0, 64 * 1024 * 1024, problems);
  let boxTtl = 15 * 60;
  if (env.ZIPGATE_BOX_TTL) {
    const parsed = parseDuration(env.ZIPGATE_BOX_TTL);
    if (parsed === undefined || parsed < 1) problems.push(`ZIPGATE_BOX_TTL must be a duration like "15m" (got "${env.ZIPGATE_BOX_TTL}")`);
    else boxTtl = parsed;
  }
  const urlAllow = parseUrlAllow(env.ZIPGATE_URL_ALLOW, problems);
  const destinations = parseDestinations(env.ZIPGATE_DESTINATIONS, problems);
  for (const [i, d] of destinations.entries()) {
    if (overlapsStore(d, storage)) {
      problems.push(
        `ZIPGATE_DESTINATIONS[${i}] (bucket ${d.bucket}, prefix "${d.prefix}") overlaps the store: jobs could overwrite its objects or its .zipgate/ state`,
      );
    }
  }
  const jobs = {
    destinations,
    concurrency: int(env, "ZIPGATE_JOB_CONCURRENCY", 2, 1, 64, problems),
    leaseMs: 30_000,
    webhook: undefined as Config["jobs"]["webhook"],
  };
  if (env.ZIPGATE_JOB_LEASE) {
    const parsed = parseDuration(env.ZIPGATE_JOB_LEASE);
    if (parsed === undefined || parsed < 1) problems.push(`ZIPGATE_JOB_LEASE must be a duration like "30s" (got "${env.ZIPGATE_JOB_LEASE}")`);
    else jobs.leaseMs = parsed * 1000;
  }
  // Checked whether or not a webhook is set.
  const webhookSecret = env.ZIPGATE_WEBHOOK_SECRET ?? "";
  const webhookAttempts = int(env, "ZIPGATE_WEBHOOK_ATTEMPTS", 5, 1, 20, problems);
  const webhookBackoffMs = int(env, "ZIPGATE_WEBHOOK_BACKOFF_MS", 1000, 1, 600_000, problems);
  if (env.ZIPGATE_WEBHOOK_URL) {
    if (!/^https?:\/\/[^/]+/.test(env.ZIPGATE_WEBHOOK_URL)) problems.push("ZIPGATE_WEBHOOK_URL must be an http(s) URL");
    if (Buffer.byteLength(webhookSecret) < 16) problems.push("ZIPGATE_WEBHOOK_SECRET must be set (at least 16 bytes) with ZIPGATE_WEBHOOK_URL");
    jobs.webhook = { url: env.ZIPGATE_WEBHOOK_URL, secret: webhookSecret, attempts: webhookAttempts, backoffMs: webhookBackoffMs };
  }
  const box = {
    ttlSeconds: boxTtl,
    maxConcurrent: int(env, "ZIPGATE_BOX_MAX_DOWNLOADS", 5, 1, 10_000, problems),
    allowResume: bool(env, "ZIPGATE_BOX_ALLOW_RESUME", problems),
    leaseMs: seconds(env, "ZIPGATE_BOX_LEASE", 60, problems, 2) * 1000,
  };
  const state = {
    sweepIntervalMs: seconds(env, "ZIPGATE_SWEEP_INTERVAL", 3600, problems, 0) * 1000,
    sweepRate: int(env, "ZIPGATE_SWEEP_RATE", 100, 1, 100_000, problems),
    jobRetentionMs: retention(env, "ZIPGATE_JOB_RETENTION", 30 * 86_400, problems) * 1000,
    crcRetentionMs: retention(env, "ZIPGATE_CRC_RETENTION", 90 * 86_400, problems) * 1000,
    cacheTtlMs: seconds(env, "ZIPGATE_CACHE_TTL", 60, problems) * 1000,
  };

  const limits = {
    maxDownloads: int(env, "ZIPGATE_MAX_DOWNLOADS", 512, 1, 100_000, problems),
    maxDownloadsPerClient: int(env, "ZIPGATE_MAX_DOWNLOADS_PER_CLIENT", 32, 1, 100_000, problems),
    minRate: {
      bytesPerSecond: size(env, "ZIPGATE_MIN_RATE", 8 * 1024, 0, 2 ** 40, problems),
      windowMs: seconds(env, "ZIPGATE_MIN_RATE_WINDOW", 60, problems) * 1000,
    },
    maxConnections: int(env, "ZIPGATE_MAX_CONNECTIONS", 4096, 1, 1_000_000, problems),
    sendTimeoutMs: seconds(env, "ZIPGATE_SEND_TIMEOUT", 120, problems) * 1000,
    requestTimeoutMs: seconds(env, "ZIPGATE_REQUEST_TIMEOUT", 60, problems) * 1000,
    drainTimeoutMs: seconds(env, "ZIPGATE_DRAIN_TIMEOUT", 25, problems) * 1000,
    shutdownDelayMs: seconds(env, "ZIPGATE_SHUTDOWN_DELAY", 0, problems, 0) * 1000,
    storeConnectTimeoutMs: seconds(env, "ZIPGATE_STORE_CONNECT_TIMEOUT", 5, problems) * 1000,
    storeTimeoutMs: seconds(env, "ZIPGATE_STORE_TIMEOUT", 20, problems) * 1000,
    keepAliveTimeoutMs: seconds(env, "ZIPGATE_KEEPALIVE_TIMEOUT", 65, problems) * 1000,
  };
  if (storage.kind === "s3" && (given.AWS_ACCESS_KEY_ID_FILE || given.AWS_SECRET_ACCESS_KEY_FILE)) {
    const accessKeyId = env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
    if (!accessKeyId || !secretAccessKey) problems.push("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are both needed (from the environment or their *_FILE)");
    else storage.credentials = { accessKeyId, secretAccessKey, sessionToken: env.AWS_SESSION_TOKEN || undefined };
  }

  const metricsToken = env.ZIPGATE_METRICS_TOKEN || undefined;
  if (metricsToken !== undefined && Buffer.byteLength(metricsToken) < 16) problems.push("ZIPGATE_METRICS_TOKEN must be at least 16 bytes");
  let metricsListen: { host: string; port: number } | undefined;
  if (env.ZIPGATE_METRICS_LISTEN) {
    const m = /^(.*):(\d{1,5})$/.exec(env.ZIPGATE_METRICS_LISTEN);
    const p = m ? Number(m[2]) : Number.NaN;
    if (!m || p > 65_535) problems.push(`ZIPGATE_METRICS_LISTEN must be host:port (got "${env.ZIPGATE_METRICS_LISTEN}")`);
    else metricsListen = { host: (m[1] as string).replace(/^\[|\]$/g, "") || "127.0.0.1", port: p };
  }

  unread(given, read, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    port,
    host,
    logLevel,
    trustProxy,
    corsOrigins,
    metrics: { token: metricsToken, listen: metricsListen },
    storage,
    apiKeys,
    signingSecret,
    publicUrl,
    domains,
    maxFiles,
    maxBytes,
    ttlSeconds,
    readAhead,
    cacheBytes,
    prepareBudget,
    deflateInlineMax,
    urlAllow,
    jobs,
    limits,
    box,
    state,
  };
}
