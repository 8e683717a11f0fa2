import { GatewayError } from "../errors.js";

/** Everything the gateway keeps in the store lives below this prefix. */
export const RESERVED_PREFIX = ".zipgate/";
const RESERVED_SEGMENT = ".zipgate";

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are refused
const CONTROL = /[\u0000-\u001f\u007f]/;

/** True when a key lies in the reserved prefix (compared case-insensitively). */
export function isReserved(key: string): boolean {
  const first = key.split("/", 1)[0] ?? "";
  return first.toLowerCase() === RESERVED_SEGMENT;
}

/**
 * Turns a requested object path (`/dir/file.txt`) or folder (`/dir`, `/dir/`)
 * into a store key (`dir/file.txt`, folders `dir/`). Refuses relative paths,
 * `.`/`..` and empty segments, control characters, the root folder and
 * anything in the reserved prefix.
 */
export function keyFromPath(path: unknown, kind: "path" | "folder", field: string = kind): string {
  if (typeof path !== "string" || path === "") throw invalid(field, `"${field}" must be a non-empty string`);
  if (!path.startsWith("/")) throw invalid(field, `"${field}" must start with "/"`);
  if (CONTROL.test(path)) throw invalid(field, `"${field}" contains control characters`);
  let rest = path.slice(1);
  if (kind === "folder" && rest.endsWith("/")) rest = rest.slice(0, -1);
  if (rest === "") {
    throw kind === "folder"
      ? new GatewayError(400, "root_folder", "the root folder cannot be zipped; name a folder below it")
      : invalid(field, `"${field}" must name an object`);
  }
  const segments = rest.split("/");
  if (segments.some((s) => s === "" || s === "." || s === "..")) {
    throw invalid(field, `"${field}" must not contain empty, "." or ".." segments`);
  }
  if (isReserved(rest)) throw new GatewayError(400, "reserved_path", `paths below /${RESERVED_PREFIX} are reserved`);
  return kind === "folder" ? `${rest}/` : rest;
}

function invalid(field: string, message: string): GatewayError {
  return new GatewayError(400, "invalid_path", message, { details: { field } });
}
