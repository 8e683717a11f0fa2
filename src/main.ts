#!/usr/bin/env node
import { createServer, type Server } from "node:http";
import { checkMetricsAccess } from "./app.js";
import { type Config, ConfigError, loadConfig } from "./config.js";
import { createGateway } from "./gateway.js";
import { helpText } from "./help.js";
import { createLogger, describeError, type Logger } from "./log.js";
import { createMetrics } from "./metrics.js";
import { createHttpServer } from "./server.js";
import { createStorage } from "./storage/index.js";
import { VERSION } from "./version.js";

/** Until the configuration names a level, errors are still logged. */
let logger: Logger = createLogger();
/** Past the drain, the time left to stop jobs and close the store before the process just exits. */
const HARD_STOP_MARGIN_MS = 5_000;

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(helpText());
    return;
  }
  if (args.includes("--version") || args.includes("-v")) {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  if (args.length > 0) {
    process.stderr.write(`zipgate: unknown argument ${args[0]}; settings are environment variables (zipgate --help)\n`);
    process.exit(2);
  }
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`zipgate: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  logger = createLogger(undefined, { level: config.logLevel });
  const storage = await createStorage(config.storage, {
    connectTimeoutMs: config.limits.storeConnectTimeoutMs,
    timeoutMs: config.limits.storeTimeoutMs,
  });
  // The process's own metrics (CPU, memory, event loop lag, GC) only here: tests run several gateways in one process.
  const metrics = createMetrics({ processMetrics: true });
  const { app, secrets, runner, sweeper, lifecycle, setPublicUrl } = await createGateway(config, storage, logger, { metrics });
  runner.start();
  sweeper.start();
  const server = createHttpServer(app, {
    lifecycle,
    logger,
    requestTimeoutMs: config.limits.requestTimeoutMs,
    headersTimeoutMs: Math.min(20_000, config.limits.requestTimeoutMs),
    maxConnections: config.limits.maxConnections,
    keepAliveTimeoutMs: config.limits.keepAliveTimeoutMs,
  });
  // The metrics on a listener of their own (ZIPGATE_METRICS_LISTEN): for a scraper on an
  // internal interface, while the main listener answers /metrics with 404.
  const metricsServer = config.metrics.listen && createMetricsServer(metrics, config.metrics.token, logger);
  if (metricsServer && config.metrics.listen) {
    const { host, port } = config.metrics.listen;
    metricsServer.listen(port, host, () => {
      const a = metricsServer.address();
      logger.info(`metrics on ${host}:${typeof a === "object" && a ? a.port : port}`);
    });
    metricsServer.unref();
  }
  server.listen(config.port, config.host, () => {
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : config.port;
    // PORT=0 picks a free port: the URLs handed out name the one picked.
    const picked = config.port === 0 && !process.env.ZIPGATE_PUBLIC_URL;
    const base = picked ? config.publicUrl.replace(/:0$/, `:${port}`) : config.publicUrl;
    if (picked) setPublicUrl(base);
    const lines = [`zipgate ${VERSION} listening on ${config.host}:${port}, serving ${storage.description}`];
    if (!process.env.ZIPGATE_PUBLIC_URL && (config.host === "0.0.0.0" || config.host === "::")) {
      // In a container or behind a proxy the default names an address clients cannot reach.
      lines.push(`note: download URLs are built on ${base}; set ZIPGATE_PUBLIC_URL to the address clients use`);
    }
    if (secrets.storedApiKey && secrets.generated) {
      // Printed once, when it is made: later starts name where it is kept, never the key.
      lines.push(`API key (generated now, kept in the store's .zipgate/secrets.json): ${secrets.storedApiKey}`);
      lines.push("try:");
      lines.push(`  echo hello > ${config.storage.kind === "fs" ? config.storage.root : "."}/hello.txt`);
      lines.push(
        `  curl -s -X POST ${base}/v2/zipball -H 'Authorization: Bearer ${secrets.storedApiKey}' -H 'Content-Type: application/json' -d '{"objects":[{"path":"/hello.txt"}]}'`,
      );
      lines.push(`  curl -OJ '<data.urls.url from that answer>'`);
    } else if (secrets.storedApiKey) {
      lines.push("API key: the one generated at the first start, kept in the store's .zipgate/secrets.json");
    }
    process.stderr.write(`${lines.join("\n")}\n`);
    logger.info("started", { version: VERSION, node: process.version, port, storage: storage.description, public_url: base });
  });
  // Rolling deploys: stop taking work, let downloads in flight finish for up to
  // ZIPGATE_DRAIN_TIMEOUT, cut the rest (a cut download resumes with Range on any replica),
  // and say with the exit status whether everything drained.
  const stop = async (signal: string): Promise<void> => {
    logger.info("shutting down", { signal, downloads_in_flight: lifecycle.inFlight, drain_timeout_s: config.limits.drainTimeoutMs / 1000 });
    // Whatever hangs (a job's webhook, a store that does not answer), the process ends.
    setTimeout(
      () => {
        logger.error("shutdown did not complete in time; exiting");
        process.exit(1);
      },
      config.limits.shutdownDelayMs + config.limits.drainTimeoutMs + HARD_STOP_MARGIN_MS,
    ).unref();
    const drained = lifecycle.drain(config.limits.drainTimeoutMs, logger);
    // Kept-alive connections with no request in hand go now; while the delay lasts the
    // listener answers 503 (readiness included), for balancers that notice only that way.
    server.closeIdleConnections();
    if (config.limits.shutdownDelayMs > 0) await new Promise((r) => setTimeout(r, config.limits.shutdownDelayMs));
    server.close();
    server.closeIdleConnections();
    // Jobs in flight stop and stay "processing": the next start runs them again.
    await Promise.race([Promise.all([runner.stop(), sweeper.stop()]), new Promise((r) => setTimeout(r, config.limits.drainTimeoutMs).unref())]).catch(
      (err: unknown) => logger.warn("stopping jobs failed", describeError(err)),
    );
    const all = await drained;
    server.closeAllConnections();
    await storage.close().catch(() => {});
    logger.info("stopped", { drained: all });
    process.exit(all ? 0 : 1);
  };
  process.once("SIGINT", () => void stop("SIGINT"));
  process.once("SIGTERM", () => void stop("SIGTERM"));
}

main().catch((err: unknown) => {
  logger.error("zipgate failed to start", describeError(err));
  process.exit(1);
});

/** A listener that serves only GET /metrics (with the token as a bearer when one is set). */
function createMetricsServer(metrics: ReturnType<typeof createMetrics>, token: string | undefined, logger: Logger): Server {
  return createServer((req, res) => {
    void (async () => {
      if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
        return;
      }
      if (token !== undefined) {
        try {
          checkMetricsAccess(token, req.headers.authorization, undefined);
        } catch {
          res.writeHead(401, { "content-type": "text/plain", "www-authenticate": 'Bearer realm="metrics"' }).end("unauthorized\n");
          return;
        }
      }
      const body = await metrics.registry.metrics();
      res.writeHead(200, { "content-type": metrics.registry.contentType }).end(body);
    })().catch((err: unknown) => {
      logger.error("metrics failed", describeError(err));
      res.destroy();
    });
  });
}
