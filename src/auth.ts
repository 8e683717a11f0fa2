import { createHash } from "node:crypto";
import type { ApiKey } from "./config.js";
import { GatewayError } from "./errors.js";

/** Who is calling: a key id (hash, safe to store and log) and its path scopes. */
export interface Caller {
  keyId: string;
  scopes: string[] | undefined;
}

export function keyId(key: string): string {
  return createHash("sha256").update(key).digest("hex").slice(0, 16);
}

/** Bearer API keys. Keys are held as SHA-256 digests and looked up by digest. */
export class ApiKeys {
  readonly #byDigest = new Map<string, Caller>();

  constructor(keys: readonly ApiKey[]) {
    for (const k of keys) {
      const digest = createHash("sha256").update(k.key).digest("hex");
      this.#byDigest.set(digest, { keyId: digest.slice(0, 16), scopes: k.scopes });
    }
  }

  /** The caller for an `Authorization` header; 401 when missing or wrong. */
  authenticate(header: string | undefined): Caller {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
    if (!m) throw new GatewayError(401, "unauthorized", "an API key is required: Authorization: Bearer <key>");
    const caller = this.#byDigest.get(
      createHash("sha256")
        .update(m[1] as string)
        .digest("hex"),
    );
    if (!caller) throw new GatewayError(401, "unauthorized", "the API key is not valid");
    return caller;
  }
}

/** True when the key lies inside the scopes (`/dir/` prefixes; undefined = everything). */
export function inScope(scopes: readonly string[] | undefined, key: string): boolean {
  return !scopes || scopes.some((s) => key.startsWith(s.slice(1)));
}

/** 403 unless every key lies inside the scopes (`/dir/` prefixes; undefined = everything). */
export function checkScopes(scopes: readonly string[] | undefined, keys: readonly string[]): void {
  if (!scopes) return;
  const prefixes = scopes.map((s) => s.slice(1));
  const outside = keys.filter((k) => !prefixes.some((s) => k.startsWith(s)));
  if (outside.length > 0) {
    throw new GatewayError(403, "access_denied", "the API key may not read some of the requested objects", {
      details: { denied: outside.map((k) => `/${k}`) },
    });
  }
}
