/**
 * `WorkerClient`: typed calls to a supervised optimizer worker.
 *
 * Supervision rules (the why is in the README):
 * - The client spawns `optimizer-worker serve` (or connects to a socket)
 *   on `start()` or on the first request, and sends `initialize`.
 * - When the worker goes away, every pending request rejects with
 *   `WorkerExitedError` naming the exit code or signal. Requests are never
 *   re-sent: the caller decides whether to retry.
 * - The worker is restarted with backoff (see `restart.ts`); requests made
 *   meanwhile wait for it (their timeout and signal still apply). After a
 *   restart, datasets loaded through this client are loaded again from the
 *   sources they came from, under the same ids, before any waiting request
 *   is sent. At 5 crashes within 3 minutes the client gives up: requests
 *   then reject with `WorkerUnavailableError`.
 * - `close()` sends `shutdown` to a worker this client spawned and waits
 *   for it to exit (a socket worker is shared, so by default it is only
 *   disconnected from).
 *
 * Concurrency: requests are independent; any number may be in flight, and
 * the worker answers them in whatever order they finish.
 */

import { EventEmitter } from "node:events";

import { WorkerCall, type RequestOptions } from "./call.js";
import { Connection, type Outgoing } from "./connection.js";
import {
  ProtocolError,
  RequestAbortedError,
  RequestTimeoutError,
  ResultValidationError,
  type ExitInfo,
} from "./errors.js";
import { z } from "zod";

import {
  notificationSchemas,
  resultSchemas,
  StrategyCapitalMetricsSchema,
  StrategyPerTradeMetricsSchema,
  type CheckpointParams,
  type InitializeResult,
  type LoadBarsParams,
  type LoadDatasetParams,
  type SimulateStrategyParams,
  type StrategyCapitalMetrics,
  type StrategyPerTradeMetrics,
  type MethodName,
  type ParamsOf,
  type ProgressValue,
  type ResultOf,
} from "./generated/protocol.js";
import { silentLogger, type Logger } from "./logger.js";
import type { RestartPolicy } from "./restart.js";
import { Supervisor } from "./supervisor.js";
import { socketTransport, spawnTransport, type Transport } from "./transport.js";

/** The protocol major version this client speaks (`initialize` checks it). */
export const PROTOCOL_MAJOR = "1";

/** Methods whose params take a `progress_token` (a test keeps this in step with schema.json). */
export const PROGRESS_METHODS: ReadonlySet<MethodName> = new Set(["optimize", "optimizePerCaller", "groupedEval", "walkForward", "optimizeStrategy"]);

/** What `simulate` with a strategy answers (SPEC 13): metrics whose trades carry `symbol` and `direction`. */
export type StrategyMetrics = StrategyCapitalMetrics | StrategyPerTradeMetrics;
export const StrategyMetricsSchema: z.ZodType<StrategyMetrics> = z.union([StrategyCapitalMetricsSchema, StrategyPerTradeMetricsSchema]);

export interface WorkerClientOptions {
  /** The worker's command line. Default `["optimizer-worker", "serve"]`, or `[python, "-m", "worker", "serve"]` with `python`. */
  command?: string[];
  /** A Python interpreter that has the worker installed (used when `command` is not given). */
  python?: string;
  /** Extra arguments for `serve`, e.g. `["--pool-size", "2"]`. */
  serveArgs?: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Connect to a worker already serving on this Unix socket instead of spawning one. */
  socketPath?: string;
  /** Receives the worker's stderr log lines and the client's own events. */
  logger?: Logger;
  /** Default per-request timeout in ms (default: none; grids can run long). */
  requestTimeoutMs?: number;
  /** How long a start may take, `initialize` included (default 60 s). */
  startTimeoutMs?: number;
  /** Check every result against the protocol schema (default true). */
  validateResults?: boolean;
  /** Restart policy, or `false` to never restart. */
  restart?: RestartPolicy | false;
  /** Sent in `initialize` as `client`. */
  clientName?: string;
}

export interface CloseOptions {
  /** Send `shutdown` first (default: true if this client spawned the worker). */
  shutdown?: boolean;
  /** How long to wait for the exit before SIGTERM, then SIGKILL (default 10 s). */
  timeoutMs?: number;
}

export type BatchEntry = { [M in MethodName]: { method: M; params: ParamsOf<M> } }[MethodName];
export type Settled<T> = { ok: true; value: T } | { ok: false; error: Error };
export type BatchResults<T extends readonly BatchEntry[]> = { -readonly [K in keyof T]: Settled<ResultOf<T[K]["method"]>> };

export interface WorkerClientEvents {
  /** A worker incarnation answered `initialize` (and had its datasets reloaded). */
  ready: [info: { generation: number; pid: number | undefined; server: InitializeResult; reloaded: string[] }];
  /** The worker went away without being asked to. */
  exit: [exit: ExitInfo];
  /** A restart is scheduled. */
  restarting: [info: { delayMs: number; crashes: number }];
  /** A remembered dataset could not be loaded again after a restart (it is forgotten). */
  reloadFailed: [info: { datasetId: string; error: Error }];
  /** Too many crashes: the client stopped restarting the worker. */
  gaveUp: [info: { crashes: number; windowMs: number; lastExit: ExitInfo }];
  progress: [event: { token: string | number; value: ProgressValue }];
  checkpoint: [event: CheckpointParams];
  closed: [];
}

export interface WorkerClient {
  on<E extends keyof WorkerClientEvents>(event: E, listener: (...args: WorkerClientEvents[E]) => void): this;
  once<E extends keyof WorkerClientEvents>(event: E, listener: (...args: WorkerClientEvents[E]) => void): this;
  off<E extends keyof WorkerClientEvents>(event: E, listener: (...args: WorkerClientEvents[E]) => void): this;
  emit<E extends keyof WorkerClientEvents>(event: E, ...args: WorkerClientEvents[E]): boolean;
}

export class WorkerClient extends EventEmitter {
  private nextId = 1;
  private info: InitializeResult | undefined;
  private readonly supervisor: Supervisor;
  private readonly logger: Logger;
  private readonly validateResults: boolean;
  /** Sources of the datasets loaded through this client, by id, for reloads. */
  private readonly datasets = new Map<string, LoadDatasetParams>();
  /** Sources of the bars loaded through this client (`loadBars`), by id, for reloads. */
  private readonly bars = new Map<string, LoadBarsParams>();
  private readonly tokenPrefix = `ts-${process.pid}-${Math.random().toString(36).slice(2, 8)}-`;

  constructor(private readonly options: WorkerClientOptions = {}) {
    super();
    this.logger = options.logger ?? silentLogger;
    this.validateResults = options.validateResults ?? true;
    this.supervisor = new Supervisor({
      open: (onLine) => this.openTransport(onLine),
      prepare: (conn, generation) => this.prepare(conn, generation),
      onReady: (conn, generation, reloaded) =>
        this.emit("ready", { generation, pid: conn.transport.pid, server: this.info!, reloaded }),
      onNotification: (method, params) => this.notification(method, params),
      onExit: (exit) => this.emit("exit", exit),
      onRestarting: (delayMs, crashes) => this.emit("restarting", { delayMs, crashes }),
      onGaveUp: (crashes, windowMs, lastExit) => this.emit("gaveUp", { crashes, windowMs, lastExit }),
      restart: options.restart ?? {},
      startTimeoutMs: options.startTimeoutMs ?? 60_000,
      logger: this.logger,
    });
  }

  /** Creates a client and waits until its worker is ready. */
  static async start(options: WorkerClientOptions = {}): Promise<WorkerClient> {
    const client = new WorkerClient(options);
    await client.start();
    return client;
  }

  /** Starts the worker (once) and resolves with its `initialize` answer. */
  async start(): Promise<InitializeResult> {
    await this.supervisor.connection();
    return this.info!;
  }

  /** The running worker's `initialize` answer (undefined before the first start). */
  get serverInfo(): InitializeResult | undefined {
    return this.info;
  }

  /** The pid of the worker process this client spawned, while one is ready. */
  get pid(): number | undefined {
    return this.supervisor.connected?.transport.pid;
  }

  /** "idle", "starting", "ready", "restarting", "closing", "closed" or "failed". */
  get status(): string {
    return this.supervisor.status;
  }

  /** Ids of the datasets this client will load again after a restart. */
  get rememberedDatasets(): string[] {
    return [...this.datasets.keys(), ...this.bars.keys()];
  }

  // ------------------------------------------------------------ typed methods

  initialize(params: ParamsOf<"initialize"> = {}, options?: RequestOptions) {
    return this.request("initialize", params, options);
  }
  ping(options?: RequestOptions) {
    return this.request("ping", {}, options);
  }
  async loadDataset(params: ParamsOf<"loadDataset">, options?: RequestOptions) {
    const info = await this.request("loadDataset", params, options);
    // A reference to the source (not a copy), for a reload after a restart.
    this.datasets.set(info.dataset_id, { ...params, dataset_id: info.dataset_id });
    return info;
  }
  /** SPEC 13: bars (a file, or a directory of per-symbol files), cached like datasets. */
  async loadBars(params: ParamsOf<"loadBars">, options?: RequestOptions) {
    const info = await this.request("loadBars", params, options);
    this.bars.set(info.dataset_id, { ...params, dataset_id: info.dataset_id });
    return info;
  }
  dropDataset(params: ParamsOf<"dropDataset">, options?: RequestOptions) {
    this.datasets.delete(params.dataset_id);
    this.bars.delete(params.dataset_id);
    return this.request("dropDataset", params, options);
  }
  listDatasets(options?: RequestOptions) {
    return this.request("listDatasets", {}, options);
  }
  /** Calls (`params` a parameter set), or with `strategy` one strategy's trades (SPEC 13). */
  simulate(params: ParamsOf<"simulate">, options?: RequestOptions): Promise<ResultOf<"simulate">>;
  simulate(params: SimulateStrategyParams, options?: RequestOptions): Promise<StrategyMetrics>;
  simulate(params: ParamsOf<"simulate"> | SimulateStrategyParams, options?: RequestOptions): Promise<ResultOf<"simulate"> | StrategyMetrics> {
    if ("strategy" in params) {
      return this.makeCall("simulate", params as unknown as ParamsOf<"simulate">, options ?? {}, false,
        (conn, out) => conn.request(out), undefined, StrategyMetricsSchema).result as unknown as Promise<StrategyMetrics>;
    }
    return this.request("simulate", params, options);
  }
  optimize(params: ParamsOf<"optimize">, options?: RequestOptions) {
    return this.request("optimize", params, options);
  }
  optimizePerCaller(params: ParamsOf<"optimizePerCaller">, options?: RequestOptions) {
    return this.request("optimizePerCaller", params, options);
  }
  groupedEval(params: ParamsOf<"groupedEval">, options?: RequestOptions) {
    return this.request("groupedEval", params, options);
  }
  /** SPEC 12: walk-forward folds, aggregates, the stitched out-of-sample run, PBO. */
  walkForward(params: ParamsOf<"walkForward">, options?: RequestOptions) {
    return this.request("walkForward", params, options);
  }
  /** SPEC 13: a strategy's signal sets over timeframes and symbols, times the exit grid. */
  optimizeStrategy(params: ParamsOf<"optimizeStrategy">, options?: RequestOptions) {
    return this.request("optimizeStrategy", params, options);
  }
  /** Asks the worker to cancel a request in flight (an AbortSignal does this for you). */
  cancel(params: ParamsOf<"cancel">, options?: RequestOptions) {
    return this.request("cancel", params, options);
  }
  stats(options?: RequestOptions) {
    return this.request("stats", {}, options);
  }

  // ------------------------------------------------------------ generic calls

  /** Sends any method and resolves with its validated result. */
  request<M extends MethodName>(method: M, params: ParamsOf<M>, options: RequestOptions = {}): Promise<ResultOf<M>> {
    return this.makeCall(method, params, options, wantsProgress(options), (conn, out) => conn.request(out)).result;
  }

  /**
   * Sends any method and returns the call at once: its `id`, its `result`,
   * and its `progress` and `checkpoints` as async iterables. For the
   * methods that report progress a `progress_token` is added when absent
   * (`request` and the typed methods add one only when given `onProgress`
   * or `onCheckpoint`: progress costs the worker a ticker per request).
   */
  call<M extends MethodName>(method: M, params: ParamsOf<M>, options: RequestOptions = {}): WorkerCall<M> {
    return this.makeCall(method, params, options, true, (conn, out) => conn.request(out));
  }

  /**
   * Sends several requests as one JSON-RPC batch (one line). Each entry
   * settles on its own, as `{ok: true, value}` or `{ok: false, error}`; the
   * signal and timeout apply to each entry.
   */
  async batch<const T extends readonly BatchEntry[]>(entries: T, options: RequestOptions = {}): Promise<BatchResults<T>> {
    if (entries.length === 0) throw new TypeError("batch needs at least one entry (JSON-RPC forbids an empty batch)");
    const conn = await this.supervisor.connection();
    const outs: Outgoing[] = [];
    const sent: Array<(answer: Promise<unknown>) => void> = [];
    const calls = entries.map((entry) =>
      this.makeCall(entry.method, entry.params as ParamsOf<MethodName>, options, wantsProgress(options), (_conn, out) => {
        outs.push(out);
        return new Promise<unknown>((resolve) => sent.push(resolve));
      }, conn),
    );
    // Every entry has queued its message synchronously (the connection was given).
    // Entries already aborted queued nothing; if none is left, send nothing
    // (an empty batch is an Invalid Request).
    if (outs.length > 0) conn.batch(outs).forEach((answer, i) => sent[i]!(answer));
    const settled = await Promise.allSettled(calls.map((c) => c.result));
    return settled.map((s) => (s.status === "fulfilled" ? { ok: true, value: s.value } : { ok: false, error: s.reason as Error })) as BatchResults<T>;
  }

  // ------------------------------------------------------------ lifecycle

  /**
   * Stops the worker: `shutdown`, then waits for it to exit (SIGTERM, then
   * SIGKILL, if it does not within `timeoutMs`). Pending and waiting
   * requests reject with `WorkerUnavailableError`. Safe to call twice.
   */
  async close(options: CloseOptions = {}): Promise<void> {
    const shutdown = options.shutdown ?? this.options.socketPath === undefined;
    const timeoutMs = options.timeoutMs ?? 10_000;
    await this.supervisor.close(async (conn) => {
      if (shutdown) {
        const answer = conn.request({ id: this.nextId++, method: "shutdown", params: {} });
        await within(answer.catch(() => undefined), timeoutMs);
      }
      conn.transport.end();
      if (await within(conn.closed, timeoutMs)) return;
      conn.transport.kill("SIGTERM");
      if (await within(conn.closed, 2_000)) return;
      conn.transport.kill("SIGKILL");
      await conn.closed;
    });
    this.emit("closed");
  }

  // ------------------------------------------------------------ internals

  private openTransport(onLine: (line: string) => void): Transport {
    const { socketPath, python, serveArgs = [] } = this.options;
    if (socketPath !== undefined) return socketTransport(socketPath, onLine, this.logger);
    const base = this.options.command ?? (python ? [python, "-m", "worker", "serve"] : ["optimizer-worker", "serve"]);
    return spawnTransport({ command: [...base, ...serveArgs], cwd: this.options.cwd, env: this.options.env }, onLine, this.logger);
  }

  /** initialize, then (after a restart) load the remembered datasets again. */
  private async prepare(conn: Connection, generation: number): Promise<string[]> {
    const info = this.check("initialize", await conn.request(this.out("initialize", { client: this.options.clientName ?? "optimizer-worker-ts" })));
    const major = info.protocol_version.split(".")[0];
    if (major !== PROTOCOL_MAJOR) {
      throw new ProtocolError(`the worker speaks protocol ${info.protocol_version}; this client speaks ${PROTOCOL_MAJOR}.x`);
    }
    this.info = info;
    const reloaded: string[] = [];
    if (generation > 0 && this.datasets.size + this.bars.size > 0) {
      const held = this.check("listDatasets", await conn.request(this.out("listDatasets", {})));
      const present = new Set([...held.datasets, ...(held.bars ?? [])].map((d) => d.dataset_id));
      const sources = [
        ...[...this.datasets].map(([id, source]) => ({ id, method: "loadDataset" as const, source })),
        ...[...this.bars].map(([id, source]) => ({ id, method: "loadBars" as const, source })),
      ];
      for (const { id: datasetId, method, source } of sources) {
        if (present.has(datasetId)) continue; // a socket worker that outlived our connection
        try {
          this.check(method, await conn.request(this.out(method, source)));
          reloaded.push(datasetId);
        } catch (error) {
          if (!conn.isOpen) throw error; // the new worker died too: that is a crash, not a bad source
          this.datasets.delete(datasetId);
          this.bars.delete(datasetId);
          this.logger.warn?.("could not reload a dataset after a restart", { datasetId, error: (error as Error).message });
          this.emit("reloadFailed", { datasetId, error: error as Error });
        }
      }
    }
    return reloaded;
  }

  private out(method: string, params: unknown): Outgoing {
    return { id: this.nextId++, method, params };
  }

  private check<M extends MethodName>(method: M, raw: unknown, schema?: z.ZodType): ResultOf<M> {
    if (!this.validateResults) return raw as ResultOf<M>;
    const parsed = (schema ?? resultSchemas[method]).safeParse(raw);
    if (!parsed.success) throw new ResultValidationError(method, parsed.error.issues);
    return parsed.data as ResultOf<M>;
  }

  private notification(method: string, params: unknown): void {
    if (method === "$/progress") {
      const parsed = notificationSchemas["$/progress"].safeParse(params);
      if (parsed.success) this.emit("progress", { token: parsed.data.token as string | number, value: parsed.data.value });
      else this.logger.warn?.("malformed $/progress", { issues: parsed.error.issues });
    } else if (method === "$/checkpoint") {
      const parsed = notificationSchemas["$/checkpoint"].safeParse(params);
      if (parsed.success) this.emit("checkpoint", parsed.data);
      else this.logger.warn?.("malformed $/checkpoint", { issues: parsed.error.issues });
    } else {
      this.logger.debug?.("notification", { method });
    }
  }

  private makeCall<M extends MethodName>(
    method: M,
    params: ParamsOf<M>,
    options: RequestOptions,
    addToken: boolean,
    send: (conn: Connection, out: Outgoing) => Promise<unknown>,
    given?: Connection,
    schema?: z.ZodType,
  ): WorkerCall<M> {
    const id = this.nextId++;
    const ownToken = (params as { progress_token?: string | number | null }).progress_token ?? undefined;
    const token = PROGRESS_METHODS.has(method) ? (ownToken ?? (addToken ? `${this.tokenPrefix}${id}` : undefined)) : undefined;
    const sentParams = token !== undefined && ownToken === undefined ? { ...params, progress_token: token } : params;
    return new WorkerCall(id, method, token, (call) => this.run(call, sentParams, options, send, given, schema), options);
  }

  /**
   * Waits for a ready worker, sends, and settles exactly once: with the
   * validated result, the worker's error, or the caller's abort/timeout (which
   * also sends `cancel` if the request was already out).
   */
  private run<M extends MethodName>(
    call: WorkerCall<M>,
    params: unknown,
    options: RequestOptions,
    send: (conn: Connection, out: Outgoing) => Promise<unknown>,
    given: Connection | undefined,
    schema?: z.ZodType,
  ): Promise<ResultOf<M>> {
    const timeoutMs = options.timeoutMs ?? this.options.requestTimeoutMs;
    const { signal } = options;
    return new Promise<ResultOf<M>>((resolve, reject) => {
      let conn: Connection | undefined;
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (settle: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        settle();
      };
      const stop = (error: Error) =>
        finish(() => {
          if (conn?.abandon(call.id)) this.sendCancel(conn, call.id);
          reject(error);
        });
      const onAbort = () => stop(new RequestAbortedError(call.method, signal?.reason));
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeoutMs !== undefined) timer = setTimeout(() => stop(new RequestTimeoutError(call.method, timeoutMs)), timeoutMs);

      const sink = call.progressToken === undefined ? undefined : {
        token: call.progressToken,
        onProgress: (value: unknown) => {
          const parsed = notificationSchemas["$/progress"].safeParse({ token: call.progressToken, value });
          if (parsed.success) call.deliverProgress(parsed.data.value);
        },
        onCheckpoint: (event: unknown) => {
          const parsed = notificationSchemas["$/checkpoint"].safeParse(event);
          if (parsed.success) call.deliverCheckpoint(parsed.data);
        },
      };
      const connected = given ? Promise.resolve(given) : this.supervisor.connection();
      const sendNow = (c: Connection) => {
        if (settled) return new Promise<never>(() => undefined); // aborted while waiting: nothing was sent
        conn = c;
        return send(c, { id: call.id, method: call.method, params, sink });
      };
      // With a given connection (a batch) the message must be queued synchronously.
      const answer = given ? sendNow(given) : connected.then(sendNow);
      answer.then(
        (raw) => finish(() => {
          try {
            resolve(this.check(call.method, raw, schema));
          } catch (error) {
            reject(error);
          }
        }),
        (error: Error) => finish(() => reject(error)),
      );
    });
  }

  private sendCancel(conn: Connection, id: number): void {
    conn.request(this.out("cancel", { id })).catch((error: Error) => this.logger.debug?.("cancel failed", { id, error: error.message }));
  }
}

function wantsProgress(options: RequestOptions): boolean {
  return options.onProgress !== undefined || options.onCheckpoint !== undefined;
}

/** Waits for `promise` at most `ms`; says whether it settled in time. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
