/**
 * Keeps one worker incarnation alive at a time: opens it, prepares it
 * (`initialize`, dataset reloads: the client's `prepare` hook), notices when
 * it goes away, and restarts it under the `CrashWindow` policy.
 *
 * States: idle -> starting -> ready <-> restarting; any -> closing -> closed;
 * starting/restarting -> failed (first start failed, or gave up).
 * `connection()` is the one way in: it resolves with the ready connection,
 * waiting through a restart, or rejects once the supervisor is closed or
 * has failed. A failed *first* start is not retried: it is almost always a
 * wrong command, python or socket path, which backoff would only hide.
 */

import { Connection, type ConnectionHooks } from "./connection.js";
import { WorkerClientError, WorkerExitedError, WorkerUnavailableError, describeExit, type ExitInfo } from "./errors.js";
import type { Logger } from "./logger.js";
import { CrashWindow, type RestartPolicy } from "./restart.js";
import type { Transport } from "./transport.js";

export interface SupervisorOptions {
  open(onLine: (line: string) => void): Transport;
  /** Runs on each new incarnation before it counts as ready (initialize, reloads). */
  prepare(conn: Connection, generation: number): Promise<string[]>;
  /** The new incarnation is ready (state and `connected` already say so). */
  onReady(conn: Connection, generation: number, reloaded: string[]): void;
  onNotification(method: string, params: unknown): void;
  /** The worker went away unasked (before any restart decision). */
  onExit(exit: ExitInfo): void;
  onRestarting(delayMs: number, crashes: number): void;
  onGaveUp(crashes: number, windowMs: number, lastExit: ExitInfo): void;
  restart: RestartPolicy | false;
  startTimeoutMs: number;
  logger: Logger;
}

/** How long a failed start waits for the killed process to be gone. */
const KILL_WAIT_MS = 5_000;

type State = "idle" | "starting" | "ready" | "restarting" | "closing" | "closed" | "failed";

export class Supervisor {
  private state: State = "idle";
  private current: Connection | undefined;
  private launching: Connection | undefined;
  private ready: Promise<Connection> | undefined;
  private generation = 0;
  private readonly crashes: CrashWindow;
  private wakeRestart: (() => void) | undefined;

  constructor(private readonly options: SupervisorOptions) {
    this.crashes = new CrashWindow(options.restart === false ? {} : options.restart);
  }

  get status(): State {
    return this.state;
  }

  /** The ready connection, if there is one right now. */
  get connected(): Connection | undefined {
    return this.state === "ready" ? this.current : undefined;
  }

  /** Resolves with the ready connection, starting the worker if needed. */
  connection(): Promise<Connection> {
    if (this.state === "closing" || this.state === "closed") {
      return Promise.reject(new WorkerUnavailableError("the client is closed"));
    }
    if (!this.ready) {
      this.state = "starting";
      this.ready = this.launch().catch((error: Error) => {
        this.state = "failed";
        throw new WorkerUnavailableError(`the worker did not start: ${error.message}`, { cause: error });
      });
      this.ready.catch(() => undefined); // rejections are seen by the callers of connection()
    }
    return this.ready;
  }

  /** Closes every open incarnation with `stop`, and stops restarting. */
  async close(stop: (conn: Connection) => Promise<void>): Promise<void> {
    if (this.state === "closing" || this.state === "closed") return;
    this.state = "closing";
    this.wakeRestart?.();
    const open = [this.current, this.launching].filter((c): c is Connection => c !== undefined && c.isOpen);
    await Promise.all(open.map(stop));
    this.current = undefined;
    this.state = "closed";
  }

  private async launch(): Promise<Connection> {
    const hooks: ConnectionHooks = {
      logger: this.options.logger,
      onNotification: this.options.onNotification,
      errorOnExit: (method, exit) =>
        this.state === "closing" || this.state === "closed"
          ? new WorkerUnavailableError(`${method}: the client was closed while the request was pending`)
          : new WorkerExitedError(method, exit),
    };
    const conn = new Connection(this.options.open, hooks);
    this.launching = conn;
    let reloaded: string[] = [];
    try {
      const prepared = this.options.prepare(conn, this.generation);
      const exited = conn.closed.then((exit) => {
        throw new WorkerExitedError("start", exit);
      });
      const timer = delay(this.options.startTimeoutMs);
      const timedOut = timer.promise.then(() => {
        throw new WorkerClientError(`the worker was not ready within ${this.options.startTimeoutMs} ms`);
      });
      try {
        reloaded = await Promise.race([prepared, exited, timedOut]);
      } finally {
        timer.cancel();
      }
    } catch (error) {
      conn.transport.kill("SIGKILL");
      // Settle only once it is gone, so no failed start outlives its rejection
      // (bounded: a grandchild holding its stdout would keep 'close' away).
      const gone = delay(KILL_WAIT_MS);
      await Promise.race([conn.closed, gone.promise.catch(() => undefined)]);
      gone.cancel();
      throw error;
    } finally {
      this.launching = undefined;
    }
    if (this.state === "closing" || this.state === "closed") throw new WorkerUnavailableError("the client is closed");
    const generation = this.generation;
    this.generation += 1;
    this.current = conn;
    this.state = "ready";
    void conn.closed.then((exit) => this.lost(conn, exit));
    this.options.onReady(conn, generation, reloaded);
    return conn;
  }

  private lost(conn: Connection, exit: ExitInfo): void {
    if (conn !== this.current || this.state !== "ready") return; // closing, or already replaced
    this.current = undefined;
    this.options.onExit(exit);
    this.options.logger.warn?.(`worker ${describeExit(exit)}`, { stderrTail: exit.stderrTail });
    if (this.options.restart === false) {
      this.state = "failed";
      this.ready = Promise.reject(new WorkerUnavailableError(`the worker ${describeExit(exit)} and restarts are off`));
    } else {
      this.state = "restarting";
      this.ready = this.restartLoop(exit);
    }
    this.ready.catch(() => undefined);
  }

  private async restartLoop(lastExit: ExitInfo): Promise<Connection> {
    for (;;) {
      const decision = this.crashes.recordCrash();
      if (!decision.restart) {
        this.state = "failed";
        this.options.onGaveUp(decision.crashes, this.crashes.windowMs, lastExit);
        throw new WorkerUnavailableError(
          `gave up restarting the worker after ${decision.crashes} crashes within ${this.crashes.windowMs / 1000} s; last: ${describeExit(lastExit)}`,
        );
      }
      this.options.onRestarting(decision.delayMs, decision.crashes);
      const wait = delay(decision.delayMs);
      this.wakeRestart = wait.cancel;
      await wait.promise.catch(() => undefined);
      if (this.state !== "restarting") throw new WorkerUnavailableError("the client is closed");
      try {
        return await this.launch();
      } catch (error) {
        if (this.state !== "restarting") throw error;
        lastExit = error instanceof WorkerExitedError ? { exitCode: error.exitCode, signal: error.signal, stderrTail: error.stderrTail } : { exitCode: null, signal: null, stderrTail: [], cause: error as Error };
        this.options.logger.warn?.("worker restart failed", { error: (error as Error).message });
      }
    }
  }
}

/** A timer as a promise that can be cancelled (it then rejects, and holds no timer). */
function delay(ms: number): { promise: Promise<void>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  let rejectFn: ((e: Error) => void) | undefined;
  const promise = new Promise<void>((resolve, reject) => {
    rejectFn = reject;
    timer = setTimeout(resolve, ms);
  });
  promise.catch(() => undefined);
  return {
    promise,
    cancel: () => {
      clearTimeout(timer);
      rejectFn?.(new Error("cancelled"));
    },
  };
}
