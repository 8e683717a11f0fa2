import { errors, jwtVerify, SignJWT } from "jose";
import type { Manifest } from "./schema.js";

const ALG = "HS256";
const ISSUER = "zipgate";

/** Signs manifests with HMAC-SHA256, so one altered in the store is refused. */
export class ManifestSigner {
  readonly #key: Uint8Array;

  constructor(secret: string) {
    this.#key = new TextEncoder().encode(secret);
  }

  async sign(manifest: Manifest): Promise<string> {
    const { id, iat, exp, ...claims } = manifest;
    return new SignJWT({ ...claims })
      .setProtectedHeader({ alg: ALG, typ: "zipgate-manifest" })
      .setIssuer(ISSUER)
      .setJti(id)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(this.#key);
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
