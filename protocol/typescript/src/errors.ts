/**
 * Every error the client rejects with. All extend `WorkerClientError`, so
 * one `instanceof` separates them from bugs in the caller's own code.
 *
 * - `RpcError` (and a subclass per worker error code): the worker answered
 *   with an error response. `code`, `message` and `data` are the worker's.
 * - `WorkerExitedError`: the worker process died (or the socket closed)
 *   while the request was pending. The request is *not* re-sent: it may have
 *   had effects (a checkpointed run) or be expensive; the caller decides.
 * - `RequestAbortedError`: the caller's AbortSignal fired (`name` is
 *   "AbortError", as for fetch).
 * - `RequestTimeoutError`: the request's own timeout expired.
 * - `ResultValidationError`: the worker's result does not match the schema.
 * - `WorkerUnavailableError`: the client is closed, or gave up restarting.
 * - `ProtocolError`: the worker wrote something that is not JSON-RPC.
 */

/** JSON-RPC and worker error codes (SPEC section 7). */
export const ErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  RequestCancelled: -32800,
  UnknownDataset: -32001,
  InvalidDataset: -32002,
  ResourceLimit: -32003,
  CheckpointMismatch: -32004,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class WorkerClientError extends Error {
  override name = "WorkerClientError";
}

/** The worker answered a request with a JSON-RPC error. */
export class RpcError extends WorkerClientError {
  override name = "RpcError";
  constructor(
    readonly code: number,
    message: string,
    readonly data: unknown,
    readonly method: string,
  ) {
    super(`${method}: ${message} (code ${code})`);
  }

  /** The JSON path of the offending field, when the worker named one. */
  get path(): string | undefined {
    const data = this.data as { path?: unknown } | null | undefined;
    return typeof data?.path === "string" ? data.path : undefined;
  }
}

export class InvalidParamsError extends RpcError {
  override name = "InvalidParamsError";
}
export class RequestCancelledError extends RpcError {
  override name = "RequestCancelledError";
}
export class UnknownDatasetError extends RpcError {
  override name = "UnknownDatasetError";
}
export class InvalidDatasetError extends RpcError {
  override name = "InvalidDatasetError";
}
export class ResourceLimitError extends RpcError {
  override name = "ResourceLimitError";
}
export class CheckpointMismatchError extends RpcError {
  override name = "CheckpointMismatchError";
}

const BY_CODE: Record<number, typeof RpcError> = {
  [ErrorCode.InvalidParams]: InvalidParamsError,
  [ErrorCode.RequestCancelled]: RequestCancelledError,
  [ErrorCode.UnknownDataset]: UnknownDatasetError,
  [ErrorCode.InvalidDataset]: InvalidDatasetError,
  [ErrorCode.ResourceLimit]: ResourceLimitError,
  [ErrorCode.CheckpointMismatch]: CheckpointMismatchError,
};

/** Builds the most specific `RpcError` subclass for a wire error object. */
export function rpcErrorFromWire(error: { code: number; message: string; data?: unknown }, method: string): RpcError {
  const Class = BY_CODE[error.code] ?? RpcError;
  return new Class(error.code, error.message, error.data ?? null, method);
}

/** How the worker went away: an exit code, a signal, or a closed socket. */
export interface ExitInfo {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** The last lines the worker wrote to stderr before it went (may be empty). */
  stderrTail: string[];
  /** Set when the connection failed rather than a process exiting. */
  cause?: Error;
}

/** "was killed by signal SIGKILL", "exited with code 1", ... (follows "the worker"). */
export function describeExit(exit: ExitInfo): string {
  if (exit.signal) return `was killed by signal ${exit.signal}`;
  if (exit.exitCode !== null) return `exited with code ${exit.exitCode}`;
  return exit.cause ? `could not be reached (${exit.cause.message})` : "closed the connection";
}

/** The worker died while this request was pending; it was not re-sent. */
export class WorkerExitedError extends WorkerClientError {
  override name = "WorkerExitedError";
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderrTail: string[];
  constructor(
    readonly method: string,
    exit: ExitInfo,
  ) {
    // A traceback's last line says why Python died; after a signal, stderr says nothing useful.
    const last = exit.signal ? undefined : exit.stderrTail[exit.stderrTail.length - 1];
    const tail = last ? `; last stderr line: ${last}` : "";
    super(`${method}: the worker ${describeExit(exit)} while the request was pending (not re-sent)${tail}`, {
      cause: exit.cause,
    });
    this.exitCode = exit.exitCode;
    this.signal = exit.signal;
    this.stderrTail = exit.stderrTail;
  }
}

export class RequestAbortedError extends WorkerClientError {
  override name = "AbortError";
  constructor(
    readonly method: string,
    reason: unknown,
  ) {
    super(`${method}: aborted by the caller's signal; cancel was sent to the worker`, { cause: reason });
  }
}

export class RequestTimeoutError extends WorkerClientError {
  override name = "RequestTimeoutError";
  constructor(
    readonly method: string,
    readonly timeoutMs: number,
  ) {
    super(`${method}: no answer within ${timeoutMs} ms; cancel was sent to the worker`);
  }
}

export class ResultValidationError extends WorkerClientError {
  override name = "ResultValidationError";
  constructor(
    readonly method: string,
    readonly issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }>,
  ) {
    const first = issues[0];
    const where = first ? ` at $${first.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("")}: ${first.message}` : "";
    super(`${method}: the worker's result does not match the protocol schema${where} (${issues.length} issue(s))`);
  }
}

export class WorkerUnavailableError extends WorkerClientError {
  override name = "WorkerUnavailableError";
}

export class ProtocolError extends WorkerClientError {
  override name = "ProtocolError";
}
