import { pipeline, Transform } from "node:stream";
import type { Storage } from "../../src/storage/types.js";

/** A store that counts the bytes its reads deliver (the real store underneath). */
export function countingStorage(inner: Storage): Storage & { bytes(): number } {
  let bytes = 0;
  return {
    ...inner,
    async read(key, options) {
      const source = await inner.read(key, options);
      if (Buffer.isBuffer(source)) {
        bytes += source.length;
        return source;
      }
      const counter = new Transform({
        transform(chunk: Buffer, _enc, done) {
          bytes += chunk.length;
          done(null, chunk);
        },
      });
      // pipeline forwards errors both ways and destroys the source with the counter.
      return pipeline(source, counter, () => {});
    },
    bytes: () => bytes,
  };
}
