import { type Config, ConfigError, loadConfig } from "./config.js";
import { createGateway } from "./gateway.js";
import { createLogger, describeError } from "./log.js";
import { createHttpServer } from "./server.js";
import { createStorage } from "./storage/index.js";

const logger = createLogger();

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
  const storage = await createStorage(config.storage);
  const { app, secrets, runner } = await createGateway(config, storage, logger);
  runner.start();
  const server = createHttpServer(app);
  server.listen(config.port, config.host, () => {
    const base = config.publicUrl;
    const lines = [`zipgate listening on ${config.host}:${config.port}, serving ${storage.description}`];
    if (secrets.storedApiKey) {
      lines.push(`API key (generated, kept in the store): ${secrets.storedApiKey}`);
      lines.push("try:");
      lines.push(`  echo hello > ${config.storage.kind === "fs" ? config.storage.root : "."}/hello.txt`);
      lines.push(
        `  curl -s -X POST ${base}/v2/zipball -H 'Authorization: Bearer ${secrets.storedApiKey}' -H 'Content-Type: application/json' -d '{"objects":[{"path":"/hello.txt"}]}'`,
      );
      lines.push(`  curl -OJ '<data.urls.url from that answer>'`);
    }
    process.stderr.write(`${lines.join("\n")}\n`);
  });
  const stop = (signal: string): void => {
    logger.info("shutting down", { signal });
    // Jobs in flight stop and stay "processing": the next start runs them again.
    void runner.stop().finally(() =>
      server.close(() => {
        void storage.close().finally(() => process.exit(0));
      }),
    );
    // Downloads in flight may be long; do not wait forever.
    setTimeout(() => process.exit(0), 10_000).unref();
  };
  process.once("SIGINT", () => stop("SIGINT"));
  process.once("SIGTERM", () => stop("SIGTERM"));
}

main().catch((err: unknown) => {
  logger.error("zipgate failed to start", describeError(err));
  process.exit(1);
});
