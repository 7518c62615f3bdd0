/**
 * Where the worker's stderr and the client's own events go.
 *
 * The worker writes one structlog JSON object per line to stderr
 * (`{"event": ..., "level": ..., ...}`); each is handed to the logger method
 * of its level with the other keys as fields. Lines that are not JSON (a
 * Python traceback during a crash, say) go to `warn` as they are.
 */

export type LogFields = Record<string, unknown>;
export type LogMethod = (message: string, fields?: LogFields) => void;

/** Any subset of the usual methods; missing ones drop their messages. */
export interface Logger {
  debug?: LogMethod;
  info?: LogMethod;
  warn?: LogMethod;
  error?: LogMethod;
}

export const silentLogger: Logger = {};

const LEVELS = new Set(["debug", "info", "warn", "error"]);

function methodFor(level: unknown): keyof Logger {
  const name = level === "warning" ? "warn" : level === "critical" ? "error" : level;
  return typeof name === "string" && LEVELS.has(name) ? (name as keyof Logger) : "info";
}

export function logWorkerLine(logger: Logger, line: string): void {
  if (line.trim() === "") return;
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    record = undefined;
  }
  if (record === null || typeof record !== "object" || Array.isArray(record)) {
    logger.warn?.(line, { source: "worker" });
    return;
  }
  const { event, level, ...fields } = record as LogFields;
  logger[methodFor(level)]?.(typeof event === "string" ? event : line, { source: "worker", ...fields });
}

/** A logger writing `level message {fields}` lines to stderr, for scripts. */
export function consoleLogger(minLevel: keyof Logger = "info"): Logger {
  const order: Array<keyof Logger> = ["debug", "info", "warn", "error"];
  const logger: Logger = {};
  for (const level of order.slice(order.indexOf(minLevel))) {
    logger[level] = (message, fields) =>
      process.stderr.write(`${level} ${message}${fields ? ` ${JSON.stringify(fields)}` : ""}\n`);
  }
  return logger;
}
