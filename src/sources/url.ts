import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { BlockList, isIP, type LookupFunction } from "node:net";
import { PassThrough, type Readable, Transform } from "node:stream";
import { GatewayError, ObjectChanged } from "../errors.js";

export interface UrlFetcherOptions {
  /**
   * Hosts (`files.example.com`, `*.example.com`) and addresses or CIDRs
   * (`127.0.0.1`, `10.0.0.0/8`, `::1`) that may be fetched although not public.
   * @default []
   */
  allow?: readonly string[];
  /** @default 5 */
  maxRedirects?: number;
  /** Time to connect (and finish TLS), in ms. @default 10000 */
  connectTimeoutMs?: number;
  /** Longest silence on a connection, in ms. @default 30000 */
  idleTimeoutMs?: number;
}

/** What a URL looked like when a zipball or job was created. */
export interface UrlInfo {
  /** Length in bytes, when the origin told it. */
  size: number | undefined;
  etag: string | undefined;
  lastModifiedMs: number | undefined;
}

const NON_PUBLIC_V4 = [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.88.99.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
] as const;
const NON_PUBLIC_V6 = [
  ["::", 128],
  ["::1", 128],
  ["100::", 64],
  ["2001::", 23],
  ["2001:db8::", 32],
  ["2002::", 16],
  ["fc00::", 7],
  ["fe80::", 10],
  ["ff00::", 8],
] as const;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** The eight 16-bit groups of an IPv6 address (a dotted IPv4 tail included). */
function groupsV6(ip: string): number[] | undefined {
  let text = ip.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const fill = tail === undefined ? 0 : 8 - left.length - right.length;
  const groups = [...left, ...Array(Math.max(0, fill)).fill("0"), ...right].map((g) => Number.parseInt(g, 16));
  return groups.length === 8 && groups.every((g) => g >= 0 && g <= 0xffff) ? groups : undefined;
}

/** IPv4 embedded in an IPv4-mapped (::ffff:0:0/96) or NAT64 (64:ff9b::/96) IPv6 address. */
function embeddedV4(ip: string): string | undefined {
  if (isIP(ip) !== 6) return undefined;
  const g = groupsV6(ip);
  if (!g) return undefined;
  const mapped = g.slice(0, 6).join(",") === "0,0,0,0,0,65535";
  const nat64 = g.slice(0, 6).join(",") === "100,65435,0,0,0,0";
  if (!mapped && !nat64) return undefined;
  const [hi, lo] = [g[6] as number, g[7] as number];
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
}

/**
 * Fetches http(s) URLs for archives, guarded against server-side request
 * forgery: a host must resolve only to public addresses (or be allowed by
 * the operator), checked at creation and again at every fetch and redirect,
 * and the connection goes to the address that was checked.
 */
export class UrlFetcher {
  readonly #denied = new BlockList();
  readonly #allowed = new BlockList();
  readonly #allowedHosts: string[] = [];
  readonly #maxRedirects: number;
  readonly #connectTimeout: number;
  readonly #idleTimeout: number;

  constructor(options: UrlFetcherOptions = {}) {
    for (const [net, bits] of NON_PUBLIC_V4) this.#denied.addSubnet(net, bits, "ipv4");
    for (const [net, bits] of NON_PUBLIC_V6) this.#denied.addSubnet(net, bits, "ipv6");
    for (const entry of options.allow ?? []) {
      const [addr = "", bits] = entry.split("/");
      const family = isIP(addr);
      if (family === 0) this.#allowedHosts.push(entry.toLowerCase());
      else this.#allowed.addSubnet(addr, bits === undefined ? (family === 4 ? 32 : 128) : Number(bits), family === 4 ? "ipv4" : "ipv6");
    }
    this.#maxRedirects = options.maxRedirects ?? 5;
    this.#connectTimeout = options.connectTimeoutMs ?? 10_000;
    this.#idleTimeout = options.idleTimeoutMs ?? 30_000;
  }

  #hostAllowed(host: string): boolean {
    const h = host.toLowerCase();
    return this.#allowedHosts.some((a) => a === h || (a.startsWith("*.") && h.endsWith(a.slice(1))));
  }

  /** Whether an address may be connected to. */
  addressAllowed(ip: string): boolean {
    const v4 = embeddedV4(ip);
    const family = v4 ? "ipv4" : isIP(ip) === 6 ? "ipv6" : "ipv4";
    const addr = v4 ?? ip;
    if (this.#allowed.check(addr, family)) return true;
    return !this.#denied.check(addr, family);
  }

  /** A parsed http(s) URL; 400 for anything else. */
  parse(text: unknown): URL {
    let url: URL;
    try {
      url = new URL(String(text));
    } catch {
      throw new GatewayError(400, "invalid_url", `not a URL: ${String(text).slice(0, 200)}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:")
      throw new GatewayError(400, "invalid_url", `only http and https URLs can be fetched: ${url.href}`);
    if (url.username || url.password) throw new GatewayError(400, "invalid_url", "URLs with credentials are not accepted");
    return url;
  }

  /** Resolves the host and refuses it unless every address is allowed (400 url_not_allowed). */
  async check(url: URL): Promise<void> {
    const host = url.hostname.replace(/^\[|\]$/g, "");
    if (isIP(host) !== 0) {
      if (!this.#hostAllowed(host) && !this.addressAllowed(host)) throw notAllowed(url, host);
      return;
    }
    await new Promise<void>((resolve, reject) => {
      this.#lookup(url)(url.hostname, { all: true }, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** A DNS lookup that refuses non-public answers: the socket connects only to checked addresses. */
  #lookup(url: URL): LookupFunction {
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const byName = this.#hostAllowed(host);
    return (hostname, options, callback) => {
      dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
        if (err) return callback(new GatewayError(400, "url_unavailable", `cannot resolve ${hostname}`, { cause: err }), "", 4);
        const refused = addresses.find((a) => !byName && !this.addressAllowed(a.address));
        if (refused || addresses.length === 0) return callback(notAllowed(url, refused?.address), "", 4);
        if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
        const first = addresses[0] as LookupAddress;
        callback(null, first.address, first.family);
      });
    };
  }

  /** One request, no redirects followed; guarded and timed. */
  #request(url: URL, method: string, headers: Record<string, string>, signal?: AbortSignal): Promise<IncomingMessage> {
    const host = url.hostname.replace(/^\[|\]$/g, "");
    // Node skips the lookup for address literals: check them here.
    if (isIP(host) !== 0 && !this.#hostAllowed(host) && !this.addressAllowed(host)) return Promise.reject(notAllowed(url, host));
    const request = url.protocol === "https:" ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(url, { method, headers, signal, lookup: this.#lookup(url), agent: false }, resolve);
      req.on("socket", (socket) => {
        const timer = setTimeout(() => req.destroy(new GatewayError(504, "url_timeout", `connecting to ${url.host} timed out`)), this.#connectTimeout);
        socket.once(url.protocol === "https:" ? "secureConnect" : "connect", () => clearTimeout(timer));
        socket.once("close", () => clearTimeout(timer));
      });
      req.setTimeout(this.#idleTimeout, () => req.destroy(new GatewayError(504, "url_timeout", `${url.host} stopped sending`)));
      req.on("error", (err) =>
        reject(err instanceof GatewayError ? err : new GatewayError(502, "url_unavailable", `fetching ${url.href} failed`, { cause: err })),
      );
      req.end();
    });
  }

  /** Follows redirects (each hop re-checked) up to the limit. */
  async #follow(start: URL, method: string, headers: Record<string, string>, signal?: AbortSignal): Promise<{ res: IncomingMessage; url: URL }> {
    let url = start;
    for (let hop = 0; ; hop++) {
      const res = await this.#request(url, method, headers, signal);
      if (!REDIRECTS.has(res.statusCode ?? 0) || !res.headers.location) return { res, url };
      res.resume();
      if (hop >= this.#maxRedirects) throw new GatewayError(502, "url_unavailable", `more than ${this.#maxRedirects} redirects from ${start.href}`);
      url = this.parse(new URL(res.headers.location, url).href);
    }
  }

  /** Size, ETag and mtime of a URL, from a HEAD, or a one-byte ranged GET when HEAD tells too little. */
  async probe(url: URL, signal?: AbortSignal): Promise<UrlInfo> {
    const head = await this.#follow(url, "HEAD", {}, signal);
    head.res.resume();
    const ok = (head.res.statusCode ?? 0) >= 200 && (head.res.statusCode ?? 0) < 300;
    if (ok && head.res.headers["content-length"] !== undefined) return infoOf(head.res, Number(head.res.headers["content-length"]));
    if (!ok && head.res.statusCode !== 405 && head.res.statusCode !== 501) throw unavailable(url, head.res.statusCode);
    const get = await this.#follow(url, "GET", { range: "bytes=0-0" }, signal);
    get.res.destroy();
    if (get.res.statusCode === 206) {
      const total = /\/(\d+)$/.exec(String(get.res.headers["content-range"] ?? ""))?.[1];
      return infoOf(get.res, total === undefined ? undefined : Number(total));
    }
    if (get.res.statusCode === 200) {
      const length = get.res.headers["content-length"];
      return infoOf(get.res, length === undefined ? undefined : Number(length));
    }
    throw unavailable(url, get.res.statusCode);
  }

  /**
   * The body of a URL, or of a byte range of it. A status other than the
   * expected one, or a different ETag than pinned, is an error; the length
   * is checked by the caller as the bytes flow.
   */
  async open(
    url: URL,
    options: { range?: { start: number; end: number } | undefined; etag?: string | undefined; signal?: AbortSignal | undefined },
  ): Promise<Readable> {
    const { range } = options;
    const headers: Record<string, string> = range ? { range: `bytes=${range.start}-${range.end - 1}` } : {};
    const { res } = await this.#follow(url, "GET", headers, options.signal);
    const status = res.statusCode ?? 0;
    if (status !== 200 && status !== 206) {
      res.resume();
      throw unavailable(url, status);
    }
    const etag = res.headers.etag;
    if (options.etag !== undefined && etag !== undefined && etag !== options.etag) {
      res.destroy();
      throw new ObjectChanged(url.href);
    }
    // Body errors (a reset, a premature end) become the gateway's own, naming the URL.
    const out = range && status === 200 ? skipTo(range.start, range.end) : new PassThrough({ highWaterMark: 256 * 1024 });
    res.on("error", (err) => {
      out.destroy(new GatewayError(502, "url_unavailable", `${url.href} failed while sending its body`, { cause: err, details: { url: url.href } }));
    });
    out.on("close", () => {
      if (!res.complete) res.destroy();
    });
    res.pipe(out);
    return out;
  }
}

function infoOf(res: IncomingMessage, size: number | undefined): UrlInfo {
  const modified = res.headers["last-modified"] ? Date.parse(res.headers["last-modified"]) : Number.NaN;
  return {
    size: size !== undefined && Number.isSafeInteger(size) && size >= 0 ? size : undefined,
    etag: res.headers.etag?.startsWith("W/") ? undefined : res.headers.etag,
    lastModifiedMs: Number.isNaN(modified) ? undefined : modified,
  };
}

/** For an origin that ignores Range: drop bytes before `start`, stop at `end`. */
function skipTo(start: number, end: number): Transform {
  let at = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      const from = Math.max(0, start - at);
      const to = Math.min(chunk.length, end - at);
      at += chunk.length;
      done(null, from < to ? chunk.subarray(from, to) : undefined);
    },
  });
}

function notAllowed(url: URL, address: string | undefined): GatewayError {
  return new GatewayError(400, "url_not_allowed", `${url.host} is not a public address and is not allowed${address ? ` (${address})` : ""}`, {
    details: { url: url.href },
  });
}

function unavailable(url: URL, status: number | undefined): GatewayError {
  return new GatewayError(502, "url_unavailable", `${url.href} answered ${status}`, { details: { url: url.href, status } });
}
