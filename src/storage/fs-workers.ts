import { Worker } from "node:worker_threads";
import { StorageTimeout, StorageUnavailable } from "../errors.js";
import { ANSWER_WIDTH, type Answers, type Batch, KIND_DIR, KIND_FILE, type Listing, OP_LSTAT, OP_OPEN, RETIRE_AFTER } from "./fs-worker.js";

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
/**
 * A message is sent at once when it holds this many requests, not at the end of the turn: a
 * download that takes a batch of answers in one turn asks for the next objects as it goes,
 * so the threads read them while the main thread sends the others (with one message per
 * turn, the two took turns: 10,000 small files in 232 ms a download, against 170 ms).
 */
const SEND_AT = 32;
/** Requests in hand past which the next one goes to another thread (or makes one): a download reads up to 256 small objects ahead. */
const SPREAD_AT = 8 * SEND_AT;
const WORKER_URL = new URL("./fs-worker.js", import.meta.url);
const KINDS = { [KIND_FILE]: "file", [KIND_DIR]: "dir" } as Record<number, "file" | "dir">;
/**
 * Threads left stuck in a system call at most: past it, requests fail at once rather than
 * start more threads for a disk that does not answer.
 */
const MAX_STUCK = 8;

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
  readonly #walkers: Walker[] = [];
  readonly #waiting: QueuedWalk[] = [];
  #closed = false;
  /** Threads given up on, by their exit: stuck in a read until the disk answers. */
  readonly #stuck = new Set<Promise<unknown>>();
  #watchdog: NodeJS.Timeout | undefined;

  /**
   * @param count threads for opens and stats
   * @param walkers threads for folder walks, which also bounds the walks run at once
   * @param timeoutMs a request a thread has not answered in this long (a hung disk: the thread
   *   sits in a read) fails with StorageTimeout; the thread is given up and replaced, and
   *   counts as stuck until its read returns. A cancelled walk or CRC still running this long
   *   after its cancel gives its thread up too. None: no limit.
   */
  constructor(
    private readonly count: number,
    private readonly walkers = 2,
    timeoutMs?: number,
  ) {
    if (timeoutMs !== undefined && timeoutMs > 0) {
      this.#watchdog = setInterval(() => this.#watch(timeoutMs), Math.max(50, Math.min(1000, timeoutMs / 4)));
      this.#watchdog.unref();
    }
  }

  /** Threads stuck in a system call the disk has not answered (given up, not yet ended). */
  get stuck(): number {
    return this.#stuck.size;
  }

  #watch(timeoutMs: number): void {
    const now = performance.now();
    for (const t of this.#threads) {
      if (!t.dead && t.waitingSince !== undefined && now - t.waitingSince > timeoutMs) {
        this.#stuckUntil(t.abandon(new StorageTimeout(`the folder store's disk did not answer within ${timeoutMs / 1000} s`)));
      }
    }
    for (const w of this.#walkers) {
      if (!w.dead && w.cancelledSince !== undefined && now - w.cancelledSince > timeoutMs) {
        this.#stuckUntil(w.abandon());
        this.#nextWalk();
      }
    }
  }

  /** Counts a thread given up on as stuck until it has exited. */
  #stuckUntil(exited: Promise<unknown>): void {
    this.#stuck.add(exited);
    void exited.finally(() => this.#stuck.delete(exited));
  }

  /** Stats `path` through an open descriptor (no link followed); reads [start, end) whole when it is at most `limit` bytes. */
  open(path: string, start: number, end: number | undefined, limit: number): Promise<Opened> {
    return this.#call(OP_OPEN, path, start, end ?? -1, limit);
  }

  lstat(path: string): Promise<FileStat> {
    return this.#call(OP_LSTAT, path, 0, -1, 0);
  }

  /**
   * Walks a folder on one of the walker threads (at most `walkers` walks at once; more wait
   * their turn). A walk stops past `limit` files, and is cancelled when `signal` aborts,
   * whether it waits or runs.
   */
  list(path: string, prefix: string, options: { limit?: number | undefined; signal?: AbortSignal | undefined } = {}): Promise<Listing> {
    return this.#long((cancel) => ({ path, prefix, limit: options.limit ?? Number.MAX_SAFE_INTEGER, cancel }), options.signal) as Promise<Listing>;
  }

  /**
   * The CRC-32 of the whole file at `path`, which must be the version `etag` (and stay it while
   * read), computed on a walker thread: its bytes never cross to the main thread. Cancelled
   * when `signal` aborts, whether it waits or runs (within one 1 MiB read).
   */
  crc(path: string, etag: string, signal?: AbortSignal): Promise<number> {
    return this.#long((cancel) => ({ crc: true, path, etag, cancel }), signal) as Promise<number>;
  }

  /** Queues a long task (a walk or a CRC) for the walker threads. */
  #long(message: (cancel: Int32Array) => LongMessage, signal: AbortSignal | undefined): Promise<Listing | number> {
    if (this.#closed) return Promise.reject(new StorageUnavailable("the folder store is closed"));
    if (this.#stuck.size >= MAX_STUCK) return Promise.reject(new StorageTimeout("the folder store's disk is not answering"));
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<Listing | number>((resolve, reject) => {
      const cancel = new Int32Array(new SharedArrayBuffer(4));
      const walk: QueuedWalk = { message: message(cancel), cancel, resolve, reject };
      const onAbort = (): void => {
        Atomics.store(cancel, 0, 1);
        walk.cancelledAt = performance.now();
        const queued = this.#waiting.indexOf(walk);
        if (queued >= 0) this.#waiting.splice(queued, 1);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      walk.done = () => signal?.removeEventListener("abort", onAbort);
      this.#waiting.push(walk);
      this.#nextWalk();
    });
  }

  /** Starts waiting walks on idle walker threads, making threads up to the limit. */
  #nextWalk(): void {
    while (this.#waiting.length > 0 && !this.#closed) {
      let walker = this.#walkers.find((w) => !w.busy && !w.dead);
      if (!walker) {
        for (let i = this.#walkers.length - 1; i >= 0; i--) if ((this.#walkers[i] as Walker).dead) this.#walkers.splice(i, 1);
        if (this.#walkers.length >= this.walkers) return;
        walker = new Walker(() => this.#nextWalk());
        this.#walkers.push(walker);
      }
      walker.run(this.#waiting.shift() as QueuedWalk);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#watchdog);
    const gone = new StorageUnavailable("the folder store is closed");
    for (const w of this.#waiting.splice(0)) w.reject(gone);
    await Promise.all([...this.#threads.splice(0).map((t) => t.stop()), ...this.#walkers.splice(0).map((w) => w.stop())]);
  }

  #call<T>(op: number, path: string, start: number, end: number, limit: number): Promise<T> {
    if (this.#closed) return Promise.reject(new StorageUnavailable("the folder store is closed"));
    if (this.#stuck.size >= MAX_STUCK) return Promise.reject(new StorageTimeout("the folder store's disk is not answering"));
    return this.#pick().call(op, path, start, end, limit) as Promise<T>;
  }

  #pick(): Thread {
    for (let i = this.#threads.length - 1; i >= 0; i--) if ((this.#threads[i] as Thread).dead) this.#threads.splice(i, 1);
    for (const t of this.#threads) if (t.queued > 0 && t.queued < MAX_BATCH) return t; // join the message being put together
    // The first thread without a backlog, in order: one download's stream of small files goes
    // faster on one thread than spread over two on a two-core machine (a message to a sleeping
    // thread wakes it, and the two then share the cores with the main thread: 10,000 small
    // files in 145 instead of 165 ms a download). Many downloads, or a slow disk, build the
    // backlog that brings the others in.
    let best: Thread | undefined;
    for (const t of this.#threads) {
      if (t.load < SPREAD_AT) return t;
      if (!best || t.load < best.load) best = t;
    }
    if (best && this.#threads.length >= this.count) return best;
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
  /** When each batch in `#sent` was sent, oldest first. */
  readonly #sentAt: number[] = [];
  #load = 0;
  dead = false;
  readonly exited: Promise<number>;

  constructor() {
    this.exited = new Promise((resolve) => this.#worker.once("exit", resolve));
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
      else if (this.#waiters.length >= SEND_AT) this.#flush();
    });
  }

  #flush(): void {
    if (this.#waiters.length === 0 || this.dead) return;
    const batch: Batch = { ops: Uint8Array.from(this.#ops), paths: this.#paths.join("\0"), nums: Float64Array.from(this.#nums) };
    this.#sent.push(this.#waiters);
    this.#sentAt.push(performance.now());
    this.#ops = [];
    this.#paths = [];
    this.#nums = [];
    this.#waiters = [];
    this.#worker.postMessage(batch, [batch.ops.buffer, batch.nums.buffer]);
  }

  /** When the oldest unanswered batch was sent; undefined when none waits. */
  get waitingSince(): number | undefined {
    return this.#sentAt[0];
  }

  /**
   * Gives the thread up (its disk does not answer): what it was asked fails with `err`, it
   * takes nothing more, and it is told to end, which it does once its read returns.
   * Resolves when it has.
   */
  abandon(err: Error): Promise<unknown> {
    if (this.dead) return this.exited;
    this.dead = true;
    for (const w of [...this.#sent.flat(), ...this.#waiters]) w.reject(err);
    this.#sent.length = 0;
    this.#sentAt.length = 0;
    this.#waiters = [];
    this.#load = 0;
    this.#worker.unref();
    void this.#worker.terminate().catch(() => {});
    return this.exited;
  }

  #settle({ nums, etags, data, errors }: Answers): void {
    const waiters = this.#sent.shift();
    this.#sentAt.shift();
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
      if (length >= 0) {
        const piece = data?.[nums[at + 5] as number];
        stat.data = piece ? Buffer.from(piece, nums[at + 3] as number, length) : Buffer.alloc(0);
      }
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
    this.#sentAt.length = 0;
    this.#waiters = [];
    this.#load = 0;
  }

  async stop(): Promise<void> {
    this.#fail(new Error("the folder store was closed"));
    await this.#worker.terminate();
  }
}

/** What a walker thread is sent: a walk, or a CRC of one file (fs-worker.js). */
type LongMessage = { path: string; prefix: string; limit: number; cancel: Int32Array } | { crc: true; path: string; etag: string; cancel: Int32Array };

interface QueuedWalk {
  message: LongMessage;
  cancel: Int32Array;
  resolve: (answer: Listing | number) => void;
  reject: (err: unknown) => void;
  done?: () => void;
  /** When its caller cancelled it (performance.now()). */
  cancelledAt?: number;
}

type LongAnswer = { listing?: Listing; crc?: number; error?: { code?: string; message: string } };

/**
 * A thread that walks folders, or hashes a file, one at a time. It stays for the next walk, unless a walk
 * was large: then it ends by itself after answering (its heap goes with it), and the walk
 * is answered only once the thread is gone (a process exiting while a worker thread is
 * still ending can abort).
 */
class Walker {
  readonly #worker = new Worker(WORKER_URL, { execArgv: [], workerData: { walker: true } });
  #current: QueuedWalk | undefined;
  #exited: Promise<number>;
  #retiring = false;
  dead = false;

  constructor(private readonly idle: () => void) {
    this.#worker.unref();
    this.#exited = new Promise((resolve) => this.#worker.once("exit", resolve));
    this.#worker.on("message", (answer: LongAnswer) => void this.#answer(answer));
    this.#worker.on("error", (err) => this.#fail(new StorageUnavailable("the folder store's walker failed", err)));
    void this.#exited.then((code) => this.#fail(new StorageUnavailable(`the folder store's walker exited (${code})`)));
  }

  get busy(): boolean {
    return this.#current !== undefined;
  }

  /** When the task it runs was cancelled by its caller; undefined when idle or not cancelled. */
  get cancelledSince(): number | undefined {
    return this.#current?.cancelledAt;
  }

  /** Gives the thread up: a cancelled task has not ended (its read does not return). Resolves once it has exited. */
  abandon(): Promise<number> {
    if (this.dead) return this.#exited;
    this.dead = true;
    this.#current = undefined;
    this.#worker.unref();
    void this.#worker.terminate().catch(() => {});
    return this.#exited;
  }

  run(walk: QueuedWalk): void {
    this.#current = walk;
    this.#worker.ref();
    this.#worker.postMessage(walk.message);
  }

  async #answer(answer: LongAnswer): Promise<void> {
    const walk = this.#current;
    if (!walk) return;
    if (answer.listing && answer.listing.sizes.length > RETIRE_AFTER) {
      this.dead = true;
      this.#retiring = true;
      await this.#exited;
    }
    this.#current = undefined;
    this.#worker.unref();
    walk.done?.();
    if (answer.error) walk.reject(Object.assign(new Error(answer.error.message), { code: answer.error.code }));
    else walk.resolve(answer.crc ?? (answer.listing as Listing));
    this.idle();
  }

  #fail(err: Error): void {
    if (this.#retiring || (this.dead && !this.#current)) return;
    this.dead = true;
    const walk = this.#current;
    this.#current = undefined;
    if (walk) {
      walk.done?.();
      walk.reject(err);
    }
    this.idle();
  }

  async stop(): Promise<void> {
    this.#fail(new StorageUnavailable("the folder store was closed"));
    await this.#worker.terminate();
  }
}
