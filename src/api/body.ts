import type { Context } from "hono";
import { GatewayError } from "../errors.js";

/** Largest request body, counted as it arrives (chunked bodies included). */
export const MAX_BODY = 4 * 1024 * 1024;

function bodyTooLarge(): GatewayError {
  // The rest of the body is discarded as it comes (the Node adapter's bounded drain, then
  // the connection is closed), never kept: the client reads this answer, not a reset.
  return new GatewayError(413, "body_too_large", `request bodies are limited to ${MAX_BODY} bytes`);
}

/**
 * The body as text, refused with 413 as soon as it passes MAX_BODY. Read only by routes
 * that have authenticated the caller, so an anonymous client cannot make the gateway hold
 * bodies. (hono's bodyLimit counts the same way, but as a middleware it would run before
 * the routes' authentication.)
 */
async function limitedText(c: Context): Promise<string> {
  if (Number(c.req.header("content-length") ?? "0") > MAX_BODY) throw bodyTooLarge();
  const body = c.req.raw.body;
  if (!body) return "";
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > MAX_BODY) {
      void reader.cancel().catch(() => {});
      throw bodyTooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, size).toString("utf8");
}

/** Deepest nesting of arrays and objects a request body may have; no API shape needs more than 4. */
export const MAX_JSON_DEPTH = 32;

/**
 * Whether the JSON text nests deeper than `max`, in one pass over its characters (strings
 * skipped): a 4 MiB body of brackets takes V8's parser hundreds of milliseconds of the
 * main thread and this scan a few, so such bodies are refused before they are parsed.
 */
export function nestsDeeper(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c /* \ */) i++;
      else if (ch === 0x22 /* " */) inString = false;
    } else if (ch === 0x22) inString = true;
    else if (ch === 0x5b /* [ */ || ch === 0x7b /* { */) {
      if (++depth > max) return true;
    } else if (ch === 0x5d /* ] */ || ch === 0x7d /* } */) depth--;
  }
  return false;
}

/** The JSON object body of a request: 400 when it is not one (or nests too deep), 413 when too large. */
export async function jsonObject(c: Context): Promise<Record<string, unknown>> {
  const text = await limitedText(c);
  if (nestsDeeper(text, MAX_JSON_DEPTH)) {
    throw new GatewayError(400, "invalid_json", `the request body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels`);
  }
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
