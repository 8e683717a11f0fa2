/**
 * Read buffers that are used again once the socket has sent them. A fresh buffer per read
 * costs more than the copy into it: the kernel zeroes its new pages on first touch, and V8
 * runs full collections to keep external memory in check (about a fifth of the CPU time of
 * a large download here). Buffers never given back are simply collected; a buffer is given
 * back only by the one place that knows it is done with (the response writer).
 */
export class BufferPool {
  readonly #free: Buffer[] = [];
  /** ArrayBuffers made here, and those of them that sit in `#free`. */
  readonly #mine = new WeakSet<ArrayBufferLike>();
  readonly #idle = new WeakSet<ArrayBufferLike>();

  constructor(
    readonly size: number,
    private readonly keep: number,
  ) {}

  /** A buffer of `size` bytes with unspecified contents. */
  take(): Buffer {
    const buf = this.#free.pop();
    if (buf) {
      this.#idle.delete(buf.buffer);
      return buf;
    }
    const fresh = Buffer.allocUnsafeSlow(this.size);
    this.#mine.add(fresh.buffer);
    return fresh;
  }

  /**
   * Gives back the buffer `view` lies in, if it came from this pool. The caller promises
   * that nothing else still reads or writes any part of it.
   */
  release(view: Uint8Array): void {
    const memory = view.buffer;
    if (!this.#mine.has(memory) || this.#idle.has(memory) || this.#free.length >= this.keep) return;
    this.#idle.add(memory);
    this.#free.push(Buffer.from(memory, 0, this.size));
  }
}

/** The pool of the folder store's 256 KiB reads; up to 64 (16 MiB) kept between uses. */
export const readBuffers = new BufferPool(256 * 1024, 64);

/**
 * The pool of the folder store's 1 MiB reads, for the few large files streamed at once that
 * get them (fs.ts, LARGE_READ_STREAMS); up to 16 (16 MiB) kept between uses.
 */
export const largeReadBuffers = new BufferPool(1024 * 1024, 16);

/** The pool of the archive stream's 64 KiB batches (headers and small objects); up to 64 (4 MiB) kept. */
export const batchBuffers = new BufferPool(64 * 1024, 64);

/** Gives back a buffer that came from either pool, once nothing reads it any more. */
export function giveBack(view: Uint8Array): void {
  readBuffers.release(view);
  largeReadBuffers.release(view);
  batchBuffers.release(view);
}
