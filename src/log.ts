import pino from "pino";

/**
 * JSON-lines logging, backed by pino. Callers pass fields, never raw URLs or headers: paths
 * go through `redactPath`, so capability URLs and keys do not reach a log line.
 */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface LoggerOptions {
  /** pino's level names; LOG_LEVEL. @default "info" */
  level?: string;
}

/** The error behind a `describeError` result, for its stack at debug level (a symbol: never serialised). */
const ERROR = Symbol("error");

/**
 * A logger writing one JSON object a line (`time`, `level` as a name, `msg`, the fields) to
 * `write`, or synchronously to stdout, so nothing is lost when the process exits. At debug
 * level, error fields carry the error's stack.
 */
export function createLogger(write?: (line: string) => void, options: LoggerOptions = {}): Logger {
  const log = pino(
    {
      level: options.level ?? "info",
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Belt and braces: no call site logs these, and none ever should.
      redact: { paths: ["authorization", "*.authorization", "secret", "*.secret", "api_key"], censor: "[redacted]" },
    },
    write ? { write } : pino.destination({ dest: 1, sync: true }),
  );
  const withStack = (fields: Record<string, unknown> | undefined): Record<string, unknown> => {
    const err = fields?.[ERROR as unknown as string] as unknown;
    if (!(err instanceof Error) || !log.isLevelEnabled("debug")) return fields ?? {};
    return { ...fields, stack: err.stack };
  };
  return {
    debug: (msg, fields) => log.debug(withStack(fields), msg),
    info: (msg, fields) => log.info(withStack(fields), msg),
    warn: (msg, fields) => log.warn(withStack(fields), msg),
    error: (msg, fields) => log.error(withStack(fields), msg),
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
  // Kept out of the JSON; the logger adds the stack from it at debug level.
  Object.defineProperty(out, ERROR, { value: err, enumerable: true });
  return out;
}

/** Messages are kept to one screen: a huge input echoed in an error must not make a huge log line. */
const MAX_MESSAGE = 500;

function clip(text: string): string {
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE - 1)}…` : text;
}
