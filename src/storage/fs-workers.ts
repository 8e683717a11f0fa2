import { Worker } from "node:worker_threads";
import { StorageUnavailable } from "../errors.js";
import { ANSWER_WIDTH, type Answers, type Batch, KIND_DIR, KIND_FILE, type Listing, OP_LSTAT, OP_OPEN } from "./fs-worker.js";

export type { Listing };

/** What the worker reports of a file or folder. `etag` is the version's identity. */
export interface FileStat {
  kind: "file" | "dir" | "other";
  size: number;
  mtimeMs: number;
  etag: string;
}

/** A file asked for: its range's bytes when the range was small enough to read whole. */
export interface Opened extends FileStat {
  data?: Buffer;
}

/** Requests in one message at most, so one thread's share of a burst stays bounded. */
const MAX_BATCH = 256;
const WORKER_URL = new URL("./fs-worker.js", import.meta.url);
const KINDS = { [KIND_FILE]: "file", [KIND_DIR]: "dir" } as Record<number, "file" | "dir">;

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

  /** Stats `path` through an open descriptor (no link followed); reads [start, end) whole when it is at most `limit` bytes. */
  open(path: string, start: number, end: number | undefined, limit: number): Promise<Opened> {
    return this.#call(OP_OPEN, path, start, end ?? -1, limit);
  }

  lstat(path: string): Promise<FileStat> {
    return this.#call(OP_LSTAT, path, 0, -1, 0);
  }

  /**
   * Walks a folder on a thread of its own that ends after answering: a walk of 100,000 files
   * leaves tens of MiB on its thread's heap, which a long-lived thread would keep.
   */
  async list(path: string, prefix: string): Promise<Listing> {
    if (this.#closed) throw new StorageUnavailable("the folder store is closed");
    const walker = new Worker(WORKER_URL, { execArgv: [], workerData: { list: { path, prefix } } });
    const ended = new Promise<number>((resolve) => walker.once("exit", resolve));
    const answer = await new Promise<{ listing?: Listing; error?: { code?: string; message: string } }>((resolve, reject) => {
      walker.once("message", resolve);
      walker.once("error", (err) => reject(new StorageUnavailable("the folder store's worker failed", err)));
      void ended.then((code) => reject(new StorageUnavailable(`the folder store's worker exited (${code}) without answering`)));
    });
    // Answered only once the thread is gone: a process that exits while a worker thread is
    // still ending can abort (seen under vitest's forks).
    await ended;
    if (answer.error) throw Object.assign(new Error(answer.error.message), { code: answer.error.code });
    return answer.listing as Listing;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#threads.splice(0).map((t) => t.stop()));
  }

  #call<T>(op: number, path: string, start: number, end: number, limit: number): Promise<T> {
    if (this.#closed) return Promise.reject(new StorageUnavailable("the folder store is closed"));
    return this.#pick().call(op, path, start, end, limit) as Promise<T>;
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

interface Waiter {
  resolve: (value: FileStat | Opened) => void;
  reject: (err: Error) => void;
}

class Thread {
  // No inherited execArgv: the worker needs no flags, and loader hooks of a test runner
  // must not follow it onto its thread.
  readonly #worker = new Worker(WORKER_URL, { execArgv: [] });
  /** The batch being put together, as the columns it is sent as. */
  #ops: number[] = [];
  #paths: string[] = [];
  #nums: number[] = [];
  #waiters: Waiter[] = [];
  /** Batches sent and not answered, oldest first: the worker answers them in order. */
  readonly #sent: Waiter[][] = [];
  #load = 0;
  dead = false;

  constructor() {
    this.#worker.unref();
    this.#worker.on("message", (answers: Answers) => this.#settle(answers));
    this.#worker.on("error", (err) => this.#fail(err));
    this.#worker.on("exit", (code) => this.#fail(new Error(`the folder store's worker exited (${code})`)));
  }

  /** Requests waiting for the next message. */
  get queued(): number {
    return this.#waiters.length;
  }

  /** Requests sent or queued and not answered yet. */
  get load(): number {
    return this.#load;
  }

  call(op: number, path: string, start: number, end: number, limit: number): Promise<FileStat | Opened> {
    return new Promise((resolve, reject) => {
      if (this.#load++ === 0) this.#worker.ref();
      this.#ops.push(op);
      this.#paths.push(path);
      this.#nums.push(start, end, limit);
      this.#waiters.push({ resolve, reject });
      // Sent after the current turn of the event loop: a download that takes the answers of
      // one batch in one turn asks for the next objects in one message as well.
      if (this.#waiters.length === 1) setImmediate(() => this.#flush());
    });
  }

  #flush(): void {
    if (this.#waiters.length === 0 || this.dead) return;
    const batch: Batch = { ops: Uint8Array.from(this.#ops), paths: this.#paths.join("\0"), nums: Float64Array.from(this.#nums) };
    this.#sent.push(this.#waiters);
    this.#ops = [];
    this.#paths = [];
    this.#nums = [];
    this.#waiters = [];
    this.#worker.postMessage(batch, [batch.ops.buffer, batch.nums.buffer]);
  }

  #settle({ nums, etags, data, errors }: Answers): void {
    const waiters = this.#sent.shift();
    if (!waiters) return;
    const tags = etags.split("\0");
    for (const [i, w] of waiters.entries()) {
      const error = errors?.[i];
      if (error) {
        w.reject(Object.assign(new Error(error.message), { code: error.code }));
        continue;
      }
      const at = i * ANSWER_WIDTH;
      const stat: Opened = {
        kind: KINDS[nums[at] as number] ?? "other",
        size: nums[at + 1] as number,
        mtimeMs: nums[at + 2] as number,
        etag: tags[i] as string,
      };
      const length = nums[at + 4] as number;
      if (length >= 0) stat.data = data ? Buffer.from(data, nums[at + 3] as number, length) : Buffer.alloc(0);
      w.resolve(stat);
    }
    this.#load -= waiters.length;
    if (this.#load === 0) this.#worker.unref();
  }

  #fail(err: Error): void {
    if (this.dead) return;
    this.dead = true;
    const gone = new StorageUnavailable("the folder store's worker failed", err);
    for (const w of [...this.#sent.flat(), ...this.#waiters]) w.reject(gone);
    this.#sent.length = 0;
    this.#waiters = [];
    this.#load = 0;
  }

  async stop(): Promise<void> {
    this.#fail(new Error("the folder store was closed"));
    await this.#worker.terminate();
  }
}
