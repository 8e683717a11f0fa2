import { Worker } from "node:worker_threads";
import { StorageUnavailable } from "../errors.js";

/** What the worker reports of a file or folder. `etag` is the version's identity. */
export interface FileStat {
  kind: "file" | "dir" | "other";
  size: number;
  mtimeMs: number;
  etag: string;
}

/** An opened file: its data when it was small enough to read whole, else its descriptor. */
export interface Opened {
  stat: FileStat;
  data?: Uint8Array;
  fd?: number;
}

/** A folder walk, sorted by key in byte order, as columns (keys and etags joined by NUL). */
export interface Listing {
  keys: string;
  etags: string;
  sizes: Float64Array;
  mtimes: Float64Array;
  /** 1 for a file, 0 for a folder. */
  kinds: Uint8Array;
}

type Request =
  | { op: "open"; path: string; start: number; end: number | null; limit: number }
  | { op: "lstat"; path: string }
  | { op: "list"; path: string; prefix: string };

type Reply = { id: number; value?: unknown; error?: { code?: string; message: string } };

/** Requests in one message at most, so one thread's share of a burst stays bounded. */
const MAX_BATCH = 64;
const WORKER_URL = new URL("./fs-worker.js", import.meta.url);

/**
 * Blocking file system calls on worker threads. Requests made in the same turn of the event
 * loop travel as one message (a message costs more than the calls in it), to the thread with
 * the least work in hand. A thread is only referenced while it has work, so it never holds
 * the process open. Pool threads are not terminated while the store is open: under vitest's
 * forks, terminating a worker right after it answered made the test process exit; a walk's
 * thread ends by itself instead.
 */
export class FsWorkers {
  readonly #threads: Thread[] = [];
  #closed = false;

  constructor(private readonly count: number) {}

  /** Opens `path` (no link followed); reads [start, end) whole when it is at most `limit` bytes. */
  open(path: string, start: number, end: number | undefined, limit: number): Promise<Opened> {
    return this.#call({ op: "open", path, start, end: end ?? null, limit });
  }

  lstat(path: string): Promise<FileStat> {
    return this.#call({ op: "lstat", path });
  }

  /**
   * Walks a folder on a thread of its own that ends after answering: a walk of 100,000 files
   * leaves tens of MiB on its thread's heap, which a long-lived thread would keep.
   */
  async list(path: string, prefix: string): Promise<Listing> {
    if (this.#closed) throw new StorageUnavailable("the folder store is closed");
    const walker = new Thread({ once: true });
    const listing = (await walker.call({ op: "list", path, prefix })) as Listing;
    // Answered only once the thread is gone: a process that exits while a worker thread is
    // still ending can abort (seen under vitest's forks).
    await walker.ended;
    return listing;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#threads.splice(0).map((t) => t.stop()));
  }

  #call<T>(req: Request): Promise<T> {
    if (this.#closed) return Promise.reject(new StorageUnavailable("the folder store is closed"));
    return this.#pick().call(req) as Promise<T>;
  }

  #pick(): Thread {
    for (let i = this.#threads.length - 1; i >= 0; i--) if ((this.#threads[i] as Thread).dead) this.#threads.splice(i, 1);
    let best: Thread | undefined;
    for (const t of this.#threads) {
      if (t.queued > 0 && t.queued < MAX_BATCH) return t; // join the message being put together
      if (!best || t.load < best.load) best = t;
    }
    if (best && (best.load === 0 || this.#threads.length >= this.count)) return best;
    const fresh = new Thread();
    this.#threads.push(fresh);
    return fresh;
  }
}

class Thread {
  // No inherited execArgv: the worker needs no flags, and loader hooks of a test runner
  // must not follow it onto its thread.
  readonly #worker: Worker;
  readonly #waiting = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
  #queue: Array<Request & { id: number }> = [];
  #nextId = 0;
  dead = false;
  /** Settles when the thread has ended. */
  readonly ended: Promise<void>;

  /** `once`: the thread answers one message, then ends by itself. */
  constructor(options: { once?: boolean } = {}) {
    this.#worker = new Worker(WORKER_URL, { execArgv: [], workerData: { once: options.once === true } });
    this.#worker.unref();
    this.#worker.on("message", (replies: Reply[]) => this.#settle(replies));
    this.#worker.on("error", (err) => this.#fail(err));
    this.ended = new Promise((resolve) => this.#worker.once("exit", () => resolve()));
    this.#worker.on("exit", (code) => this.#fail(new Error(`the folder store's worker exited (${code})`)));
  }

  /** Requests waiting for the next message. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Requests sent or queued and not answered yet. */
  get load(): number {
    return this.#waiting.size;
  }

  call(req: Request): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      if (this.#waiting.size === 0) this.#worker.ref();
      this.#waiting.set(id, { resolve, reject });
      this.#queue.push({ ...req, id });
      // Sent after the current turn of the event loop: a download that takes the replies of
      // one batch in one turn asks for the next objects in one message as well.
      if (this.#queue.length === 1) setImmediate(() => this.#flush());
    });
  }

  #flush(): void {
    const batch = this.#queue;
    this.#queue = [];
    if (batch.length > 0 && !this.dead) this.#worker.postMessage(batch);
  }

  #settle(replies: Reply[]): void {
    for (const reply of replies) {
      const waiting = this.#waiting.get(reply.id);
      if (!waiting) continue;
      this.#waiting.delete(reply.id);
      if (reply.error) waiting.reject(Object.assign(new Error(reply.error.message), { code: reply.error.code }));
      else waiting.resolve(reply.value);
    }
    if (this.#waiting.size === 0) this.#worker.unref();
  }

  #fail(err: Error): void {
    if (this.dead) return;
    this.dead = true;
    const gone = new StorageUnavailable("the folder store's worker failed", err);
    for (const waiting of this.#waiting.values()) waiting.reject(gone);
    this.#waiting.clear();
    this.#queue = [];
  }

  async stop(): Promise<void> {
    this.#fail(new Error("the folder store was closed"));
    await this.#worker.terminate();
  }
}
