/**
 * JSON-RPC 2.0 over one transport, for the life of one worker incarnation.
 *
 * The connection matches responses to pending requests by id and routes
 * `$/progress` and `$/checkpoint` to the request that owns their token.
 * It knows nothing of restarts, validation or typed methods: the client
 * above it does. When the transport goes away every pending request is
 * rejected, exactly once, with the error the client's `onExit` chooses.
 *
 * Ids are allocated by the client, not here, so they stay unique across
 * restarts and a late answer from a previous incarnation can never be
 * mistaken for a new request's.
 */

import type { ExitInfo } from "./errors.js";
import { ProtocolError, rpcErrorFromWire } from "./errors.js";
import { encodeLine } from "./framing.js";
import type { Logger } from "./logger.js";
import type { Transport } from "./transport.js";

export type RequestId = number;
export type ProgressToken = string | number;

/** Per-request receivers of the notifications that carry its token. */
export interface NotificationSink {
  token?: ProgressToken;
  onProgress?(value: unknown): void;
  onCheckpoint?(params: unknown): void;
}

export interface Outgoing {
  id: RequestId;
  method: string;
  params: unknown;
  sink?: NotificationSink;
}

interface Pending {
  method: string;
  sink: NotificationSink | undefined;
  resolve(result: unknown): void;
  reject(error: Error): void;
}

interface WireMessage {
  jsonrpc?: unknown;
  id?: unknown;
  method?: unknown;
  params?: unknown;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
}

export interface ConnectionHooks {
  logger: Logger;
  /** Every notification, after routing to its request's sink. */
  onNotification(method: string, params: unknown): void;
  /** The error to reject a request with when the transport goes away. */
  errorOnExit(method: string, exit: ExitInfo): Error;
}

export class Connection {
  private readonly pending = new Map<RequestId, Pending>();
  private readonly byToken = new Map<ProgressToken, NotificationSink>();
  private exit: ExitInfo | undefined;
  readonly transport: Transport;
  /** Settles (never rejects) once the transport is gone and pending requests are failed. */
  readonly closed: Promise<ExitInfo>;

  constructor(
    open: (onLine: (line: string) => void) => Transport,
    private readonly hooks: ConnectionHooks,
  ) {
    this.transport = open((line) => this.receive(line));
    this.closed = this.transport.closed.then((exit) => {
      this.exit = exit;
      const pending = [...this.pending.values()];
      this.pending.clear();
      this.byToken.clear();
      for (const p of pending) p.reject(this.hooks.errorOnExit(p.method, exit));
      return exit;
    });
  }

  get isOpen(): boolean {
    return this.exit === undefined;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** Sends one request; resolves with its raw `result`. */
  request(out: Outgoing): Promise<unknown> {
    const answer = this.track(out);
    this.transport.write(encodeLine(this.envelope(out))).catch((error: Error) => this.fail(out.id, error));
    return answer;
  }

  /** Sends several requests as one JSON-RPC batch (one line). */
  batch(outs: Outgoing[]): Array<Promise<unknown>> {
    const answers = outs.map((out) => this.track(out));
    const line = encodeLine(outs.map((out) => this.envelope(out)));
    this.transport.write(line).catch((error: Error) => outs.forEach((out) => this.fail(out.id, error)));
    return answers;
  }

  /** Sends a notification (no answer expected). */
  notify(method: string, params: unknown): void {
    this.transport.write(encodeLine({ jsonrpc: "2.0", method, params })).catch(() => undefined);
  }

  /**
   * Stops waiting for `id` (its answer, if it comes, is dropped) and stops
   * routing its notifications. Returns whether it was still pending.
   */
  abandon(id: RequestId): boolean {
    const p = this.pending.get(id);
    if (!p) return false;
    this.pending.delete(id);
    if (p.sink?.token !== undefined) this.byToken.delete(p.sink.token);
    return true;
  }

  private envelope(out: Outgoing): object {
    return { jsonrpc: "2.0", id: out.id, method: out.method, params: out.params ?? {} };
  }

  private track(out: Outgoing): Promise<unknown> {
    if (this.exit) return Promise.reject(this.hooks.errorOnExit(out.method, this.exit));
    return new Promise((resolve, reject) => {
      this.pending.set(out.id, { method: out.method, sink: out.sink, resolve, reject });
      if (out.sink?.token !== undefined) this.byToken.set(out.sink.token, out.sink);
    });
  }

  private fail(id: RequestId, error: Error): void {
    const p = this.pending.get(id);
    // A failed write means the peer is gone; `closed` will reject it with
    // the exit details, which say more than EPIPE does.
    if (p && this.exit === undefined) this.hooks.logger.debug?.("write failed", { id, error: error.message });
  }

  private receive(line: string): void {
    if (line.trim() === "") return;
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      this.hooks.logger.error?.("the worker wrote a line that is not JSON", { line: line.slice(0, 200) });
      return;
    }
    for (const item of Array.isArray(message) ? message : [message]) this.dispatch(item as WireMessage);
  }

  private dispatch(message: WireMessage): void {
    if (message === null || typeof message !== "object") {
      this.hooks.logger.error?.("the worker sent a message that is not an object", { message });
    } else if (typeof message.method === "string") {
      this.route(message.method, message.params);
    } else if (typeof message.id === "number" && this.pending.has(message.id)) {
      this.settle(message.id, message);
    } else if (message.id === null && message.error) {
      // An error the worker could not tie to a request (a line it could not parse).
      this.hooks.logger.error?.("the worker rejected a message", { error: message.error });
    } else {
      // Late answers to abandoned (aborted, timed out) requests land here.
      this.hooks.logger.debug?.("answer to no pending request", { id: message.id });
    }
  }

  private settle(id: RequestId, message: WireMessage): void {
    const p = this.pending.get(id)!;
    this.abandon(id);
    if (message.error && typeof message.error === "object") {
      p.reject(rpcErrorFromWire(message.error, p.method));
    } else if ("result" in message) {
      p.resolve(message.result);
    } else {
      p.reject(new ProtocolError(`${p.method}: the worker's answer has neither result nor error`));
    }
  }

  private route(method: string, params: unknown): void {
    const token = (params as { token?: unknown } | null)?.token;
    const sink = typeof token === "string" || typeof token === "number" ? this.byToken.get(token) : undefined;
    if (method === "$/progress") sink?.onProgress?.((params as { value: unknown }).value);
    else if (method === "$/checkpoint") sink?.onCheckpoint?.(params);
    this.hooks.onNotification(method, params);
  }
}
