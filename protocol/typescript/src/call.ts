/**
 * One request in flight, as the caller sees it: its id, its result, and its
 * `$/progress` and `$/checkpoint` notifications as async iterables that end
 * when the request settles (however it settles).
 */

import type { CheckpointParams, MethodName, ProgressValue, ResultOf } from "./generated/protocol.js";
import { AsyncQueue } from "./queue.js";

export interface RequestOptions {
  /** Aborting sends `cancel` to the worker and rejects with `RequestAbortedError`. */
  signal?: AbortSignal;
  /**
   * Rejects with `RequestTimeoutError` (and sends `cancel`) when no answer
   * came in this many ms, counted from the call, including any wait for a
   * restarting worker. Default: the client's `requestTimeoutMs` (none).
   */
  timeoutMs?: number;
  /** Called with each `$/progress` value of this request, in order. */
  onProgress?: (value: ProgressValue) => void;
  /** Called each time a checkpointed run has made its progress durable. */
  onCheckpoint?: (event: CheckpointParams) => void;
}

export class WorkerCall<M extends MethodName> {
  /** Settles with the validated result, or rejects with a `WorkerClientError`. */
  readonly result: Promise<ResultOf<M>>;
  private readonly progressQueue = new AsyncQueue<ProgressValue>();
  private readonly checkpointQueue = new AsyncQueue<CheckpointParams>();

  constructor(
    /** The JSON-RPC id this request is (or will be) sent with. */
    readonly id: number,
    readonly method: M,
    /** The `progress_token` sent with it, if the method takes one. */
    readonly progressToken: string | number | undefined,
    run: (call: WorkerCall<M>) => Promise<ResultOf<M>>,
    private readonly options: RequestOptions,
  ) {
    this.result = run(this);
    const end = () => {
      this.progressQueue.end();
      this.checkpointQueue.end();
    };
    // The iterables end either way; the outcome itself is read from `result`.
    this.result.then(end, end);
  }

  /** `$/progress` values (begin, report..., end), buffered from the start. */
  get progress(): AsyncIterable<ProgressValue> {
    return this.progressQueue;
  }

  /** `$/checkpoint` events of a checkpointed run, buffered from the start. */
  get checkpoints(): AsyncIterable<CheckpointParams> {
    return this.checkpointQueue;
  }

  /** @internal fed by the client from the connection's routing. */
  deliverProgress(value: ProgressValue): void {
    this.progressQueue.push(value);
    this.options.onProgress?.(value);
  }

  /** @internal */
  deliverCheckpoint(event: CheckpointParams): void {
    this.checkpointQueue.push(event);
    this.options.onCheckpoint?.(event);
  }
}
