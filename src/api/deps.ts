import type { ApiKeys } from "../auth.js";
import type { Lifecycle } from "../http/lifecycle.js";
import type { Logger } from "../log.js";
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
  /** Answers once the store does (for `/readyz`); throws when it does not. */
  checkStore(): Promise<void>;
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
export type AppEnv = { Variables: { requestId: string } };
