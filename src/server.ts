import { createServer, type Server } from "node:http";
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
  /** How long an idle keep-alive connection stays open, in ms. @default 5_000 */
  keepAliveTimeoutMs?: number;
  /** Connections open at once; more are closed as they arrive. @default 4096 */
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
  const server = createServer((req, res) => {
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
  server.keepAliveTimeout = options.keepAliveTimeoutMs ?? 5_000;
  server.maxConnections = options.maxConnections ?? 4096;
  return server;
}
