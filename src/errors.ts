/**
 * One error type for the gateway. Every failure that can reach a client is a
 * GatewayError with an HTTP status and a stable code; each API flavour turns
 * it into its own JSON shape. Anything else is an internal error: logged,
 * never sent.
 */
export class GatewayError extends Error {
  readonly status: number;
  readonly code: string;
  /** Extra fields safe to show a client (such as the list of missing paths). */
  readonly details: Record<string, unknown> | undefined;
  /** Response headers that go with the error (`Retry-After`). */
  readonly headers: Record<string, string> | undefined;

  constructor(
    status: number,
    code: string,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown>; headers?: Record<string, string> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "GatewayError";
    this.status = status;
    this.code = code;
    this.details = options?.details;
    this.headers = options?.headers;
  }
}

/** Storage: the object does not exist (or is not a readable object). */
export class ObjectNotFound extends GatewayError {
  constructor(key: string, cause?: unknown) {
    super(404, "not_found", `object not found: /${key}`, { cause, details: { path: `/${key}` } });
    this.name = "ObjectNotFound";
  }
}

/** Storage: the object is no longer the version the zipball was made from. */
export class ObjectChanged extends GatewayError {
  constructor(key: string, cause?: unknown) {
    super(409, "object_changed", `object changed since the zipball was created: /${key}`, { cause, details: { path: `/${key}` } });
    this.name = "ObjectChanged";
  }
}

/** Storage: the store refused access to the object. */
export class ObjectAccessDenied extends GatewayError {
  constructor(key: string, cause?: unknown) {
    super(403, "access_denied", `the store refused access to /${key}`, { cause, details: { path: `/${key}` } });
    this.name = "ObjectAccessDenied";
  }
}

/** Storage: the store failed or could not be reached. */
export class StorageUnavailable extends GatewayError {
  constructor(message: string, cause?: unknown) {
    super(502, "storage_unavailable", message, { cause });
    this.name = "StorageUnavailable";
  }
}

/** Storage: the store did not answer within the configured timeout. */
export class StorageTimeout extends GatewayError {
  constructor(message: string, cause?: unknown) {
    super(504, "storage_timeout", message, { cause, headers: { "Retry-After": "5" } });
    this.name = "StorageTimeout";
  }
}

/** Storage: the gateway's own state (`.zipgate/`) cannot be written: read-only or full. */
export class StateUnwritable extends GatewayError {
  constructor(reason: "read_only" | "full" | "failed", cause?: unknown) {
    const why = reason === "read_only" ? "is read-only" : reason === "full" ? "is full" : "cannot be written";
    super(503, reason === "failed" ? "storage_write_failed" : `storage_${reason}`, `the store ${why}; nothing was saved`, {
      cause,
      headers: { "Retry-After": "30" },
    });
    this.name = "StateUnwritable";
  }
}

/** Wraps anything thrown into a GatewayError; unknown errors become a generic 500. */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  return new GatewayError(500, "internal_error", "internal error", { cause: err });
}
