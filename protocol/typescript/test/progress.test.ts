/**
 * `$/progress` and `$/checkpoint` against the real worker: the order of the
 * reports, the three ways to receive them (callback, iterable, client event),
 * caller-chosen tokens, and checkpointed runs.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { isAbsolute, join, relative } from "node:path";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { WorkerClient, type CheckpointParams, type ProgressValue } from "../src/index.js";
import { clientWithDemo, longGrid } from "./_worker.js";

/** The shape every progress sequence must have. */
function assertWellFormed(values: ProgressValue[], label: string): void {
  assert.ok(values.length >= 2, `${label}: at least begin and end, got ${values.length}`);
  assert.equal(values[0]!.kind, "begin", `${label}: the first is begin`);
  assert.equal(values.at(-1)!.kind, "end", `${label}: the last is end`);
  values.slice(1, -1).forEach((v, i) => assert.equal(v.kind, "report", `${label}: value ${i + 1} is a report`));
  for (let i = 1; i < values.length; i++) {
    assert.ok(values[i]!.done >= values[i - 1]!.done, `${label}: done never goes down (${values[i - 1]!.done} -> ${values[i]!.done})`);
  }
  for (const v of values) {
    assert.ok(v.done <= v.total, `${label}: done ${v.done} <= total ${v.total}`);
    assert.equal(v.unit, "runs");
  }
  const last = values.at(-1)!;
  assert.equal(last.done, last.total, `${label}: the last has done == total`);
}

describe("progress", () => {
  let client: WorkerClient;
  let datasetId: string;

  before(async () => {
    ({ client, datasetId } = await clientWithDemo());
  });

  after(async () => {
    await client?.close();
  });

  test("optimize on a long grid: begin, reports, end, seen alike by the callback, the iterable and the client event", async () => {
    const grid = longGrid(20, 20, 120);
    const points = grid.tp_mults.length * grid.sl_mults.length * grid.max_hold_hrs.length;
    const order: string[] = []; // "progress:<kind>" and "result", as they happen
    const viaCallback: ProgressValue[] = [];
    const viaEvent: Array<{ token: string | number; value: ProgressValue }> = [];
    const onEvent = (event: { token: string | number; value: ProgressValue }) => viaEvent.push(event);
    client.on("progress", onEvent);
    let firstSeen!: () => void;
    const first = new Promise<void>((resolve) => (firstSeen = resolve));
    try {
      const call = client.call(
        "optimize",
        { dataset_id: datasetId, param_grid: grid },
        {
          onProgress: (value) => {
            viaCallback.push(value);
            order.push(`progress:${value.kind}`);
            firstSeen();
          },
        },
      );
      const token = call.progressToken;
      assert.ok(token !== undefined, "optimize gets a progress token");
      const result = call.result.then((r) => {
        order.push("result");
        return r;
      });
      // Start iterating only once `begin` was delivered: the buffer keeps it.
      await first;
      const viaIterable: ProgressValue[] = [];
      for await (const value of call.progress) viaIterable.push(value);
      const answer = await result;

      assert.equal(answer.params_evaluated, points);
      assertWellFormed(viaCallback, "onProgress");
      const reports = viaCallback.filter((v) => v.kind === "report");
      assert.ok(reports.length >= 2, `a long grid gives several reports, got ${reports.length}`);
      assert.equal(viaCallback.at(-1)!.total, points, "total counts every grid point");
      assert.deepEqual(viaIterable, viaCallback, "the iterable sees what the callback saw, begin included");
      const mine = viaEvent.filter((e) => e.token === token);
      assert.deepEqual(mine.map((e) => e.value), viaCallback, "the client's 'progress' event carries the same values and the token");
      // `end` comes before the response (SPEC 7), so before the result resolves.
      assert.equal(order.at(-1), "result");
      assert.equal(order.at(-2), "progress:end");
    } finally {
      client.off("progress", onEvent);
    }
  });

  test("a caller's own progress_token is sent as given (string or number)", async () => {
    for (const given of ["my-own-token", 424242] as const) {
      const viaEvent: Array<string | number> = [];
      const onEvent = (event: { token: string | number }) => viaEvent.push(event.token);
      client.on("progress", onEvent);
      try {
        const values: ProgressValue[] = [];
        const call = client.call(
          "optimize",
          { dataset_id: datasetId, param_grid: longGrid(4, 4, 6), progress_token: given },
          { onProgress: (value) => values.push(value) },
        );
        assert.equal(call.progressToken, given);
        await call.result;
        assertWellFormed(values, `token ${given}`);
        assert.ok(viaEvent.length >= 2);
        assert.ok(viaEvent.every((t) => t === given), `every event carries ${given}: ${viaEvent.join(", ")}`);
      } finally {
        client.off("progress", onEvent);
      }
    }
  });

  test("typed methods ask for progress only when given onProgress (the worker then runs no ticker)", async () => {
    const tokens: Array<string | number> = [];
    const onEvent = (event: { token: string | number }) => tokens.push(event.token);
    client.on("progress", onEvent);
    try {
      await client.optimize({ dataset_id: datasetId, param_grid: longGrid(2, 2, 2) });
      assert.deepEqual(tokens, [], "no onProgress: no token, so no $/progress");
      const values: ProgressValue[] = [];
      await client.optimize({ dataset_id: datasetId, param_grid: longGrid(2, 2, 2) }, { onProgress: (v) => values.push(v) });
      assertWellFormed(values, "with onProgress");
      assert.equal(tokens.length, values.length);
    } finally {
      client.off("progress", onEvent);
    }
  });

  test("a method without progress gets no token and an empty progress iterable", async () => {
    const call = client.call("ping", {});
    assert.equal(call.progressToken, undefined);
    await call.result;
    const values: ProgressValue[] = [];
    for await (const value of call.progress) values.push(value);
    assert.deepEqual(values, []);
  });

  test("$/checkpoint: a checkpointed optimize reports durable progress under checkpoint_dir", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ow-ts-ckpt-"));
    try {
      const runId = "ckpt-run-1";
      const viaCallback: CheckpointParams[] = [];
      const viaEvent: CheckpointParams[] = [];
      const onEvent = (event: CheckpointParams) => viaEvent.push(event);
      client.on("checkpoint", onEvent);
      let total = 0;
      const viaIterable: CheckpointParams[] = [];
      try {
        // Few holds: the run directory gets a heatmap per hold.
        const call = client.call(
          "optimize",
          { dataset_id: datasetId, param_grid: longGrid(30, 30, 2), run_id: runId, checkpoint_dir: dir },
          { onCheckpoint: (event) => viaCallback.push(event) },
        );
        total = (await call.result).params_evaluated;
        for await (const event of call.checkpoints) viaIterable.push(event);
        assert.ok(viaCallback.length >= 1, "at least one checkpoint");
        assert.deepEqual(viaIterable, viaCallback, "the iterable sees what the callback saw");
        assert.deepEqual(viaEvent.filter((e) => e.token === call.progressToken), viaCallback, "and so does the client event");
      } finally {
        client.off("checkpoint", onEvent);
      }
      for (const event of viaCallback) {
        assert.equal(event.run_id, runId);
        assert.ok(event.done <= event.total, `done ${event.done} <= total ${event.total}`);
        assert.ok(event.total <= total);
        const rel = relative(dir, event.path);
        assert.ok(rel !== "" && !rel.startsWith("..") && !isAbsolute(rel), `${event.path} is inside ${dir}`);
      }
      for (let i = 1; i < viaCallback.length; i++) assert.ok(viaCallback[i]!.done >= viaCallback[i - 1]!.done);
      // Everything is durable once the run has finished.
      assert.equal(viaCallback.at(-1)!.done, total);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
