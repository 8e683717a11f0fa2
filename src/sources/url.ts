import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { BlockList, isIP, type LookupFunction } from "node:net";
import { PassThrough, type Readable, Transform } from "node:stream";
import ipaddr from "ipaddr.js";
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

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** IPv6 global unicast: no address outside it is public, whatever else it looks like. */
const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR("2000::/3");
/**
 * Inside 2000::/3 and not told apart by ipaddr.js's ranges: IETF protocol assignments
 * (2001::/23, whose public anycast members are not needed here) and the documentation
 * prefix 3fff::/20.
 */
const SPECIAL_V6 = [ipaddr.parseCIDR("2001::/23"), ipaddr.parseCIDR("3fff::/20")];

/**
 * True only for a public unicast address: ipaddr.js's `unicast` range after `process()`
 * (which turns IPv4-mapped IPv6 into IPv4), and for IPv6 also inside 2000::/3. An
 * allowlist: any range not known to be public is refused, NAT64 and IPv4-compatible forms
 * included.
 */
export function isPublicAddress(ip: string): boolean {
  if (!ipaddr.isValid(ip)) return false;
  const addr = ipaddr.process(ip);
  if (addr.range() !== "unicast") return false;
  if (addr.kind() === "ipv4") return true;
  const v6 = addr as ipaddr.IPv6;
  return v6.match(GLOBAL_UNICAST_V6) && !SPECIAL_V6.some((cidr) => v6.match(cidr));
}

/**
 * Fetches http(s) URLs for archives, guarded against server-side request
 * forgery: a host must resolve only to public addresses (or be allowed by
 * the operator), checked at creation and again at every fetch and redirect,
 * and the connection goes to the address that was checked.
 */
export class UrlFetcher {
  readonly #allowed = new BlockList();
  readonly #allowedHosts: string[] = [];
  readonly #maxRedirects: number;
  readonly #connectTimeout: number;
  readonly #idleTimeout: number;

  constructor(options: UrlFetcherOptions = {}) {
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
    if (!ipaddr.isValid(ip)) return false;
    const addr = ipaddr.process(ip).toString();
    if (this.#allowed.check(addr, isIP(addr) === 6 ? "ipv6" : "ipv4") || (addr !== ip && this.#allowed.check(ip, "ipv6"))) return true;
    return isPublicAddress(ip);
  }

  /** A parsed http(s) URL; 400 for anything else. */
  parse(text: unknown): URL {
    let url: URL;
    try {
      url = new URL(String(text));
    } catch {
      throw new GatewayError(400, "invalid_url", `not a URL: ${String(text).split(/[?#]/, 1)[0]?.slice(0, 200)}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:")
      throw new GatewayError(400, "invalid_url", `only http and https URLs can be fetched: ${safeUrl(url)}`);
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
  #request(url: URL, method: string, headers: Record<string, string>, signal?: AbortSignal, body?: string, guarded = true): Promise<IncomingMessage> {
    const host = url.hostname.replace(/^\[|\]$/g, "");
    // Node skips the lookup for address literals: check them here.
    if (guarded && isIP(host) !== 0 && !this.#hostAllowed(host) && !this.addressAllowed(host)) return Promise.reject(notAllowed(url, host));
    const request = url.protocol === "https:" ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(url, { method, headers, signal, ...(guarded ? { lookup: this.#lookup(url) } : {}), agent: false }, resolve);
      req.on("socket", (socket) => {
        const timer = setTimeout(() => req.destroy(new GatewayError(504, "url_timeout", `connecting to ${url.host} timed out`)), this.#connectTimeout);
        socket.once(url.protocol === "https:" ? "secureConnect" : "connect", () => clearTimeout(timer));
        socket.once("close", () => clearTimeout(timer));
      });
      req.setTimeout(this.#idleTimeout, () => req.destroy(new GatewayError(504, "url_timeout", `${url.host} stopped sending`)));
      req.on("error", (err) =>
        reject(err instanceof GatewayError ? err : new GatewayError(502, "url_unavailable", `fetching ${safeUrl(url)} failed`, { cause: err })),
      );
      req.end(body);
    });
  }

  /**
   * One request with a body (a webhook's POST), no redirect followed. `guarded: false` only
   * for an address the operator configured; every address reached from it (a redirect's
   * `Location`) is checked like a URL object's.
   */
  send(url: URL, init: { method: string; headers: Record<string, string>; body?: string; signal?: AbortSignal; guarded: boolean }): Promise<IncomingMessage> {
    return this.#request(url, init.method, init.headers, init.signal, init.body, init.guarded);
  }

  /** Follows redirects (each hop re-checked) up to the limit. */
  async #follow(start: URL, method: string, headers: Record<string, string>, signal?: AbortSignal): Promise<{ res: IncomingMessage; url: URL }> {
    let url = start;
    for (let hop = 0; ; hop++) {
      const res = await this.#request(url, method, headers, signal);
      if (!REDIRECTS.has(res.statusCode ?? 0) || !res.headers.location) return { res, url };
      res.resume();
      if (hop >= this.#maxRedirects) throw new GatewayError(502, "url_unavailable", `more than ${this.#maxRedirects} redirects from ${safeUrl(start)}`);
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
      throw new ObjectChanged(safeUrl(url));
    }
    // Body errors (a reset, a premature end) become the gateway's own, naming the URL.
    const out = range && status === 200 ? skipTo(range.start, range.end) : new PassThrough({ highWaterMark: 256 * 1024 });
    res.on("error", (err) => {
      out.destroy(new GatewayError(502, "url_unavailable", `${safeUrl(url)} failed while sending its body`, { cause: err, details: { url: url.href } }));
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

/**
 * A URL as it may appear in a message or a log line: scheme, host and path, at most 200
 * characters. Query and fragment (presigned signatures, credentials, tokens) never do.
 */
export function safeUrl(url: URL): string {
  const text = `${url.protocol}//${url.host}${url.pathname}`;
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}

function notAllowed(url: URL, address: string | undefined): GatewayError {
  return new GatewayError(400, "url_not_allowed", `${url.host} is not a public address and is not allowed${address ? ` (${address})` : ""}`, {
    details: { url: url.href },
  });
}

function unavailable(url: URL, status: number | undefined): GatewayError {
  return new GatewayError(502, "url_unavailable", `${safeUrl(url)} answered ${status}`, { details: { url: url.href, status } });
}
