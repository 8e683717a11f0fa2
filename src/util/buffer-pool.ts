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

/**
 * The pool of S3 parts read ahead (s3-get.ts): 1 MiB buffers the parts' bytes are copied into
 * as they arrive; up to 64 (one object's 8 parts of 8 MiB) kept between uses.
 */
export const partBuffers = new BufferPool(1024 * 1024, 64);

/**
 * The pool of the archive stream's 256 KiB batches (headers and small objects); up to 16 (4 MiB) kept.
 * A socket write of 256 KiB costs less per byte than four of 64 KiB (10,000 small files: 3 % less wall time).
 */
export const batchBuffers = new BufferPool(256 * 1024, 16);

/** Gives back a buffer that came from either pool, once nothing reads it any more. */
export function giveBack(view: Uint8Array): void {
  readBuffers.release(view);
  largeReadBuffers.release(view);
  partBuffers.release(view);
  batchBuffers.release(view);
}
