import { randomUUID } from "node:crypto";
import type { HttpBindings } from "@hono/node-server";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { Hono } from "hono";
import { bitpaketRoutes } from "./api/bitpaket/index.js";
import { boxRoutes } from "./api/box/index.js";
import type { ApiDeps, AppEnv } from "./api/deps.js";
import { GatewayError, toGatewayError } from "./errors.js";
import { errorBody, flavourOf } from "./http/errors.js";
import { describeError, redactPath } from "./log.js";

const REQUEST_ID = /^[\w.-]{1,64}$/;

/** The whole HTTP surface: every API flavour on one engine, one error mapping. */
export function createApp(deps: ApiDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.use(async (c, next) => {
    const given = c.req.header("x-request-id");
    const id = given && REQUEST_ID.test(given) ? given : randomUUID();
    c.set("requestId", id);
    c.header("X-Request-Id", id);
    const started = performance.now();
    await next();
    // A streamed download has written its head to the Node response itself.
    const sent = c.res === RESPONSE_ALREADY_SENT ? (c.env as HttpBindings).outgoing.statusCode : c.res.status;
    deps.logger.info("request", {
      request_id: id,
      method: c.req.method,
      path: redactPath(c.req.path),
      status: sent,
      ms: Math.round(performance.now() - started),
    });
  });

  app.get("/healthz", (c) => c.json({ ok: true }));
  app.route("/", boxRoutes(deps));
  app.route("/", bitpaketRoutes(deps));

  app.notFound((c) => {
    const err = new GatewayError(404, "not_found", "not found");
    return c.json(errorBody(flavourOf(c.req.path), err, c.get("requestId")), 404);
  });

  app.onError((thrown, c) => {
    const err = toGatewayError(thrown);
    const requestId = c.get("requestId");
    if (err.status >= 500) deps.logger.error("request failed", { request_id: requestId, path: redactPath(c.req.path), ...describeError(thrown) });
    else if (err.cause !== undefined) deps.logger.warn(err.message, { request_id: requestId, ...describeError(err.cause) });
    const res = c.json(errorBody(flavourOf(c.req.path), err, requestId), err.status as 400);
    if (err.status === 401) res.headers.set("WWW-Authenticate", 'Bearer realm="zipgate"');
    return res;
  });

  return app;
}
