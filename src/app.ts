import { randomUUID } from "node:crypto";
import type { HttpBindings } from "@hono/node-server";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { Hono } from "hono";
import { bitpaketRoutes } from "./api/bitpaket/index.js";
import { boxRoutes } from "./api/box/index.js";
import type { ApiDeps, AppEnv } from "./api/deps.js";
import { type ZipkitDeps, zipkitRoutes } from "./api/zipkit/index.js";
import { GatewayError, toGatewayError } from "./errors.js";
import { errorBody, flavourOf } from "./http/errors.js";
import { shuttingDown } from "./http/lifecycle.js";
import { describeError, redactPath } from "./log.js";

const REQUEST_ID = /^[\w.-]{1,64}$/;
/** Probes answer without a log line each. */
const PROBES = new Set(["/healthz", "/livez", "/readyz"]);
/** How long a store check of `/readyz` is reused, in ms. */
const READY_CACHE_MS = 3000;

/** The whole HTTP surface: every API flavour on one engine, one error mapping. */
export function createApp(deps: ApiDeps & ZipkitDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.use(async (c, next) => {
    const given = c.req.header("x-request-id");
    const id = given && REQUEST_ID.test(given) ? given : randomUUID();
    c.set("requestId", id);
    c.header("X-Request-Id", id);
    const started = performance.now();
    await next();
    if (PROBES.has(c.req.path)) return;
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

  // Liveness: the process answers. Readiness: it takes traffic and its store answers.
  app.get("/healthz", (c) => c.json({ ok: true }));
  app.get("/livez", (c) => c.json({ ok: true }));
  let lastCheck: { at: number; result: Promise<string | undefined> } | undefined;
  app.get("/readyz", async (c) => {
    if (deps.lifecycle.draining) return c.json({ ready: false, reason: "shutting down" }, 503);
    if (!lastCheck || performance.now() - lastCheck.at > READY_CACHE_MS) {
      lastCheck = {
        at: performance.now(),
        result: deps.checkStore().then(
          () => undefined,
          (err: unknown) => {
            deps.logger.warn("readiness: the store does not answer", describeError(err));
            return toGatewayError(err).code;
          },
        ),
      };
    }
    const problem = await lastCheck.result;
    return problem === undefined ? c.json({ ready: true }) : c.json({ ready: false, reason: problem }, 503);
  });
  // A draining process takes no new work: clients retry on another replica.
  app.use(async (_c, next) => {
    if (deps.lifecycle.draining) throw shuttingDown();
    await next();
  });
  app.route("/", boxRoutes(deps));
  app.route("/", zipkitRoutes(deps));
  app.route("/", bitpaketRoutes(deps));

  app.notFound((c) => {
    const err = new GatewayError(404, "not_found", "not found");
    return c.json(errorBody(flavourOf(c.req.path), err, c.get("requestId")), 404);
  });

  app.onError((thrown, c) => {
    const requestId = c.get("requestId");
    // A client that left made its own work fail (aborted reads, a cut body): nobody to answer.
    if (c.req.raw.signal.aborted) {
      deps.logger.info("client went away before the answer", { request_id: requestId, path: redactPath(c.req.path) });
      // Nothing is written to a connection that is gone.
      (c.env as HttpBindings | undefined)?.outgoing?.destroy();
      return RESPONSE_ALREADY_SENT;
    }
    const err = toGatewayError(thrown);
    if (err.status >= 500) deps.logger.error("request failed", { request_id: requestId, path: redactPath(c.req.path), ...describeError(thrown) });
    else if (err.cause !== undefined) deps.logger.warn(err.message, { request_id: requestId, ...describeError(err.cause) });
    const res = c.json(errorBody(flavourOf(c.req.path), err, requestId), err.status as 400);
    if (err.status === 401) res.headers.set("WWW-Authenticate", 'Bearer realm="zipgate"');
    for (const [name, value] of Object.entries(err.headers ?? {})) res.headers.set(name, value);
    return res;
  });

  return app;
}
