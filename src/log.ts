/**
 * JSON-lines logging. Callers pass fields, never raw URLs or headers: paths go
 * through `redactPath`, so capability URLs and keys do not reach a log line.
 */
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function createLogger(write: (line: string) => void = (l) => process.stdout.write(l)): Logger {
  const emit = (level: string, msg: string, fields?: Record<string, unknown>): void => {
    write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
  };
  return {
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
  };
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

/** The path without its query, with ids (which are capabilities) shortened. */
export function redactPath(path: string): string {
  const bare = path.split("?", 1)[0] ?? "";
  return bare.replace(UUID, (id) => `${id.slice(0, 8)}…`);
}

/** An error's description for the log: message and cause chain, no secrets by construction. */
export function describeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { error: clip(String(err)) };
  const out: Record<string, unknown> = { error: clip(err.message), name: err.name };
  if (err.cause !== undefined) out.cause = describeError(err.cause);
  return out;
}

/** Messages are kept to one screen: a huge input echoed in an error must not make a huge log line. */
const MAX_MESSAGE = 500;

function clip(text: string): string {
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE - 1)}…` : text;
}
