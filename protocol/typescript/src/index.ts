/**
 * TypeScript client for the optimizer worker (SPEC section 7).
 *
 * The public surface: `WorkerClient` and its options and events, the call
 * handle, the errors, the logger shape, and the protocol types and zod
 * schemas generated from `protocol/schema.json`.
 */

export { WorkerCall, type RequestOptions } from "./call.js";
export {
  PROGRESS_METHODS,
  PROTOCOL_MAJOR,
  StrategyMetricsSchema,
  WorkerClient,
  type BatchEntry,
  type BatchResults,
  type CloseOptions,
  type Settled,
  type StrategyMetrics,
  type WorkerClientEvents,
  type WorkerClientOptions,
} from "./client.js";
export * from "./errors.js";
export { InvalidUtf8Error, LineDecoder, LineTooLongError, encodeLine, type BadLineError } from "./framing.js";
export { consoleLogger, silentLogger, type LogFields, type Logger, type LogMethod } from "./logger.js";
export type { RestartPolicy } from "./restart.js";
export * from "./generated/protocol.js";
