import { VERSION } from "./version.js";

/** The OpenAPI 3.1 document of every flavour, served at /openapi.json. */
export function openApiDocument(publicUrl: string): Record<string, unknown> {
  return { openapi: "3.1.0", info: { title: "zipgate", version: VERSION }, servers: [{ url: publicUrl }], paths: {} };
}
