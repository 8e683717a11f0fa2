import { createServer, type Server } from "node:http";
import type { Socket } from "node:net";
import { getRequestListener } from "@hono/node-server";
import type { Hono } from "hono";
import type { Lifecycle } from "./http/lifecycle.js";
import { describeError, type Logger } from "./log.js";

export interface HttpServerOptions {
  lifecycle: Lifecycle;
  logger: Logger;
  /** Time for a client to send its request headers, in ms. @default 20_000 */
  headersTimeoutMs?: number;
  /** Time for a client to send its whole request (headers and body), in ms. @default 60_000 */
  requestTimeoutMs?: number;
  /** How long an idle keep-alive connection stays open, in ms. @default 65_000 */
  keepAliveTimeoutMs?: number;
  /**
   * Connections open at once. Near it, connections idle between requests (keep-alive) are
   * closed to make room; past it, new ones are closed as they arrive. @default 4096
   */
  maxConnections?: number;
}

/**
 * A node:http server for the app. Nothing a request does can end the process: the
 * listener's promise is always handled, and a response that fails is destroyed. While the
 * process drains, every response closes its connection, so keep-alive clients go
 * elsewhere for their next request.
 */
export function createHttpServer(app: Hono<any>, options: HttpServerOptions): Server {
  const { lifecycle, logger } = options;
  const listener = getRequestListener(app.fetch);
  const sockets = new Map<Socket, { busy: number; served: boolean }>();
  const server = createServer((req, res) => {
    const state = sockets.get(req.socket);
    if (state) {
      state.busy += 1;
      res.once("close", () => {
        state.busy -= 1;
        state.served = true;
      });
    }
    if (lifecycle.draining) res.shouldKeepAlive = false;
    lifecycle.requestStarted();
    res.once("close", () => lifecycle.requestEnded());
    // A connection that finishes a response while the process drains is closed, not kept.
    res.once("finish", () => {
      if (lifecycle.draining) res.socket?.end();
    });
    listener(req, res).catch((err: unknown) => {
      // hono's own handlers have run by now; whatever is left must not reach the process.
      if (!res.destroyed) logger.error("response failed", describeError(err));
      res.destroy();
    });
  });
  server.headersTimeout = options.headersTimeoutMs ?? 20_000;
  server.requestTimeout = options.requestTimeoutMs ?? 60_000;
  server.keepAliveTimeout = options.keepAliveTimeoutMs ?? 65_000;
  // The cap is kept here rather than by net.Server's maxConnections, which drops a new
  // client while thousands of idle keep-alive sockets hold their places.
  const max = options.maxConnections ?? 4096;
  const headroom = Math.max(1, Math.floor(max / 16));
  server.on("connection", (socket: Socket) => {
    sockets.set(socket, { busy: 0, served: false });
    socket.once("close", () => sockets.delete(socket));
    if (sockets.size > max - headroom) closeIdle(sockets, sockets.size - (max - headroom));
    if (sockets.size > max) {
      sockets.delete(socket);
      socket.destroy();
    }
  });
  return server;
}

/**
 * Closes up to `count` connections that are idle between requests, longest open first (a
 * Map keeps arrival order). Connections that have not sent a first request are left to the
 * headers timeout: only keep-alive sockets that were served and wait are closed.
 */
function closeIdle(sockets: Map<Socket, { busy: number; served: boolean }>, count: number): void {
  let closed = 0;
  for (const [socket, state] of sockets) {
    if (closed >= count) break;
    if (state.busy > 0 || !state.served) continue;
    sockets.delete(socket);
    socket.destroy();
    closed += 1;
  }
}
