import type { ApiKeys } from "../auth.js";
import type { Lifecycle } from "../http/lifecycle.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import type { DownloadLeases } from "../zipball/download-leases.js";
import type { IdIndex } from "../zipball/ids.js";
import type { ProgressStore } from "../zipball/progress.js";
import type { ZipballService } from "../zipball/service.js";

/** What every API flavour is built from. */
export interface ApiDeps {
  service: ZipballService;
  ids: IdIndex;
  keys: ApiKeys;
  logger: Logger;
  /** Base of returned URLs, without a trailing slash. */
  publicUrl: string;
  domains: string[];
  /** Cap on requested items per zipball (the file limit). */
  maxItems: number;
  /** Download progress, for the Box flavour's status. */
  progress: ProgressStore;
  /** Running Box downloads per key, counted across replicas. */
  downloadLeases: DownloadLeases;
  box: BoxOptions;
  /** Download slots, and whether the process is draining. */
  lifecycle: Lifecycle;
  /** A download whose client takes nothing for this long is cut, in ms. */
  sendTimeoutMs: number;
  /** A download slower than this over the window, waiting on its client, is cut (`too_slow`). */
  minRate?: { bytesPerSecond: number; windowMs: number } | undefined;
  /** Answers once the store does (for `/readyz`); throws when it does not. */
  checkStore(): Promise<void>;
  /** This gateway's Prometheus registry and metrics. */
  metrics: Metrics;
  /** Proxies in front appending to X-Forwarded-For (ZIPGATE_TRUST_PROXY); 0 = the socket's peer. */
  trustProxy: number;
  /** Origins browser apps may call from (ZIPGATE_CORS_ORIGINS); empty = no CORS. */
  corsOrigins: string[];
  /**
   * Who may read /metrics on this listener: with a token, whoever sends it as a bearer; with
   * the metrics on their own listener (`separate`), nobody here; else loopback clients only.
   */
  metricsAccess?: { token: string | undefined; separate: boolean } | undefined;
}

export interface BoxOptions {
  /** Lifetime of a download URL before it starts, in seconds. */
  ttlSeconds: number;
  /** Downloads that may run at once per API key, across every replica on the store. */
  maxConcurrent: number;
  /** How long a running download counts after its replica stopped renewing it, in ms. */
  leaseMs: number;
  /** Allow more than one GET of a download URL (resumes with Range). */
  allowResume: boolean;
}

/** Hono variables set by the app for every request. */
export type AppEnv = {
  Variables: {
    requestId: string;
    /** performance.now() when the request came in. */
    startedAt: number;
    /** The client's address: the socket's peer, or X-Forwarded-For as ZIPGATE_TRUST_PROXY says. */
    client: string | undefined;
    /** W3C trace context of the caller (`traceparent`), when well-formed. */
    trace: { trace_id: string; parent_id: string } | undefined;
  };
};
