import type { AddressInfo } from "node:net";
import { expect } from "vitest";
import { type Config, loadConfig } from "../../src/config.js";
import { createGateway } from "../../src/gateway.js";
import { createLogger, type Logger } from "../../src/log.js";
import { createHttpServer } from "../../src/server.js";
import { createFsStorage } from "../../src/storage/fs.js";
import type { Storage } from "../../src/storage/types.js";
import type { Sweeper } from "../../src/zipball/sweeper.js";

export const TEST_KEY = "test-key-0123456789abcdef";

export interface RunningGateway {
  url: string;
  key: string;
  storage: Storage;
  config: Config;
  /** Every log line written, for checks that nothing secret is logged. */
  logs: string[];
  /** The state sweeper, not started: tests call `sweep()`. */
  sweeper: Sweeper;
  /** The hono app (its routes, for the API document's check). */
  app: Awaited<ReturnType<typeof createGateway>>["app"];
  close(): Promise<void>;
  /** Authenticated JSON POST. */
  post(path: string, body: unknown, key?: string | null): Promise<Response>;
}

/**
 * Starts a gateway on a real socket (port 0). `storage` defaults to a folder
 * store on `root`; pass a wrapped store to observe reads.
 */
export async function startGateway(options: { root?: string; storage?: Storage; env?: Record<string, string> } = {}): Promise<RunningGateway> {
  const storage = options.storage ?? (await createFsStorage({ root: options.root as string }));
  const logs: string[] = [];
  const logger: Logger = createLogger((line) => logs.push(line));
  const config = loadConfig({
    ZIPGATE_API_KEYS: TEST_KEY,
    ZIPGATE_SIGNING_SECRET: "test-signing-secret-0123456789abcdef",
    ...options.env,
  });
  const { app, runner, sweeper, lifecycle } = await createGateway(config, storage, logger);
  runner.start();
  const server = createHttpServer(app, { lifecycle, logger });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    key: TEST_KEY,
    storage,
    config,
    logs,
    sweeper,
    app,
    close: async () => {
      await runner.stop();
      await sweeper.stop();
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
    post: (path, body, key = TEST_KEY) =>
      fetch(url + path, {
        method: "POST",
        headers: { "content-type": "application/json", ...(key === null ? {} : { authorization: `Bearer ${key}` }) },
        body: typeof body === "string" ? body : JSON.stringify(body),
      }),
  };
}

/** Rewrites a returned URL (built from the configured public URL) onto the test server. */
export function local(gateway: RunningGateway, returned: string): string {
  const u = new URL(returned);
  return gateway.url + u.pathname + u.search;
}

/** Creates a BitPaket zipball (201 expected) and returns its download URL on the test server. */
export async function zipballUrl(gateway: RunningGateway, body: Record<string, unknown>, key?: string | null): Promise<string> {
  const res = await gateway.post("/v2/zipball", body, key);
  const text = await res.text();
  expect(res.status, text).toBe(201);
  return local(gateway, (JSON.parse(text) as { data: { urls: { url: string } } }).data.urls.url);
}
