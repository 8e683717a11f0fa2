import { jwtVerify, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import type { Manifest } from "../../src/manifest/schema.js";
import { ManifestSigner } from "../../src/manifest/token.js";

const SECRET = "test-signing-secret-0123456789abcdef";
const manifest: Manifest = {
  id: "5f0c5b4e-8d1a-4c8e-9a57-2f1b0c9d8e7f",
  flavour: "bitpaket",
  items: [{ type: "file", key: "docs/ü.txt", name: "a/b.txt" }],
  filename: "x.zip",
  compression: "store",
  owner: "k1",
  entries: "ab".repeat(32),
  iat: 1_800_000_000,
  exp: 1_800_086_400,
};

describe("manifest tokens", () => {
  it("are byte for byte the JWS jose's SignJWT makes, and jose verifies them", async () => {
    const signer = new ManifestSigner(SECRET);
    const token = await signer.sign(manifest);
    const { id, iat, exp, ...claims } = manifest;
    const jose = await new SignJWT({ ...claims })
      .setProtectedHeader({ alg: "HS256", typ: "zipgate-manifest" })
      .setIssuer("zipgate")
      .setJti(id)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(new TextEncoder().encode(SECRET));
    expect(token).toBe(jose);
    const { payload } = await jwtVerify(token, new TextEncoder().encode(SECRET), { currentDate: new Date(iat * 1000) });
    expect(payload.jti).toBe(id);
    expect(await signer.verify(token, iat * 1000)).toEqual(manifest);
  });

  it("are refused when altered, signed with another secret, or expired", async () => {
    const signer = new ManifestSigner(SECRET);
    const token = await signer.sign(manifest);
    const [h, p, s] = token.split(".") as [string, string, string];
    const altered = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, "base64url").toString()), owner: "k2" })).toString("base64url");
    expect(await signer.verify(`${h}.${altered}.${s}`, manifest.iat * 1000)).toBe("invalid");
    expect(await new ManifestSigner(`${SECRET}x`).verify(token, manifest.iat * 1000)).toBe("invalid");
    expect(await signer.verify(token, (manifest.exp + 1) * 1000)).toBe("expired");
  });
});
