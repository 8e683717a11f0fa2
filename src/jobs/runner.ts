import { randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import type { S3Client } from "@aws-sdk/client-s3";
import type { Destination } from "../config.js";
import { GatewayError, toGatewayError } from "../errors.js";
import { describeError, type Logger } from "../log.js";
import type { RequestedItem } from "../manifest/schema.js";
import type { Metrics } from "../metrics.js";
import { keyFromPath } from "../storage/keys.js";
import { formsView } from "../zipball/forms.js";
import type { ZipballService } from "../zipball/service.js";
import type { JobStore } from "./store.js";
import type { JobRecord } from "./types.js";
import { deliver, type WebhookOptions } from "./webhook.js";

/** Parts of 8 MiB, two in flight: the memory a running job holds for its upload. */
const PART_SIZE = 8 * 1024 * 1024;
const PARTS_IN_FLIGHT = 2;
/** Webhook deliveries in flight per process; they never hold a job slot or a job's lease. */
export const WEBHOOK_CONCURRENCY = 4;

export interface JobRunnerOptions {
  jobs: JobStore;
  service: ZipballService;
  destinations: readonly Destination[];
  logger: Logger;
  /** Jobs processed at once by this process. */
  concurrency: number;
  /** How long a lease on a job lasts without renewal, in ms. */
  leaseMs: number;
  /** How often stored jobs are scanned for ones to (re)run, in ms. @default leaseMs */
  scanMs?: number;
  webhook?: WebhookOptions | undefined;
  /** Jobs finished and webhook deliveries are counted here. */
  metrics?: Metrics | undefined;
  /**
   * The destinations' clients, like the store's: to connect (ZIPGATE_STORE_CONNECT_TIMEOUT),
   * for an answer to each request, a part's upload included (ZIPGATE_STORE_TIMEOUT), and the
   * attempts per request. @default 5 s, 20 s, 4
   */
  destinationTimeouts?: { connectMs: number; requestMs: number; attempts: number } | undefined;
}

/**
 * Runs jobs in the background. Job records live in the store, so a
 * restarted gateway finds every job: queued ones run, and ones that were
 * processing when their process died run again from the start once their
 * lease runs out. A lease (renewed while a job runs) keeps two replicas
 * from running the same job at once.
 */
export class JobRunner {
  readonly #opts: JobRunnerOptions;
  readonly #owner = randomUUID();
  /** Queued jobs per key, and the keys in turn: each key's next job runs before any key's second. */
  readonly #queues = new Map<string, string[]>();
  readonly #queued = new Set<string>();
  readonly #running = new Map<string, AbortController>();
  readonly #clients = new Map<string, S3Client>();
  readonly #hooks: JobRecord[] = [];
  readonly #hooksRunning = new Set<Promise<void>>();
  readonly #hooksStop = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #scannedAll = false;

  constructor(options: JobRunnerOptions) {
    this.#opts = options;
  }

  /** This process's jobs by state, for the `zipgate_jobs` gauge. */
  counts(): { queued: number; processing: number } {
    return { queued: this.#queued.size, processing: this.#running.size };
  }

  destination(bucket: string): Destination | undefined {
    return this.#opts.destinations.find((d) => d.bucket === bucket);
  }

  /** Scans the store now and at intervals. */
  start(): void {
    const scan = (): void => {
      void this.scan().catch((err: unknown) => this.#opts.logger.warn("job scan failed", describeError(err)));
    };
    scan();
    this.#timer = setInterval(scan, this.#opts.scanMs ?? this.#opts.leaseMs);
    this.#timer.unref();
  }

  /**
   * Queues every stored job that is not finished. The first scan of a process reads every
   * job (and marks the unfinished ones pending, for stores written before the marks
   * existed); later scans read only the jobs marked pending, so finished jobs cost nothing.
   */
  async scan(): Promise<void> {
    const { jobs } = this.#opts;
    const full = !this.#scannedAll;
    const ids = full ? (await jobs.ids()).reverse() : await jobs.pendingIds();
    const seen: Array<Pick<JobRecord, "uuid" | "owner">> = [];
    for (const uuid of ids) {
      if (this.#running.has(uuid) || this.#queued.has(uuid)) continue;
      const job = await jobs.get(uuid);
      if (job && full) seen.push(job);
      if (job && (job.status === "none" || job.status === "processing")) {
        if (full) await jobs.mark(uuid);
        this.enqueue(uuid, job.owner);
      } else if (!full) {
        await jobs.unmark(uuid);
      }
    }
    // Jobs written before the per-key index existed get their entries, once.
    if (full && seen.length > 0) await jobs.backfillIndex(seen);
    this.#scannedAll = true;
  }

  /** Queues a job behind its key's other queued jobs; keys take turns. */
  enqueue(uuid: string, owner = ""): void {
    if (this.#stopped || this.#queued.has(uuid) || this.#running.has(uuid)) return;
    const queue = this.#queues.get(owner);
    if (queue) queue.push(uuid);
    else this.#queues.set(owner, [uuid]);
    this.#queued.add(uuid);
    this.#pump();
  }

  /** The next job in turn: the first key's first job, that key then going to the back. */
  #next(): string | undefined {
    for (const [owner, queue] of this.#queues) {
      const uuid = queue.shift();
      this.#queues.delete(owner);
      if (queue.length > 0) this.#queues.set(owner, queue);
      if (uuid !== undefined) {
        this.#queued.delete(uuid);
        return uuid;
      }
    }
    return undefined;
  }

  /** Stops taking jobs; running ones are aborted and their leases released, to run again later. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#queues.clear();
    this.#queued.clear();
    for (const controller of this.#running.values()) controller.abort(new Error("the gateway is stopping"));
    while (this.#running.size > 0) await new Promise((r) => setTimeout(r, 20));
    // Deliveries in flight end their wait and record what they got; queued ones stay "pending".
    this.#hooks.length = 0;
    this.#hooksStop.abort(new Error("the gateway is stopping"));
    await Promise.all(this.#hooksRunning);
    for (const client of this.#clients.values()) client.destroy();
  }

  #pump(): void {
    while (!this.#stopped && this.#running.size < this.#opts.concurrency && this.#queued.size > 0) {
      const uuid = this.#next() as string;
      const controller = new AbortController();
      this.#running.set(uuid, controller);
      void this.#run(uuid, controller.signal)
        .catch((err: unknown) => this.#opts.logger.error("job runner failed", { job: uuid, ...describeError(err) }))
        .finally(() => {
          this.#running.delete(uuid);
          this.#pump();
        });
    }
  }

  async #run(uuid: string, signal: AbortSignal): Promise<void> {
    const { jobs, leaseMs } = this.#opts;
    if (!(await jobs.claim(uuid, this.#owner, leaseMs))) return;
    const renew = setInterval(() => void jobs.renew(uuid, this.#owner, leaseMs).catch(() => {}), Math.max(100, leaseMs / 3));
    try {
      const job = await jobs.get(uuid);
      if (!job || job.status === "succeeded" || job.status === "failed") return;
      job.status = "processing";
      job.started_at = new Date().toISOString();
      job.attempts += 1;
      await jobs.put(job);
      this.#opts.logger.info("job started", { job: uuid, attempt: job.attempts });
      try {
        job.result = await this.#process(job, signal);
        job.status = "succeeded";
        job.error = undefined;
      } catch (err) {
        // Stopping is not a failure: the job stays "processing" and runs again.
        if (signal.aborted && this.#stopped) return;
        job.status = "failed";
        job.error = jobError(err);
        this.#opts.logger.warn("job failed", { job: uuid, code: job.error.code, ...describeError(err) });
      }
      job.completed_at = new Date().toISOString();
      if (this.#opts.webhook) job.webhook = { state: "pending", attempts: 0 };
      await jobs.put(job);
      this.#opts.logger.info("job finished", { job: uuid, status: job.status });
      this.#opts.metrics?.jobsFinished.inc({ status: job.status });
      if (this.#opts.webhook) this.#queueHook(job);
    } finally {
      clearInterval(renew);
      await jobs.release(uuid, this.#owner).catch(() => {});
    }
  }

  /** Queues a finished job's webhook: delivered by the webhook pool, after the job's slot and lease are given back. */
  #queueHook(job: JobRecord): void {
    this.#hooks.push(job);
    queueMicrotask(() => this.#pumpHooks());
  }

  #pumpHooks(): void {
    const webhook = this.#opts.webhook;
    if (!webhook || this.#stopped) return;
    while (this.#hooksRunning.size < WEBHOOK_CONCURRENCY && this.#hooks.length > 0) {
      const job = this.#hooks.shift() as JobRecord;
      const running: Promise<void> = (async () => {
        job.webhook = await deliver(
          { ...webhook, signal: this.#hooksStop.signal },
          { type: job.status === "succeeded" ? "zip.completed" : "zip.failed", data: jobView(job) },
        );
        this.#opts.metrics?.webhookDeliveries.inc({ outcome: job.webhook.state });
        this.#opts.metrics?.webhookAttempts.inc(job.webhook.attempts);
        await this.#opts.jobs.put(job);
      })()
        .catch((err: unknown) => this.#opts.logger.warn("webhook delivery failed", { job: job.uuid, ...describeError(err) }))
        .finally(() => {
          this.#hooksRunning.delete(running);
          this.#pumpHooks();
        });
      this.#hooksRunning.add(running);
    }
  }

  /** Streams the archive into the bucket with a multipart upload; a failure aborts it, leaving no parts. */
  async #process(job: JobRecord, signal: AbortSignal): Promise<NonNullable<JobRecord["result"]>> {
    const dest = this.destination(job.request.bucket_name);
    if (!dest) throw new GatewayError(400, "unknown_bucket", `no destination is configured for bucket ${job.request.bucket_name}`);
    const items: RequestedItem[] = [
      ...job.request.urls.map((u): RequestedItem => ({ type: "url", url: u.url, name: u.filename })),
      ...(job.request.objects ?? []).map((o): RequestedItem => ({ type: "file", key: keyFromPath(o.path, "path"), name: o.filename })),
    ];
    const { body, forms } = await this.#opts.service.build(items, signal);
    let size = 0;
    const counted = Readable.from(
      (async function* () {
        for await (const chunk of body) {
          size += chunk.length;
          yield chunk;
        }
      })(),
    );
    // The SDK is loaded when a job first runs, not by every gateway.
    const [{ AbortMultipartUploadCommand }, { Upload }] = await Promise.all([import("@aws-sdk/client-s3"), import("@aws-sdk/lib-storage")]);
    const client = await this.#client(dest);
    const upload = new Upload({
      client,
      params: {
        Bucket: dest.bucket,
        Key: job.request.key,
        Body: counted,
        ContentType: "application/zip",
        Metadata: job.request.metadata,
      },
      partSize: PART_SIZE,
      queueSize: PARTS_IN_FLIGHT,
      leavePartsOnError: false,
    });
    const onAbort = (): void => void upload.abort().catch(() => {});
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const out = await upload.done();
      return { size, etag: out.ETag ?? "", bucket_name: dest.bucket, key: job.request.key, entry_forms: formsView(forms) };
    } catch (err) {
      counted.destroy();
      // lib-storage aborts the multipart upload on failure; make sure, so no parts are orphaned.
      const uploadId = (upload as unknown as { uploadId?: string }).uploadId;
      if (uploadId) {
        await client.send(new AbortMultipartUploadCommand({ Bucket: dest.bucket, Key: job.request.key, UploadId: uploadId })).catch(() => {});
      }
      throw err;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  async #client(dest: Destination): Promise<S3Client> {
    const { S3Client } = await import("@aws-sdk/client-s3");
    let client = this.#clients.get(dest.bucket);
    if (!client) {
      const { NodeHttpHandler } = await import("@smithy/node-http-handler");
      const t = this.#opts.destinationTimeouts ?? { connectMs: 5_000, requestMs: 20_000, attempts: 4 };
      client = new S3Client({
        region: dest.region,
        endpoint: dest.endpoint,
        forcePathStyle: dest.forcePathStyle,
        credentials: dest.credentials,
        requestChecksumCalculation: "WHEN_REQUIRED",
        responseChecksumValidation: "WHEN_REQUIRED",
        // A destination that never answers fails the job (its upload aborted) instead of
        // holding a job slot for ever; failed requests are retried like the store's.
        maxAttempts: t.attempts,
        requestHandler: new NodeHttpHandler({ connectionTimeout: t.connectMs, requestTimeout: t.requestMs, throwOnRequestTimeout: true }),
      });
      this.#clients.set(dest.bucket, client);
    }
    return client;
  }
}

/** What a failed job reports: which URL, which status. */
function jobError(err: unknown): NonNullable<JobRecord["error"]> {
  const e = toGatewayError(err);
  const details = e.details ?? {};
  const isSource = /^url_|^not_found$|^object_changed$/.test(e.code);
  const isDestination = e.status === 500 && err !== undefined && typeof (err as { $metadata?: unknown }).$metadata === "object";
  return {
    type: isSource ? "source_error" : isDestination ? "destination_error" : e.status >= 500 ? "internal_error" : "invalid_request_error",
    code: isDestination ? "upload_failed" : e.code,
    message: isDestination ? "writing the archive into the bucket failed" : e.message,
    url: (details.url as string | undefined) ?? (Array.isArray(details.missing) ? (details.missing[0] as string) : undefined),
    status: details.status as number | undefined,
  };
}

/** A job as the API shows it. */
export function jobView(job: JobRecord): Record<string, unknown> {
  return {
    uuid: job.uuid,
    status: job.status,
    created_at: job.created_at,
    started_at: job.started_at ?? null,
    completed_at: job.completed_at ?? null,
    attempts: job.attempts,
    bucket_name: job.request.bucket_name,
    key: job.request.key,
    service: job.request.service,
    metadata: job.request.metadata ?? {},
    urls: job.request.urls,
    ...(job.request.objects ? { objects: job.request.objects } : {}),
    result: job.result ?? null,
    error: job.error ?? null,
    webhook: job.webhook ?? null,
  };
}
