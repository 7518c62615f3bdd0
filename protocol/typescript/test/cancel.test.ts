/**
 * Cancellation against the real worker: an AbortSignal mid-request, a signal
 * aborted before the call, a per-request timeout, and an abort while the
 * request waits for a restarting worker. Each must settle the promise with
 * the right error *and* stop the work on the worker.
 */

import { once } from "node:events";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import {
  RequestAbortedError,
  RequestTimeoutError,
  WorkerClient,
  WorkerClientError,
  WorkerExitedError,
  type ProgressValue,
} from "../src/index.js";
import { clientWithDemo, longGrid, workerOptions } from "./_worker.js";

/** ~190k points: several seconds of work, far longer than any wait below. */
const LONG = longGrid(40, 40, 120);
const LONG_POINTS = LONG.tp_mults.length * LONG.sl_mults.length * LONG.max_hold_hrs.length;

describe("cancellation", () => {
  let client: WorkerClient;
  let datasetId: string;

  before(async () => {
    ({ client, datasetId } = await clientWithDemo());
  });

  after(async () => {
    await client?.close();
  });

  /**
   * `requests_in_flight` once the worker is idle again. `stats` counts itself,
   * so idle is 1. A cancel is answered at once, but the cancelled handler
   * still finishes its current span (a worker thread holding the in-process
   * limiter) before it unwinds; a `simulate` needs that limiter, so once one
   * has answered the span is over. The loop only covers the few event-loop
   * steps the cancelled task takes to unwind after that; it is bounded, and
   * a request that was not cancelled would keep the count up for seconds.
   */
  async function inFlightWhenSettled(): Promise<number> {
    let inFlight = -1;
    for (let i = 0; i < 10; i++) {
      await client.simulate({ dataset_id: datasetId, params: { tp_mult: 2, sl_mult: 0.9, max_hold_hrs: 48 }, include_trades: false });
      inFlight = (await client.stats()).requests_in_flight;
      if (inFlight === 1) break;
    }
    return inFlight;
  }

  /** Collects the client-level progress of one token (also after the call let go of it). */
  function watchToken(): { values: (token: string | number | undefined) => ProgressValue[]; stop: () => void } {
    const seen: Array<{ token: string | number; value: ProgressValue }> = [];
    const listener = (event: { token: string | number; value: ProgressValue }) => seen.push(event);
    client.on("progress", listener);
    return {
      values: (token) => seen.filter((e) => e.token === token).map((e) => e.value),
      stop: () => client.off("progress", listener),
    };
  }

  test("aborting mid-request rejects with AbortError, cancels the work, and the worker stays healthy", async () => {
    assert.equal((await client.stats()).requests_in_flight, 1, "idle before: stats counts itself");
    const controller = new AbortController();
    const watch = watchToken();
    const reason = new Error("the user pressed stop");
    const seen: ProgressValue[] = [];
    try {
      const call = client.call(
        "optimize",
        { dataset_id: datasetId, param_grid: LONG },
        {
          signal: controller.signal,
          onProgress: (value) => {
            seen.push(value);
            if (value.kind === "report") controller.abort(reason);
          },
        },
      );
      const error = await call.result.then(
        () => assert.fail("an aborted request must not resolve"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof RequestAbortedError, `got ${String(error)}`);
      assert.ok(error instanceof WorkerClientError);
      assert.equal(error.name, "AbortError");
      assert.equal(error.method, "optimize");
      assert.equal(error.cause, reason, "the signal's reason is the cause");
      // The call's iterable ended with the request, holding what came before the abort.
      const iterated: ProgressValue[] = [];
      for await (const value of call.progress) iterated.push(value);
      assert.deepEqual(iterated, seen);
      assert.deepEqual(seen.map((v) => v.kind), ["begin", "report"], "nothing is delivered to the call after the abort");

      await client.ping();
      assert.equal(await inFlightWhenSettled(), 1, "the cancelled optimize is no longer running");
      const late = watch.values(call.progressToken);
      assert.ok(late.every((v) => v.done < LONG_POINTS), "the worker never finished the cancelled grid");
      assert.ok(!late.some((v) => v.kind === "end"), "a cancelled request's end is dropped: the -32800 went out first");
    } finally {
      watch.stop();
    }
    // Still usable for real work.
    const small = await client.optimize({ dataset_id: datasetId, param_grid: longGrid(3, 3, 2) });
    assert.equal(small.params_evaluated, 18);
  });

  test("an already aborted signal rejects at once and sends nothing", async () => {
    const watch = watchToken();
    try {
      const seen: ProgressValue[] = [];
      const call = client.call(
        "optimize",
        { dataset_id: datasetId, param_grid: LONG },
        { signal: AbortSignal.abort(), onProgress: (value) => seen.push(value) },
      );
      await assert.rejects(call.result, (e: unknown) => e instanceof RequestAbortedError && e.name === "AbortError");
      // Had it been sent, the long grid would be running now (and reporting).
      assert.equal((await client.stats()).requests_in_flight, 1, "the worker got no optimize");
      await client.ping();
      assert.deepEqual(seen, []);
      assert.deepEqual(watch.values(call.progressToken), []);
      const iterated: ProgressValue[] = [];
      for await (const value of call.progress) iterated.push(value);
      assert.deepEqual(iterated, []);
    } finally {
      watch.stop();
    }
  });

  test("an already aborted signal does not even start an idle client's worker", async () => {
    const idle = new WorkerClient(workerOptions());
    try {
      await assert.rejects(idle.ping({ signal: AbortSignal.abort() }), RequestAbortedError);
      assert.equal(idle.status, "idle");
      assert.equal(idle.pid, undefined);
    } finally {
      await idle.close();
    }
  });

  test("a per-request timeout rejects with RequestTimeoutError and cancels the work", async () => {
    const watch = watchToken();
    try {
      const seen: ProgressValue[] = [];
      const timeoutMs = 1_000;
      const call = client.call(
        "optimize",
        { dataset_id: datasetId, param_grid: LONG },
        { timeoutMs, onProgress: (value) => seen.push(value) },
      );
      const error = await call.result.then(
        () => assert.fail("the long grid must not finish within the timeout"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof RequestTimeoutError, `got ${String(error)}`);
      assert.equal(error.timeoutMs, timeoutMs);
      assert.match(error.message, /1000 ms/);
      assert.ok(seen.length >= 1 && seen[0]!.kind === "begin", "the request was running on the worker when it timed out");
      assert.ok(seen.every((v) => v.done < LONG_POINTS));

      assert.equal(await inFlightWhenSettled(), 1, "the timed-out optimize was cancelled on the worker");
      assert.ok(!watch.values(call.progressToken).some((v) => v.kind === "end" || v.done === LONG_POINTS));
      await client.ping();
    } finally {
      watch.stop();
    }
  });

  test("a request waiting for a restarting worker can be aborted; it is never sent", async () => {
    const oldPid = client.pid!;
    const restarting = once(client, "restarting");
    const ready = once(client, "ready");
    process.kill(oldPid, "SIGKILL");
    await restarting;
    assert.equal(client.status, "restarting");

    const controller = new AbortController();
    const seen: ProgressValue[] = [];
    const watch = watchToken();
    try {
      const call = client.call(
        "optimize",
        { dataset_id: datasetId, param_grid: LONG },
        { signal: controller.signal, onProgress: (value) => seen.push(value) },
      );
      // A second one waits too, and is not aborted: it is sent once the worker is back.
      const waiting = client.optimize({ dataset_id: datasetId, param_grid: longGrid(3, 3, 2) });
      controller.abort();
      await assert.rejects(call.result, RequestAbortedError);
      assert.equal(client.status, "restarting", "rejected while the worker was still restarting");

      const [info] = await ready;
      assert.equal(info.generation, 1);
      assert.deepEqual(info.reloaded, [datasetId]);
      assert.equal((await waiting).params_evaluated, 18, "the other waiting request was sent to the new worker");
      assert.equal((await client.stats()).requests_in_flight, 1, "the aborted one was never sent");
      assert.deepEqual(seen, []);
      assert.deepEqual(watch.values(call.progressToken), []);
    } finally {
      watch.stop();
    }
  });

  test("a request pending when the worker dies rejects with WorkerExitedError, not AbortError, even if aborted later", async () => {
    const controller = new AbortController();
    let killed!: () => void;
    const running = new Promise<void>((resolve) => (killed = resolve));
    const call = client.call(
      "optimize",
      { dataset_id: datasetId, param_grid: LONG },
      { signal: controller.signal, onProgress: () => killed() },
    );
    await running;
    const ready = once(client, "ready");
    process.kill(client.pid!, "SIGKILL");
    await assert.rejects(call.result, WorkerExitedError);
    controller.abort(); // settles once only: nothing changes, nothing throws
    await assert.rejects(call.result, WorkerExitedError);
    await ready;
    assert.equal((await client.stats()).requests_in_flight, 1);
  });
});
