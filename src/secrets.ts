import { randomBytes } from "node:crypto";
import type { ApiKey, Config } from "./config.js";
import { RESERVED_PREFIX } from "./storage/keys.js";
import type { Storage } from "./storage/types.js";

const SECRETS_KEY = `${RESERVED_PREFIX}secrets.json`;

interface StoredSecrets {
  apiKey: string;
  signingSecret: string;
}

export interface Secrets {
  apiKeys: ApiKey[];
  signingSecret: string;
  /** The key kept in the store, when no keys are configured. */
  storedApiKey: string | undefined;
  /** This start generated the stored secrets (the only time the key is printed). */
  generated: boolean;
}

/**
 * Configured secrets, or ones generated at first start and kept in the
 * store's reserved prefix, so every replica on the same store shares them.
 * The first writer wins; every process then uses what the store holds.
 */
export async function loadSecrets(storage: Storage, config: Pick<Config, "apiKeys" | "signingSecret">): Promise<Secrets> {
  let stored: StoredSecrets | undefined;
  let generated = false;
  if (!config.apiKeys || !config.signingSecret) {
    const fresh: StoredSecrets = {
      apiKey: `zg_${randomBytes(24).toString("base64url")}`,
      signingSecret: randomBytes(32).toString("base64url"),
    };
    generated = await storage.put(SECRETS_KEY, JSON.stringify(fresh), { ifAbsent: true });
    const body = await storage.get(SECRETS_KEY);
    if (!body) throw new Error("could not keep generated secrets in the store");
    stored = JSON.parse(body.toString("utf8")) as StoredSecrets;
  }
  return {
    apiKeys: config.apiKeys ?? [{ key: (stored as StoredSecrets).apiKey }],
    signingSecret: config.signingSecret ?? (stored as StoredSecrets).signingSecret,
    storedApiKey: config.apiKeys ? undefined : stored?.apiKey,
    generated,
  };
}
