import type { GatewayError } from "../errors.js";

/** The API flavours, each with its own error shape. */
export type Flavour = "bitpaket" | "box" | "zipkit";

/** The flavour a request path belongs to, for its error shape. */
export function flavourOf(path: string): Flavour {
  if (path.startsWith("/2.0/")) return "box";
  if (path.startsWith("/api/v1/")) return "zipkit";
  return "bitpaket";
}

/** Box's error codes for the gateway's own. */
const BOX_CODES: Record<string, string> = {
  unauthorized: "unauthorized",
  access_denied: "access_denied_insufficient_permissions",
  not_found: "not_found",
  too_many_files: "zip_download_file_count_exceeded_limit",
  too_many_bytes: "zip_download_pre_compressed_bytes_exceeded_limit",
  too_many_downloads: "user_too_many_concurrent_downloads",
  too_many_downloads_from_client: "rate_limit_exceeded",
};

/** The one mapping from a GatewayError to each flavour's JSON error body. */
export function errorBody(flavour: Flavour, err: GatewayError, requestId: string): Record<string, unknown> {
  switch (flavour) {
    case "box":
      return {
        type: "error",
        status: err.status,
        code: BOX_CODES[err.code] ?? (err.status === 400 ? "bad_request" : err.code),
        message: err.message,
        request_id: requestId,
        ...(err.details ? { context_info: err.details } : {}),
      };
    case "zipkit":
      return { error: { type: errorType(err.status), code: err.code, message: err.message, ...err.details }, request_id: requestId };
    default:
      return { success: false, error: { code: err.code, message: err.message, ...err.details } };
  }
}

function errorType(status: number): string {
  if (status === 401 || status === 403) return "authentication_error";
  if (status === 404) return "not_found_error";
  if (status >= 500) return "api_error";
  return "invalid_request_error";
}
