import { createApp } from "./app.js";
import { ApiKeys } from "./auth.js";
import type { Config } from "./config.js";
import { StorageTimeout } from "./errors.js";
import { Lifecycle } from "./http/lifecycle.js";
import { JobRunner } from "./jobs/runner.js";
import { JobStore } from "./jobs/store.js";
import type { Logger } from "./log.js";
import { ZipballStore } from "./manifest/store.js";
import { ManifestSigner } from "./manifest/token.js";
import { createMetrics, instrumentStorage, type Metrics } from "./metrics.js";
import { loadSecrets } from "./secrets.js";
import { UrlFetcher } from "./sources/url.js";
import { RESERVED_PREFIX } from "./storage/keys.js";
import type { Storage } from "./storage/types.js";
import { CrcBook } from "./zipball/crcs.js";
import { DownloadLeases } from "./zipball/download-leases.js";
import { IdIndex } from "./zipball/ids.js";
import { ObjectCrcIndex } from "./zipball/object-crcs.js";
import { ProgressStore } from "./zipball/progress.js";
import { ZipballService } from "./zipball/service.js";
import { Sweeper } from "./zipball/sweeper.js";

export interface GatewayOptions {
  /** The gateway's metrics registry. @default a new one, without process metrics */
  metrics?: Metrics;
}

/** Wires a gateway from a configuration and a store; used by main.ts and the tests. */
export async function createGateway(config: Config, given: Storage, logger: Logger, options: GatewayOptions = {}) {
  const metrics = options.metrics ?? createMetrics();
  // Every store request of this gateway is counted and timed at the seam.
  const storage = instrumentStorage(given, metrics);
  const secrets = await loadSecrets(storage, config);
  const zipballs = new ZipballStore({
    storage,
    signer: new ManifestSigner(secrets.signingSecret),
    cacheBytes: config.cacheBytes / 2,
    cacheTtlMs: config.state.cacheTtlMs,
  });
  const urls = new UrlFetcher({ allow: config.urlAllow });
  const lifecycle = new Lifecycle(config.limits.maxDownloads, config.limits.maxDownloadsPerClient);
  const service = new ZipballService({
    storage,
    zipballs,
    maxFiles: config.maxFiles,
    maxBytes: config.maxBytes,
    ttlSeconds: config.ttlSeconds,
    readAhead: config.readAhead,
    idleTimeoutMs: config.limits.storeTimeoutMs,
    cacheBytes: config.cacheBytes / 2,
    prepareBudget: config.prepareBudget,
    deflateInlineMax: config.deflateInlineMax,
    urls,
    crcs: new CrcBook(storage, secrets.signingSecret),
    objectCrcs: new ObjectCrcIndex({ storage, secret: secrets.signingSecret }),
    logger,
    metrics,
    admit: () => lifecycle.admit(),
  });
  const jobs = new JobStore(storage);
  const runner = new JobRunner({
    jobs,
    service,
    destinations: config.jobs.destinations,
    logger,
    concurrency: config.jobs.concurrency,
    leaseMs: config.jobs.leaseMs,
    webhook: config.jobs.webhook && { ...config.jobs.webhook, urls },
    destinationTimeouts: { connectMs: config.limits.storeConnectTimeoutMs, requestMs: config.limits.storeTimeoutMs, attempts: 4 },
    metrics,
  });
  const sweeper = new Sweeper({
    storage,
    logger,
    intervalMs: config.state.sweepIntervalMs,
    rate: config.state.sweepRate,
    jobRetentionMs: config.state.jobRetentionMs,
    crcRetentionMs: config.state.crcRetentionMs,
    onSwept: (what, n) => {
      if (n > 0) metrics.swept.inc({ what }, n);
    },
  });
  metrics.observe({ inFlight: () => lifecycle.inFlight, jobs: () => runner.counts() });
  const deps: Parameters<typeof createApp>[0] = {
    service,
    ids: new IdIndex(storage),
    keys: new ApiKeys(secrets.apiKeys),
    logger,
    publicUrl: config.publicUrl,
    domains: config.domains,
    maxItems: config.maxFiles,
    progress: new ProgressStore(storage),
    downloadLeases: new DownloadLeases(storage, config.box.leaseMs),
    box: config.box,
    jobs,
    runner,
    urls,
    lifecycle,
    sendTimeoutMs: config.limits.sendTimeoutMs,
    minRate: config.limits.minRate,
    metrics,
    trustProxy: config.trustProxy,
    corsOrigins: config.corsOrigins,
    metricsAccess: { token: config.metrics.token, separate: config.metrics.listen !== undefined },
    // One small read of the gateway's own prefix: absent is an answer too.
    checkStore: async () => {
      // Threads stuck on a disk that does not answer: not ready until they are back.
      const unhealthy = storage.health?.();
      if (unhealthy !== undefined) throw new StorageTimeout(unhealthy);
      await storage.get(`${RESERVED_PREFIX}ready`, { signal: AbortSignal.timeout(config.limits.storeTimeoutMs) });
    },
  };
  const app = createApp(deps);
  /** The base of returned URLs, once the listener's port is known (PORT=0 without ZIPGATE_PUBLIC_URL). */
  const setPublicUrl = (url: string): void => {
    deps.publicUrl = url;
  };
  return { app, service, secrets, runner, sweeper, lifecycle, metrics, setPublicUrl };
}
