import { createHmac } from "node:crypto";
import { errors, jwtVerify } from "jose";
import type { Manifest } from "./schema.js";

const ALG = "HS256";
const ISSUER = "zipgate";

/** Signs manifests with HMAC-SHA256, so one altered in the store is refused. */
export class ManifestSigner {
  readonly #key: Uint8Array;

  constructor(secret: string) {
    this.#key = new TextEncoder().encode(secret);
  }

  /**
   * The compact JWS (HS256) that jose's SignJWT makes, with the same header and claims,
   * encoded and MACed by node:crypto: jose's portable base64url takes 40-70 ms of the main
   * thread for the 3.5 MB token of 10,000 items, this 7-14 ms (measured on Node 24).
   * Verification stays with jose's jwtVerify.
   */
  async sign(manifest: Manifest): Promise<string> {
    const { id, iat, exp, ...claims } = manifest;
    const header = Buffer.from(JSON.stringify({ alg: ALG, typ: "zipgate-manifest" })).toString("base64url");
    const payload = Buffer.from(JSON.stringify({ ...claims, iss: ISSUER, jti: id, iat, exp })).toString("base64url");
    const signature = createHmac("sha256", this.#key).update(`${header}.${payload}`).digest("base64url");
    return `${header}.${payload}.${signature}`;
  }

  /**
   * Verifies a token. Returns the manifest, `"expired"` for a genuine but
   * expired one, or `"invalid"` for anything forged, altered or malformed.
   * `now` = 0 skips the expiry check (the signature is always checked).
   */
  async verify(token: string, now = Date.now()): Promise<Manifest | "expired" | "invalid"> {
    try {
      const { payload } = await jwtVerify(token, this.#key, {
        algorithms: [ALG],
        issuer: ISSUER,
        typ: "zipgate-manifest",
        currentDate: now === 0 ? new Date(0) : new Date(now),
        clockTolerance: 0,
      });
      const { jti, iat, exp, iss: _iss, ...rest } = payload;
      if (typeof jti !== "string" || typeof iat !== "number" || typeof exp !== "number") return "invalid";
      return { ...(rest as Omit<Manifest, "id" | "iat" | "exp">), id: jti, iat, exp };
    } catch (err) {
      if (err instanceof errors.JWTExpired) return "expired";
      return "invalid";
    }
  }
}
