import { randomUUID, timingSafeEqual } from "node:crypto";
import type { HttpBindings } from "@hono/node-server";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { Hono } from "hono";
import { cors } from "hono/cors";
import ipaddr from "ipaddr.js";
import { bitpaketRoutes } from "./api/bitpaket/index.js";
import { boxRoutes } from "./api/box/index.js";
import type { ApiDeps, AppEnv } from "./api/deps.js";
import { type ZipkitDeps, zipkitRoutes } from "./api/zipkit/index.js";
import { GatewayError, toGatewayError } from "./errors.js";
import { errorBody, flavourOf } from "./http/errors.js";
import { shuttingDown } from "./http/lifecycle.js";
import { describeError, redactPath } from "./log.js";
import { openApiDocument } from "./openapi.js";
import { VERSION } from "./version.js";

/** The header @hono/node-server marks RESPONSE_ALREADY_SENT with. */
const ALREADY_SENT_HEADER = "x-hono-already-sent";
const REQUEST_ID = /^[\w.-]{1,64}$/;
/** W3C trace context: version-traceid-parentid-flags; all-zero ids and version ff are invalid. */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;
/** Probes and scrapes are logged at debug level only: every few seconds, they would drown the rest. */
const PROBES = new Set(["/healthz", "/livez", "/readyz", "/metrics"]);
/** The POST routes that create a zipball or a job, by flavour, for `zipgate_creations_total`. */
const CREATIONS: Record<string, string> = { "/v2/zipball": "bitpaket", "/2.0/zip_downloads": "box", "/api/v1/zips": "zipkit" };
/** Refusals for capacity, for `zipgate_admission_refusals_total`. */
const ADMISSION_CODES = new Set(["too_many_downloads_in_flight", "shutting_down", "too_many_downloads", "too_many_downloads_from_client"]);
/** Response headers a browser app on another origin may read. */
const CORS_EXPOSED = ["Content-Disposition", "Content-Length", "Content-Range", "ETag", "X-Request-Id", "Accept-Ranges", "Last-Modified", "Retry-After"];
/** Request headers such an app may send. */
const CORS_ALLOWED = [
  "Authorization",
  "Content-Type",
  "Range",
  "If-Match",
  "If-None-Match",
  "If-Modified-Since",
  "If-Unmodified-Since",
  "If-Range",
  "X-Request-Id",
  "traceparent",
  "tracestate",
];

/** The client's address: the socket's peer, or the X-Forwarded-For entry the outermost of `trusted` proxies saw. */
export function clientAddress(peer: string | undefined, forwardedFor: string | undefined, trusted: number): string | undefined {
  if (trusted === 0 || !forwardedFor) return peer;
  const chain = [
    ...forwardedFor
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
    peer ?? "",
  ];
  return chain[Math.max(0, chain.length - 1 - trusted)] || peer;
}

function traceOf(header: string | undefined): { trace_id: string; parent_id: string } | undefined {
  const m = TRACEPARENT.exec(header?.trim().toLowerCase() ?? "");
  if (!m || m[1] === "ff" || /^0+$/.test(m[2] as string) || /^0+$/.test(m[3] as string)) return undefined;
  return { trace_id: m[2] as string, parent_id: m[3] as string };
}
/** How long a store check of `/readyz` is reused, in ms. */
const READY_CACHE_MS = 3000;

/** The whole HTTP surface: every API flavour on one engine, one error mapping. */
export function createApp(deps: ApiDeps & ZipkitDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.use(async (c, next) => {
    const started = performance.now();
    const given = c.req.header("x-request-id");
    const id = given && REQUEST_ID.test(given) ? given : randomUUID();
    const client = clientAddress((c.env as HttpBindings | undefined)?.incoming?.socket?.remoteAddress, c.req.header("x-forwarded-for"), deps.trustProxy);
    const trace = traceOf(c.req.header("traceparent"));
    c.set("requestId", id);
    c.set("startedAt", started);
    c.set("client", client);
    c.set("trace", trace);
    c.header("X-Request-Id", id);
    await next();
    // A download that wrote its own head returns RESPONSE_ALREADY_SENT; a middleware that
    // prepared headers (CORS) makes hono answer a copy of it, which the Node adapter would
    // write again. The marker itself is what must reach the adapter.
    if (c.res !== RESPONSE_ALREADY_SENT && c.res.headers.has(ALREADY_SENT_HEADER)) {
      c.res = undefined as unknown as Response;
      c.res = RESPONSE_ALREADY_SENT;
    }
    // A streamed download has written its head to the Node response itself.
    const sent = c.res === RESPONSE_ALREADY_SENT ? (c.env as HttpBindings).outgoing.statusCode : c.res.status;
    deps.metrics.httpRequests.inc({ method: c.req.method, status: String(sent) });
    const creation = c.req.method === "POST" ? CREATIONS[c.req.path] : undefined;
    if (creation !== undefined) {
      const outcome = sent < 400 ? "created" : c.error ? toGatewayError(c.error).code : String(sent);
      deps.metrics.creations.inc({ flavour: creation, outcome });
    }
    const fields = {
      request_id: id,
      method: c.req.method,
      path: redactPath(c.req.path),
      status: sent,
      ms: Math.round(performance.now() - started),
      client,
      ...trace,
    };
    if (PROBES.has(c.req.path)) deps.logger.debug("request", fields);
    else deps.logger.info("request", fields);
  });

  // Browser apps on the configured origins (hono's cors): preflights are answered here, and
  // downloads copy these headers into the head they write themselves (http/download.ts).
  if (deps.corsOrigins.length > 0) {
    app.use(
      cors({
        origin: deps.corsOrigins[0] === "*" ? "*" : deps.corsOrigins,
        allowMethods: ["GET", "HEAD", "POST", "DELETE"],
        allowHeaders: CORS_ALLOWED,
        exposeHeaders: CORS_EXPOSED,
        maxAge: 600,
      }),
    );
  }

  app.get("/metrics", async (c) => {
    const access = deps.metricsAccess ?? { token: undefined, separate: false };
    if (access.separate) throw new GatewayError(404, "not_found", "not found");
    checkMetricsAccess(access.token, c.req.header("authorization"), c.get("client"));
    return c.body(await deps.metrics.registry.metrics(), 200, { "Content-Type": deps.metrics.registry.contentType });
  });
  app.get("/openapi.json", (c) => c.json(openApiDocument(deps.publicUrl)));

  // Liveness: the process answers. Readiness: it takes traffic and its store answers.
  app.get("/healthz", (c) => c.json({ ok: true, version: VERSION }));
  app.get("/livez", (c) => c.json({ ok: true, version: VERSION }));
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
    if (ADMISSION_CODES.has(err.code)) deps.metrics.admissionRefusals.inc({ reason: err.code });
    if (err.status >= 500) deps.logger.error("request failed", { request_id: requestId, path: redactPath(c.req.path), ...describeError(thrown) });
    else if (err.cause !== undefined) deps.logger.warn(err.message, { request_id: requestId, ...describeError(err.cause) });
    const res = c.json(errorBody(flavourOf(c.req.path), err, requestId), err.status as 400);
    if (err.status === 401) res.headers.set("WWW-Authenticate", 'Bearer realm="zipgate"');
    for (const [name, value] of Object.entries(err.headers ?? {})) res.headers.set(name, value);
    return res;
  });

  return app;
}

/**
 * /metrics for whoever sends the token as a bearer (ZIPGATE_METRICS_TOKEN, compared in
 * constant time), or without one for loopback clients only (as ZIPGATE_TRUST_PROXY sees
 * them: a proxy on the same machine that does not say whom it forwards for looks local).
 */
export function checkMetricsAccess(token: string | undefined, authorization: string | undefined, client: string | undefined): void {
  if (token !== undefined) {
    const given = Buffer.from(/^Bearer (.+)$/i.exec(authorization ?? "")?.[1] ?? "");
    const want = Buffer.from(token);
    if (given.length !== want.length || !timingSafeEqual(given, want)) {
      throw new GatewayError(401, "unauthorized", "/metrics needs the metrics token (ZIPGATE_METRICS_TOKEN) as a bearer token", {
        headers: { "WWW-Authenticate": 'Bearer realm="metrics"' },
      });
    }
    return;
  }
  if (client !== undefined && ipaddr.isValid(client) && ipaddr.process(client).range() === "loopback") return;
  throw new GatewayError(
    403,
    "forbidden",
    "/metrics answers loopback clients only; set ZIPGATE_METRICS_TOKEN or ZIPGATE_METRICS_LISTEN to scrape it from elsewhere",
  );
}
