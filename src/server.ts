import { createServer, type Server } from "node:http";
import { getRequestListener } from "@hono/node-server";
import type { Hono } from "hono";

/**
 * A node:http server for the app. `strictContentLength` makes Node refuse to
 * finish a response whose body length differs from its Content-Length, a
 * last guard behind the layout's exact length.
 */
export function createHttpServer(app: Hono<any>): Server {
  const listener = getRequestListener(app.fetch);
  return createServer((req, res) => {
    res.strictContentLength = true;
    void listener(req, res);
  });
}
