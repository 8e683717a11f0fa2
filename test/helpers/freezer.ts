import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * A TCP relay in front of a real server that can be frozen: while frozen it accepts
 * connections and keeps every socket open, but passes no byte either way, as a store
 * under SIGSTOP does. Thawing lets the held bytes through. It can also pace each
 * connection, as a distant store does.
 */
export interface Freezer {
  url: string;
  freeze(): void;
  thaw(): void;
  /** Bytes passed from the server to the client so far. */
  bytesDown(): number;
  /** Requests seen going to the server with a `Range` header, so far. */
  rangedRequests(): number;
  /** The heads (request line and headers) of the requests seen going to the server, so far. */
  requestHeads(): string[];
  close(): Promise<void>;
}

/** `downRate`: bytes per second each connection carries from the server (0: as fast as it can). */
export async function startFreezer(target: string, options: { downRate?: number } = {}): Promise<Freezer> {
  const upstream = new URL(target);
  const rate = options.downRate ?? 0;
  let frozen = false;
  let down = 0;
  let ranged = 0;
  const heads: string[] = [];
  const pairs = new Set<[Socket, Socket]>();
  const server: Server = createServer((client) => {
    const remote = connect(Number(upstream.port), upstream.hostname);
    const pair: [Socket, Socket] = [client, remote];
    pairs.add(pair);
    const relay = (from: Socket, to: Socket, counted: boolean): void => {
      let heldUntil = 0; // paced: no more bytes before then
      const resume = (): void => {
        if (frozen || to.writableNeedDrain) return;
        const left = heldUntil - performance.now();
        // A timer can fire a little early: wait out the rest.
        if (left > 0) setTimeout(resume, left + 1);
        else from.resume();
      };
      from.on("data", (chunk: Buffer) => {
        if (counted) down += chunk.length;
        else {
          const text = chunk.toString("latin1");
          ranged += text.match(/\r\nrange: bytes=/gi)?.length ?? 0;
          const head = /^(?:GET|HEAD|PUT|POST|DELETE) [\s\S]*?\r\n\r\n/.exec(text);
          if (head) heads.push(head[0]);
        }
        if (!to.write(chunk)) from.pause();
        if (frozen) from.pause();
        if (counted && rate > 0) {
          const wait = (chunk.length / rate) * 1000;
          heldUntil = performance.now() + wait;
          from.pause();
          setTimeout(resume, wait);
        }
      });
      to.on("drain", resume);
    };
    relay(client, remote, false);
    relay(remote, client, true);
    if (frozen) {
      client.pause();
      remote.pause();
    }
    const end = (): void => {
      client.destroy();
      remote.destroy();
      pairs.delete(pair);
    };
    client.on("error", end).on("close", end);
    remote.on("error", end).on("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    freeze: () => {
      frozen = true;
      for (const [a, b] of pairs) {
        a.pause();
        b.pause();
      }
    },
    thaw: () => {
      frozen = false;
      for (const [a, b] of pairs) {
        a.resume();
        b.resume();
      }
    },
    bytesDown: () => down,
    rangedRequests: () => ranged,
    requestHeads: () => [...heads],
    close: async () => {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A listener that accepts connections and never answers a byte. */
export async function startBlackHole(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
