import type { Context } from "hono";
import { GatewayError } from "../errors.js";

/** Largest request body, counted as it arrives (chunked bodies included) by the app's body limit. */
export const MAX_BODY = 4 * 1024 * 1024;

export function bodyTooLarge(): GatewayError {
  // The rest of the body is discarded as it comes (a bounded drain, then the connection is
  // closed), never kept: the client reads this answer instead of a reset.
  return new GatewayError(413, "body_too_large", `request bodies are limited to ${MAX_BODY} bytes`);
}

/** The JSON object body of a request: 400 when it is not one (413 comes from the app's body limit). */
export async function jsonObject(c: Context): Promise<Record<string, unknown>> {
  const text = await c.req.text();
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new GatewayError(400, "invalid_json", "the request body is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new GatewayError(400, "invalid_body", "the request body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

/** 400 naming the first field that is not allowed. */
export function onlyFields(value: Record<string, unknown>, allowed: readonly string[], where: string): void {
  const unknown = Object.keys(value).find((k) => !allowed.includes(k));
  if (unknown !== undefined) throw new GatewayError(400, "invalid_field", `unknown field "${unknown}" in ${where}`, { details: { field: unknown } });
}

export function optionalString(value: unknown, field: string, max = 1024): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value.trim() === "" || value.length > max) {
    throw new GatewayError(400, "invalid_field", `"${field}" must be a non-empty string of at most ${max} characters`, { details: { field } });
  }
  return value;
}
