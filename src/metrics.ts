import type { Readable } from "node:stream";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { GatewayError } from "./errors.js";
import type { ObjectBody, Storage } from "./storage/types.js";

/**
 * Prometheus metrics (prom-client), one registry per gateway: tests start several gateways
 * in one process, and each must count only its own. Instrumented at the seams: the end of a
 * download body (http/download.ts), the storage seam (`instrumentStorage`), the creation
 * routes and the error mapping (app.ts), the job runner.
 */
export interface Metrics {
  readonly registry: Registry;
  readonly downloadsStarted: Counter<"flavour">;
  /** outcome: complete, client_gone, stalled, failed, cut_at_shutdown. */
  readonly downloadsEnded: Counter<"flavour" | "outcome">;
  readonly downloadBytes: Counter<"flavour">;
  readonly downloadDuration: Histogram<"flavour" | "outcome">;
  readonly downloadFirstByte: Histogram<"flavour">;
  /** outcome: created, or the error code of the refusal. */
  readonly creations: Counter<"flavour" | "outcome">;
  readonly storeRequests: Counter<"operation" | "outcome">;
  readonly storeDuration: Histogram<"operation">;
  readonly storeErrors: Counter<"operation" | "code">;
  readonly storeBytes: Counter;
  /** how: streamed (computed while sent), read (an object read for its CRC alone), reused (recorded or the store's). */
  readonly crcs: Counter<"how">;
  readonly jobsFinished: Counter<"status">;
  readonly webhookDeliveries: Counter<"outcome">;
  readonly webhookAttempts: Counter;
  /** reason: the 503/429 code (too_many_downloads_in_flight, shutting_down, too_many_downloads, too_many_downloads_from_client). */
  readonly admissionRefusals: Counter<"reason">;
  /** what: zipballs, orphans, jobs, download_leases, crc_shards removed by state sweeps. */
  readonly swept: Counter<"what">;
  readonly httpRequests: Counter<"method" | "status">;
  /**
   * Object reads that went well and the bytes of small bodies, counted in plain numbers on the
   * hot path (a labelled prom-client inc costs a label hash per call: 10,000 small files a
   * download) and added to storeRequests and storeBytes when scraped.
   */
  readonly pendingReads: { ok: number; bytes: number };
  /** Gauges read when scraped: downloads in flight, this process's jobs by state. */
  observe(sources: { inFlight?: () => number; jobs?: () => Record<string, number> }): void;
}

export interface MetricsOptions {
  /**
   * Also the process's own metrics (CPU, memory, event-loop lag, GC), `process_*` and
   * `nodejs_*`. Once per process: main.ts sets it, tests do not. @default false
   */
  processMetrics?: boolean;
}

const SECONDS_SHORT = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const SECONDS_LONG = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200];

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  const registers = [registry];
  if (options.processMetrics) collectDefaultMetrics({ register: registry });
  const sources: { inFlight?: () => number; jobs?: () => Record<string, number> } = {};
  new Gauge({
    name: "zipgate_downloads_in_flight",
    help: "Archive bodies being sent now (download slots held)",
    registers,
    collect() {
      this.set(sources.inFlight?.() ?? 0);
    },
  });
  new Gauge({
    name: "zipgate_jobs",
    help: "Jobs of this process by state: queued (waiting for a runner slot), processing",
    labelNames: ["state"],
    registers,
    collect() {
      for (const [state, n] of Object.entries(sources.jobs?.() ?? { queued: 0, processing: 0 })) this.set({ state }, n);
    },
  });
  const pendingReads = { ok: 0, bytes: 0 };
  return {
    registry,
    pendingReads,
    downloadsStarted: new Counter({ name: "zipgate_downloads_started_total", help: "Archive bodies started", labelNames: ["flavour"], registers }),
    downloadsEnded: new Counter({
      name: "zipgate_downloads_total",
      help: "Archive bodies ended, by outcome: complete, client_gone (cut by the client), stalled, failed, cut_at_shutdown",
      labelNames: ["flavour", "outcome"],
      registers,
    }),
    downloadBytes: new Counter({
      name: "zipgate_download_bytes_sent_total",
      help: "Archive bytes handed to client sockets",
      labelNames: ["flavour"],
      registers,
    }),
    downloadDuration: new Histogram({
      name: "zipgate_download_duration_seconds",
      help: "From the request to the end of the body",
      labelNames: ["flavour", "outcome"],
      buckets: SECONDS_LONG,
      registers,
    }),
    downloadFirstByte: new Histogram({
      name: "zipgate_download_first_byte_seconds",
      help: "From the request to the first body byte written",
      labelNames: ["flavour"],
      buckets: SECONDS_SHORT,
      registers,
    }),
    creations: new Counter({
      name: "zipgate_creations_total",
      help: "Zipball and job creations (POST), by outcome: created or the error code",
      labelNames: ["flavour", "outcome"],
      registers,
    }),
    storeRequests: new Counter({
      name: "zipgate_store_requests_total",
      help: "Requests to the object store, by operation and outcome (ok, error)",
      labelNames: ["operation", "outcome"],
      registers,
      collect() {
        if (pendingReads.ok > 0) this.inc({ operation: "read", outcome: "ok" }, pendingReads.ok);
        pendingReads.ok = 0;
      },
    }),
    storeDuration: new Histogram({
      name: "zipgate_store_request_duration_seconds",
      help: "Store request latency (read: until the body starts; list: the whole listing)",
      labelNames: ["operation"],
      buckets: SECONDS_SHORT,
      registers,
    }),
    storeErrors: new Counter({
      name: "zipgate_store_errors_total",
      help: "Store requests that failed, by error code",
      labelNames: ["operation", "code"],
      registers,
    }),
    storeBytes: new Counter({
      name: "zipgate_store_read_bytes_total",
      help: "Object bytes read from the store",
      registers,
      collect() {
        if (pendingReads.bytes > 0) this.inc(pendingReads.bytes);
        pendingReads.bytes = 0;
      },
    }),
    crcs: new Counter({
      name: "zipgate_crcs_total",
      help: "CRC-32s by how they were had: streamed (computed while sent), read (object read for its CRC alone), reused (recorded earlier, or the store's)",
      labelNames: ["how"],
      registers,
    }),
    jobsFinished: new Counter({ name: "zipgate_jobs_finished_total", help: "Jobs finished by this process, by status", labelNames: ["status"], registers }),
    webhookDeliveries: new Counter({
      name: "zipgate_webhook_deliveries_total",
      help: "Webhook events, by outcome (delivered, failed after every attempt)",
      labelNames: ["outcome"],
      registers,
    }),
    webhookAttempts: new Counter({ name: "zipgate_webhook_attempts_total", help: "Webhook HTTP attempts, retries included", registers }),
    swept: new Counter({
      name: "zipgate_swept_total",
      help: "State removed by the sweeper (this replica's sweeps): zipballs, orphans, jobs, download_leases, crc_shards",
      labelNames: ["what"],
      registers,
    }),
    admissionRefusals: new Counter({
      name: "zipgate_admission_refusals_total",
      help: "Requests refused for capacity: too_many_downloads_in_flight (503), shutting_down (503), too_many_downloads (Box per-key 429), too_many_downloads_from_client (per-address 429)",
      labelNames: ["reason"],
      registers,
    }),
    httpRequests: new Counter({
      name: "zipgate_http_requests_total",
      help: "HTTP requests answered, probes included",
      labelNames: ["method", "status"],
      registers,
    }),
    observe(given) {
      Object.assign(sources, given);
    },
  };
}

/** The error code a failure is counted under. */
function codeOf(err: unknown): string {
  return err instanceof GatewayError ? err.code : "internal";
}

/**
 * The storage seam with every request counted and timed, and the bytes of object bodies
 * counted as the store delivers them. Nothing else changes: same errors, same bodies.
 */
export function instrumentStorage(storage: Storage, metrics: Metrics): Storage {
  const timed = async <T>(operation: string, run: () => Promise<T>): Promise<T> => {
    const end = metrics.storeDuration.startTimer({ operation });
    try {
      const value = await run();
      metrics.storeRequests.inc({ operation, outcome: "ok" });
      return value;
    } catch (err) {
      metrics.storeRequests.inc({ operation, outcome: "error" });
      metrics.storeErrors.inc({ operation, code: codeOf(err) });
      throw err;
    } finally {
      end();
    }
  };
  const readDuration = metrics.storeDuration.labels("read");
  return {
    get description() {
      return storage.description;
    },
    stat: (key, options) => timed("stat", () => storage.stat(key, options)),
    get: (key, options) => timed("get", () => storage.get(key, options)),
    put: (key, body, options) => timed("put", () => storage.put(key, body, options)),
    delete: (key) => timed("delete", () => storage.delete(key)),
    close: () => storage.close(),
    // The hot path (one call per object of every download): no async wrapper, no timer object.
    read: (key, options) => {
      const started = performance.now();
      return storage.read(key, options).then(
        (body) => {
          readDuration.observe((performance.now() - started) / 1000);
          metrics.pendingReads.ok++;
          return countBytes(body, metrics);
        },
        (err: unknown) => {
          readDuration.observe((performance.now() - started) / 1000);
          metrics.storeRequests.inc({ operation: "read", outcome: "error" });
          metrics.storeErrors.inc({ operation: "read", code: codeOf(err) });
          throw err;
        },
      );
    },
    list: (prefix, options) => timedList(storage.list(prefix, options), metrics),
    // Kept where the store has them: the folder store hashes on its own threads, and says
    // when its disk stops answering.
    ...(storage.crc32
      ? {
          crc32: (key: string, options: { etag: string; signal?: AbortSignal | undefined }) =>
            timed("crc32", () => storage.crc32?.(key, options) as Promise<number>),
        }
      : {}),
    ...(storage.health ? { health: () => storage.health?.() } : {}),
  };
}

async function* timedList<T>(items: AsyncIterable<T>, metrics: Metrics): AsyncGenerator<T> {
  const end = metrics.storeDuration.startTimer({ operation: "list" });
  try {
    yield* items;
    metrics.storeRequests.inc({ operation: "list", outcome: "ok" });
  } catch (err) {
    metrics.storeRequests.inc({ operation: "list", outcome: "error" });
    metrics.storeErrors.inc({ operation: "list", code: codeOf(err) });
    throw err;
  } finally {
    end();
  }
}

/**
 * Counts a body's bytes where the store hands them over (the stream's own `push`), with
 * no extra stream or listener in the data path: a 'data' listener would switch the stream
 * to flowing mode, and a pass-through costs every chunk a hop. Summed into the counter
 * once, when the stream closes.
 */
function countBytes(body: ObjectBody, metrics: Metrics): ObjectBody {
  if (Buffer.isBuffer(body)) {
    metrics.pendingReads.bytes += body.length;
    return body;
  }
  const stream = body as Readable;
  let bytes = 0;
  const push = stream.push;
  stream.push = function (this: Readable, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk !== null && chunk !== undefined) bytes += (chunk as { length?: number }).length ?? 0;
    return push.call(this, chunk, encoding);
  };
  stream.once("close", () => {
    if (bytes > 0) metrics.storeBytes.inc(bytes);
    bytes = 0;
  });
  return stream;
}
