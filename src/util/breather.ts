import { setImmediate as immediate } from "node:timers/promises";

/**
 * Lets long loops on the main thread give way: `due()` is true once `sliceMs` have passed
 * since the last pause, and `pause()` waits for one turn of the event loop, so requests
 * queued meanwhile (health checks, downloads' socket writes) run between slices.
 *
 * `if (breath.due()) await breath.pause();` costs one clock read per iteration.
 */
export class Breather {
  #since = performance.now();
  constructor(readonly sliceMs = 10) {}

  due(): boolean {
    return performance.now() - this.#since >= this.sliceMs;
  }

  async pause(): Promise<void> {
    await immediate();
    this.#since = performance.now();
  }
}

/**
 * `items.map(fn)` run in slices that give way to the event loop between them: for the
 * synchronous part of per-item work (each `fn` may return a promise, awaited by the caller).
 */
export async function mapInSlices<T, R>(items: readonly T[], fn: (item: T, index: number) => R, breath = new Breather()): Promise<R[]> {
  const out: R[] = new Array(items.length);
  for (let i = 0; i < items.length; i++) {
    if (breath.due()) await breath.pause();
    out[i] = fn(items[i] as T, i);
  }
  return out;
}
