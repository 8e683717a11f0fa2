import { type Config, ConfigError, loadConfig } from "./config.js";
import { createGateway } from "./gateway.js";
import { createLogger, describeError } from "./log.js";
import { createHttpServer } from "./server.js";
import { createStorage } from "./storage/index.js";

const logger = createLogger();
/** Past the drain, the time left to stop jobs and close the store before the process just exits. */
const HARD_STOP_MARGIN_MS = 5_000;

async function main(): Promise<void> {
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
  const storage = await createStorage(config.storage, {
    connectTimeoutMs: config.limits.storeConnectTimeoutMs,
    timeoutMs: config.limits.storeTimeoutMs,
  });
  const { app, secrets, runner, sweeper, lifecycle } = await createGateway(config, storage, logger);
  runner.start();
  sweeper.start();
  const server = createHttpServer(app, {
    lifecycle,
    logger,
    requestTimeoutMs: config.limits.requestTimeoutMs,
    headersTimeoutMs: Math.min(20_000, config.limits.requestTimeoutMs),
    maxConnections: config.limits.maxConnections,
  });
  server.listen(config.port, config.host, () => {
    const base = config.publicUrl;
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : config.port;
    const lines = [`zipgate listening on ${config.host}:${port}, serving ${storage.description}`];
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
