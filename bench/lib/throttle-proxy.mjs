// A TCP relay in front of a store that behaves like a distant one: every chunk in either
// direction is delivered `latencyMs` late, and each connection carries at most
// `bytesPerSecond` towards the client (as S3 serves one connection at tens of MB/s).
import { connect, createServer } from "node:net";

/** Starts the relay on a free loopback port; returns its URL base and a close function. */
export async function startThrottleProxy({ target, latencyMs = 0, bytesPerSecond = 0 }) {
  const sockets = new Set();
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    relay(client, upstream, latencyMs, 0);
    relay(upstream, client, latencyMs, bytesPerSecond);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * Copies `from` to `to`, each chunk `latencyMs` late, paced to `bytesPerSecond` (0: unpaced).
 * One queue and one timer, so chunks leave in the order they came: a timer per chunk let two
 * chunks swap now and then (timers count from the loop's cached time), which corrupted bodies.
 */
function relay(from, to, latencyMs, bytesPerSecond) {
  let sendAt = 0; // when the pacing lets the next byte go, in performance.now() ms
  let queued = 0;
  let ended = false;
  let timer;
  const queue = [];
  const pump = () => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && queue[0].at <= now) {
      const { chunk } = queue.shift();
      queued -= chunk.length;
      if (!to.destroyed) to.write(chunk);
    }
    // Hold the sender back while much is queued, as a real link's window would.
    if (queued <= 1024 * 1024 && from.isPaused()) from.resume();
    if (queue.length > 0) timer = setTimeout(pump, Math.max(0, queue[0].at - now));
    else if (ended) to.end();
  };
  from.on("data", (chunk) => {
    const now = performance.now();
    const wire = bytesPerSecond > 0 ? (chunk.length / bytesPerSecond) * 1000 : 0;
    sendAt = Math.max(sendAt, now) + wire;
    queue.push({ chunk, at: Math.max(sendAt, now + latencyMs) });
    queued += chunk.length;
    if (queued > 1024 * 1024) from.pause();
    if (timer === undefined) timer = setTimeout(pump, Math.max(0, queue[0].at - now));
  });
  from.on("end", () => {
    ended = true;
    if (queue.length === 0) setTimeout(() => to.end(), latencyMs);
  });
}
