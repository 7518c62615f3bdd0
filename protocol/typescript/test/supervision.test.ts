/**
 * Supervision against the real worker: a worker killed mid-request (pool off
 * and on), restarts that reload the datasets, giving up after 5 crashes,
 * starts that fail (no such program, a crash, no answer to `initialize`),
 * and `close()` with a request pending.
 */

import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import {
  WorkerClient,
  WorkerClientError,
  WorkerExitedError,
  WorkerUnavailableError,
  type ExitInfo,
  type ProgressValue,
  type WorkerClientEvents,
} from "../src/index.js";
import { demoFiles, inlineRows, longGrid, processGone, workerOptions } from "./_worker.js";

/** Several seconds of work at least: it is always still running when we act on it. */
const LONG = longGrid(40, 40, 120);
const SMALL = longGrid(5, 5, 4);

type Ready = WorkerClientEvents["ready"][0];

/** Starts a long optimize and resolves once its first progress arrived (the work is running). */
async function startLong(client: WorkerClient, datasetId: string) {
  let running!: () => void;
  const started = new Promise<void>((resolve) => (running = resolve));
  const values: ProgressValue[] = [];
  const call = client.call(
    "optimize",
    { dataset_id: datasetId, param_grid: LONG },
    {
      onProgress: (value) => {
        values.push(value);
        running();
      },
    },
  );
  call.result.catch(() => undefined); // each test awaits it where it matters
  await started;
  return { call, values };
}

/** Records the supervision events of a client, in order. */
function recordEvents(client: WorkerClient) {
  const log: Array<{ event: string; args: unknown }> = [];
  for (const event of ["exit", "restarting", "ready", "gaveUp", "reloadFailed", "closed"] as const) {
    client.on(event, (args?: unknown) => log.push({ event, args }));
  }
  return log;
}

/** Walks `error.cause` links. */
function causes(error: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let e = error; e !== undefined && e !== null; e = (e as { cause?: unknown }).cause) chain.push(e);
  return chain;
}

describe("a worker killed mid-request (pool off)", () => {
  let client: WorkerClient;
  let fileId: string;
  const inlineId = "inline-supervision";
  let events: ReturnType<typeof recordEvents>;

  before(async () => {
    const files = demoFiles(1000, 2880);
    client = await WorkerClient.start(workerOptions());
    events = recordEvents(client);
    fileId = (await client.loadDataset({ calls_path: files.calls, candles_path: files.candles })).dataset_id;
    const inline = await client.loadDataset({ dataset_id: inlineId, ...inlineRows(30, 240, 5) });
    assert.equal(inline.dataset_id, inlineId);
  });

  after(async () => {
    await client?.close();
  });

  test("rejects with WorkerExitedError naming SIGKILL, restarts, reloads the datasets, and does not re-send", async () => {
    const bestBefore = {
      file: await client.optimize({ dataset_id: fileId, param_grid: SMALL }),
      inline: await client.optimize({ dataset_id: inlineId, param_grid: SMALL }),
    };
    const oldPid = client.pid!;
    assert.ok(oldPid > 0);
    const { call, values } = await startLong(client, fileId);
    const ready = once(client, "ready") as Promise<[Ready]>;
    // While 'ready' is being emitted the client already counts as ready.
    const seenInReady = new Promise<[number | undefined, string]>((resolve) =>
      client.once("ready", () => resolve([client.pid, client.status])),
    );
    assert.equal(events.length, 0);

    process.kill(oldPid, "SIGKILL");
    const error = await call.result.then(
      () => assert.fail("the killed request must not resolve"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof WorkerExitedError, `got ${String(error)}`);
    assert.ok(error instanceof WorkerClientError);
    assert.equal(error.signal, "SIGKILL");
    assert.equal(error.exitCode, null);
    assert.equal(error.method, "optimize");
    assert.match(error.message, /SIGKILL/);
    assert.match(error.message, /not re-sent/);
    // The call's progress iterable ended with it.
    const iterated: ProgressValue[] = [];
    for await (const value of call.progress) iterated.push(value);
    assert.deepEqual(iterated, values);
    assert.ok(iterated.length >= 1 && iterated.every((v) => v.kind !== "end"));

    const [info] = await ready;
    assert.deepEqual(await seenInReady, [info.pid, "ready"]);
    assert.deepEqual(events.map((e) => e.event), ["exit", "restarting", "ready"]);
    const exit = events[0]!.args as ExitInfo;
    assert.equal(exit.signal, "SIGKILL");
    const restarting = events[1]!.args as WorkerClientEvents["restarting"][0];
    assert.equal(restarting.crashes, 1);
    assert.equal(info.generation, 1);
    assert.deepEqual([...info.reloaded].sort(), [fileId, inlineId].sort());
    assert.ok(info.pid !== undefined && info.pid !== oldPid);
    assert.equal(client.pid, info.pid);
    assert.equal(client.status, "ready");
    assert.ok(processGone(oldPid), "the killed worker is gone");

    // The killed request was not sent again: the new worker runs nothing but this stats.
    const stats = await client.stats();
    assert.equal(stats.requests_in_flight, 1);
    assert.equal(stats.datasets, 2);
    const held = (await client.listDatasets()).datasets.map((d) => d.dataset_id).sort();
    assert.deepEqual(held, [fileId, inlineId].sort());

    // The same ids give the same answers as before the crash.
    const bestAfter = {
      file: await client.optimize({ dataset_id: fileId, param_grid: SMALL }),
      inline: await client.optimize({ dataset_id: inlineId, param_grid: SMALL }),
    };
    for (const key of ["file", "inline"] as const) {
      assert.deepEqual(bestAfter[key].best_params, bestBefore[key].best_params, key);
      assert.equal(bestAfter[key].best_final_capital, bestBefore[key].best_final_capital, key);
    }
    assert.equal((await client.stats()).requests_in_flight, 1);
  });
});

describe("a worker with a pool", () => {
  let client: WorkerClient;
  let datasetId: string;

  before(async () => {
    const files = demoFiles(1000, 2880);
    client = await WorkerClient.start(workerOptions({}, 1));
    datasetId = (await client.loadDataset({ calls_path: files.calls, candles_path: files.candles })).dataset_id;
  });

  after(async () => {
    await client?.close();
  });

  test("SIGKILL mid-request leaves no orphaned pool process", async () => {
    const before = await client.stats();
    assert.equal(before.pool_size, 1);
    assert.equal(before.pool_pids.length, 1);
    const oldPid = client.pid!;
    const { call } = await startLong(client, datasetId);
    const ready = once(client, "ready") as Promise<[Ready]>;
    process.kill(oldPid, "SIGKILL");
    await assert.rejects(call.result, (e: unknown) => e instanceof WorkerExitedError && e.signal === "SIGKILL");
    const [info] = await ready;
    assert.deepEqual(info.reloaded, [datasetId]);
    await client.ping();
    for (const pid of [oldPid, ...before.pool_pids]) assert.ok(processGone(pid), `process ${pid} of the killed worker is gone`);

    const now = await client.stats();
    assert.equal(now.requests_in_flight, 1);
    assert.equal(now.pool_pids.length, 1);
    assert.ok(!before.pool_pids.includes(now.pool_pids[0]!));
    assert.ok(!processGone(now.pool_pids[0]!), "the new worker has its own pool");
  });

  test("close() with a long request pending: it rejects, close resolves, no process is left", async () => {
    const { pool_pids } = await client.stats();
    const pid = client.pid!;
    const { call } = await startLong(client, datasetId);
    const closed = once(client, "closed");
    await client.close();
    await closed;
    const error = await call.result.then(
      () => assert.fail("a request pending at close must not resolve"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof WorkerUnavailableError, `got ${String(error)}`);
    assert.match(error.message, /closed/);
    assert.equal(client.status, "closed");
    assert.throws(() => process.kill(pid, 0), { code: "ESRCH" }, "the worker exited and was reaped");
    for (const p of pool_pids) assert.ok(processGone(p), `pool process ${p} is gone`);
    // Closed for good: later requests reject at once, and closing again is fine.
    await assert.rejects(client.ping(), WorkerUnavailableError);
    await client.close();
  });
});

describe("giving up", () => {
  test("the 5th crash within 3 minutes gives up; requests then reject with WorkerUnavailableError", async () => {
    const client = await WorkerClient.start(workerOptions({ restart: { initialDelayMs: 10, maxDelayMs: 50 } }));
    const events = recordEvents(client);
    try {
      const datasetId = (await client.loadDataset({ dataset_id: "give-up", ...inlineRows(10, 60, 3) })).dataset_id;
      const gaveUp = once(client, "gaveUp") as Promise<WorkerClientEvents["gaveUp"]>;
      for (let crash = 1; crash <= 4; crash++) {
        const ready = once(client, "ready") as Promise<[Ready]>;
        process.kill(client.pid!, "SIGKILL");
        const [info] = await ready;
        await client.ping(); // see above: pid is set once the supervisor took the connection
        assert.equal(info.generation, crash);
        assert.deepEqual(info.reloaded, [datasetId]);
      }
      const lastPid = client.pid!;
      process.kill(lastPid, "SIGKILL");
      const [info] = await gaveUp;
      assert.equal(info.crashes, 5);
      assert.equal(info.windowMs, 180_000);
      assert.equal(info.lastExit.signal, "SIGKILL");

      const restarts = events.filter((e) => e.event === "restarting").map((e) => e.args as WorkerClientEvents["restarting"][0]);
      assert.deepEqual(restarts, [
        { delayMs: 10, crashes: 1 },
        { delayMs: 20, crashes: 2 },
        { delayMs: 40, crashes: 3 },
        { delayMs: 50, crashes: 4 },
      ]);
      assert.deepEqual(
        events.map((e) => e.event),
        [...Array.from({ length: 4 }, () => ["exit", "restarting", "ready"]).flat(), "exit", "gaveUp"],
      );
      assert.equal(client.status, "failed");
      assert.equal(client.pid, undefined);
      const error = await client.ping().then(
        () => assert.fail("no worker to answer"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof WorkerUnavailableError, `got ${String(error)}`);
      assert.match(error.message, /gave up.*5 crashes/);
      await assert.rejects(client.optimize({ dataset_id: datasetId, param_grid: SMALL }), WorkerUnavailableError);
      await assert.rejects(client.start(), WorkerUnavailableError);
      assert.ok(processGone(lastPid));
    } finally {
      await client.close();
    }
    assert.equal(client.status, "closed");
  });
});

describe("a start that fails", () => {
  test("a command that does not exist rejects start() naming ENOENT, and is not retried", async () => {
    const client = new WorkerClient({ python: "/nonexistent/python3", serveArgs: ["--pool-size", "0"], startTimeoutMs: 30_000 });
    const events = recordEvents(client);
    try {
      const error = await client.start().then(
        () => assert.fail("there is no such program"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof WorkerUnavailableError, `got ${String(error)}`);
      assert.match(error.message, /ENOENT/);
      assert.ok(causes(error).some((e) => (e as NodeJS.ErrnoException).code === "ENOENT"), "the spawn error is in the cause chain");
      assert.equal(client.status, "failed");
      await assert.rejects(client.ping(), (e: unknown) => e instanceof WorkerUnavailableError && /ENOENT/.test(e.message));
      assert.deepEqual(events, [], "no restart was tried");
    } finally {
      await client.close();
    }
  });

  test("a worker that dies during its first start is not restarted", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ow-ts-start-"));
    const starts = join(dir, "starts");
    try {
      const script = "require('fs').appendFileSync(process.argv[1], 'x'); console.error('cannot start: no config'); process.exit(3)";
      const client = new WorkerClient({ command: [process.execPath, "-e", script, starts], restart: { initialDelayMs: 1 } });
      const events = recordEvents(client);
      try {
        const error = await client.start().then(
          () => assert.fail("the fake worker exits at once"),
          (e: unknown) => e,
        );
        assert.ok(error instanceof WorkerUnavailableError, `got ${String(error)}`);
        assert.match(error.message, /exited with code 3/);
        assert.match(error.message, /cannot start: no config/, "the last stderr line says why");
        await assert.rejects(client.ping(), WorkerUnavailableError);
        await assert.rejects(client.start(), WorkerUnavailableError);
        assert.equal(client.status, "failed");
        assert.equal(readFileSync(starts, "utf8"), "x", "started once, never again");
        assert.deepEqual(events, []);
      } finally {
        await client.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a worker that never answers initialize: start() times out and the process is killed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ow-ts-start-"));
    const pidFile = join(dir, "pid");
    try {
      // Writes its pid first thing, then reads nothing and answers nothing.
      const script = "require('fs').writeFileSync(process.argv[1], String(process.pid)); setInterval(() => {}, 1000)";
      const client = new WorkerClient({ command: [process.execPath, "-e", script, pidFile], startTimeoutMs: 1_500 });
      const events = recordEvents(client);
      try {
        const error = await client.start().then(
          () => assert.fail("the fake worker never answers"),
          (e: unknown) => e,
        );
        assert.ok(error instanceof WorkerUnavailableError, `got ${String(error)}`);
        assert.match(error.message, /not ready within 1500 ms/);
        assert.equal(client.status, "failed");
        const pid = Number(readFileSync(pidFile, "utf8"));
        assert.ok(pid > 0);
        // start() settles only once the killed process has exited (and was reaped).
        assert.throws(() => process.kill(pid, 0), { code: "ESRCH" });
        assert.deepEqual(events, []);
      } finally {
        await client.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
