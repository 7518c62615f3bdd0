// Large messages both ways (well over 2 MB on one line), and many requests
// in flight at once, against one real worker: every answer is exact and is
// the answer to its own request.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { WorkerClient, encodeLine, type CapitalMetrics, type OptimizeResult, type ParamGrid, type Params, type SimulateResult } from "../src/index.js";
import { inlineRows, rng, workerOptions } from "./_worker.js";

const TWO_MB = 2 * 1024 * 1024;
const bytesOf = (value: unknown) => Buffer.byteLength(JSON.stringify(value), "utf8");

/** The rows as the CSV files of SPEC 8 (numbers printed so they read back exactly). */
function writeCsv(dir: string, rows: ReturnType<typeof inlineRows>): { calls: string; candles: string } {
  const calls = ["id,caller,mint,ts_ms", ...rows.calls.map((c) => `${c.id},${c.caller},${c.mint},${c.ts_ms}`)];
  const candles = ["key,ts_ms,open,high,low,close,volume"];
  for (const [key, series] of Object.entries(rows.candles_by_call_id)) {
    for (const c of series) candles.push(`${key},${Math.round(c.timestamp * 1000)},${c.open},${c.high},${c.low},${c.close},${c.volume}`);
  }
  const files = { calls: join(dir, "calls.csv"), candles: join(dir, "candles.csv") };
  writeFileSync(files.calls, `${calls.join("\n")}\n`);
  writeFileSync(files.candles, `${candles.join("\n")}\n`);
  return files;
}

/** `n` distinct values `start, start + step, ...`, rounded so they print short. */
const steps = (start: number, step: number, n: number) => Array.from({ length: n }, (_, i) => Number((start + i * step).toFixed(6)));

describe("large messages and many concurrent requests", { timeout: 120_000 }, () => {
  let client: WorkerClient;
  let dir: string;
  const big = inlineRows(60, 400, 11, 4);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "ow-ts-large-"));
    client = await WorkerClient.start(workerOptions());
  });
  after(async () => {
    await client.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a request line over 2 MB (inline rows) loads, and equals the same data loaded from CSV files", async () => {
    const params = { dataset_id: "big-rows", ...big };
    const line = encodeLine({ jsonrpc: "2.0", id: 1, method: "loadDataset", params });
    assert.ok(Buffer.byteLength(line) > TWO_MB, `the request line is ${Buffer.byteLength(line)} bytes`);

    const info = await client.loadDataset(params);
    assert.equal(info.calls, 60);
    assert.equal(info.callers, 4);
    assert.equal(info.series, 60);
    assert.equal(info.candles, 60 * 400);
    assert.equal(info.calls_with_entry, 60);

    const files = writeCsv(dir, big);
    const small = { dataset_id: "big-csv", calls_path: files.calls, candles_path: files.candles };
    assert.ok(bytesOf(small) < 1024, "the second way is a small request");
    const fromCsv = await client.loadDataset(small);
    assert.deepEqual({ ...fromCsv, dataset_id: "big-rows", bytes: info.bytes }, info);

    const grid: ParamGrid = { tp_mults: [1.5, 2, 3, 5], sl_mults: [0.8, 0.9, 0.95], max_hold_hrs: [2, 48] };
    const [a, b] = await Promise.all([
      client.optimize({ dataset_id: "big-rows", param_grid: grid, top_k: 24 }),
      client.optimize({ dataset_id: "big-csv", param_grid: grid, top_k: 24 }),
    ]);
    assert.equal(a.top.length, 24);
    assert.deepEqual(a, b);
  });

  test("a response over 2 MB (optimize include_all over a 20 x 20 x 10 grid) is whole and exact", async () => {
    const grid = { tp_mults: steps(1.1, 0.15, 20), sl_mults: steps(0.5, 0.025, 20), max_hold_hrs: steps(1, 5, 10) };
    const result = await client.optimize({ dataset_id: "big-rows", param_grid: grid, include_all: true, top_k: 5 });
    const size = bytesOf(result);
    assert.ok(size > TWO_MB, `the result is ${size} bytes`);

    assert.equal(result.params_evaluated, 4000);
    const all = result.all_results!;
    assert.equal(all.length, 4000);
    const byIndex = [...all].sort((x, y) => x.index - y.index);
    // Every grid point is there once, in grid order (tp outermost, hold innermost).
    byIndex.forEach((point, i) => {
      assert.equal(point.index, i);
      assert.deepEqual(point.params, {
        tp_mult: grid.tp_mults[Math.floor(i / 200)],
        sl_mult: grid.sl_mults[Math.floor(i / 10) % 20],
        max_hold_hrs: grid.max_hold_hrs[i % 10],
      });
    });
    const byRank = [...all].sort((x, y) => x.rank - y.rank);
    assert.deepEqual(byRank.map((p) => p.rank), Array.from({ length: 4000 }, (_, i) => i + 1));
    assert.deepEqual(result.top, byRank.slice(0, 5));
    assert.deepEqual(result.best_params, byRank[0]!.params);

    // A few points, simulated alone, give the very same metrics.
    for (const i of [0, 1234, 2718, 3999, byRank[0]!.index]) {
      const alone = await client.simulate({ dataset_id: "big-rows", params: byIndex[i]!.params, include_trades: false });
      assert.deepEqual(alone, byIndex[i]!.metrics, `grid point ${i}`);
    }
  });

  test("a simulate response over 2 MB (include_trades on many calls) keeps every trade", async () => {
    // per_trade mode: every call with an entry is a trade, so 60 calls x 200 copies.
    const calls = big.calls.flatMap((c) => Array.from({ length: 200 }, (_, k) => ({ ...c, id: `${c.id}#${k}` })));
    assert.equal(calls.length, 12_000);
    // The copies share their original's series through series_key "mint".
    const info = await client.loadDataset({
      dataset_id: "many-calls",
      series_key: "mint",
      calls,
      candles_columnar: {
        key: big.calls.flatMap((c) => big.candles_by_call_id[c.id]!.map(() => c.mint!)),
        ts_ms: big.calls.flatMap((c) => big.candles_by_call_id[c.id]!.map((r) => r.timestamp * 1000)),
        open: big.calls.flatMap((c) => big.candles_by_call_id[c.id]!.map((r) => r.open)),
        high: big.calls.flatMap((c) => big.candles_by_call_id[c.id]!.map((r) => r.high)),
        low: big.calls.flatMap((c) => big.candles_by_call_id[c.id]!.map((r) => r.low)),
        close: big.calls.flatMap((c) => big.candles_by_call_id[c.id]!.map((r) => r.close)),
      },
    });
    assert.equal(info.calls, 12_000);
    assert.equal(info.series, 60);
    const params: Params = { tp_mult: 2, sl_mult: 0.9, max_hold_hrs: 12 };
    const result = await client.simulate({ dataset_id: "many-calls", params, mode: "per_trade" });
    assert.ok(bytesOf(result) > TWO_MB, `the result is ${bytesOf(result)} bytes`);
    assert.equal(result.mode, "per_trade");
    if (result.mode !== "per_trade") return;
    assert.equal(result.trades, 12_000);
    const trades = result.completed_trades!;
    assert.equal(trades.length, 12_000);
    assert.deepEqual(new Set(trades.map((t) => t.call_id)).size, 12_000);
    // Each copy traded exactly like its original on the small dataset.
    const original = await client.simulate({ dataset_id: "big-rows", params, mode: "per_trade" });
    const byCall = new Map(original.completed_trades!.map((t) => [t.call_id, t]));
    for (const t of trades) {
      const [id] = t.call_id.split("#");
      assert.deepEqual({ ...t, call_id: id }, byCall.get(id!));
    }
  });

  test("200 mixed requests in flight at once each get their own answer", async () => {
    await client.loadDataset({ dataset_id: "small", ...inlineRows(40, 300, 5, 4) });
    const grids: ParamGrid[] = Array.from({ length: 70 }, (_, k) => ({
      tp_mults: [Number((1.2 + 0.05 * k).toFixed(4)), 6],
      sl_mults: [Number((0.6 + 0.005 * k).toFixed(4))],
      max_hold_hrs: [1 + (k % 7) * 4],
    }));
    const sims: Params[] = Array.from({ length: 60 }, (_, k) => ({
      tp_mult: Number((1.1 + 0.07 * k).toFixed(4)),
      sl_mult: Number((0.95 - 0.005 * k).toFixed(4)),
      max_hold_hrs: 1 + (k % 5) * 6,
    }));
    // Each answer computed alone first.
    const optimizeAlone: OptimizeResult[] = [];
    for (const grid of grids) optimizeAlone.push(await client.optimize({ dataset_id: "small", param_grid: grid }));
    const simulateAlone: SimulateResult[] = [];
    for (const params of sims) simulateAlone.push(await client.simulate({ dataset_id: "small", params, include_trades: true }));
    // Distinct grids really give distinct answers, so a mix-up would show.
    assert.ok(new Set(optimizeAlone.map((r) => (r.best_metrics as CapitalMetrics).final_capital)).size > 30);
    assert.ok(new Set(simulateAlone.map((r) => (r as CapitalMetrics).final_capital)).size > 30);

    type Job = { kind: "ping" } | { kind: "optimize"; k: number } | { kind: "simulate"; k: number };
    const jobs: Job[] = [
      ...Array.from({ length: 70 }, (): Job => ({ kind: "ping" })),
      ...grids.map((_, k): Job => ({ kind: "optimize", k })),
      ...sims.map((_, k): Job => ({ kind: "simulate", k })),
    ];
    const random = rng(42);
    for (let i = jobs.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [jobs[i], jobs[j]] = [jobs[j]!, jobs[i]!];
    }
    assert.equal(jobs.length, 200);

    const calls = jobs.map((job) =>
      job.kind === "ping"
        ? client.call("ping", {})
        : job.kind === "optimize"
          ? client.call("optimize", { dataset_id: "small", param_grid: grids[job.k] })
          : client.call("simulate", { dataset_id: "small", params: sims[job.k]! }),
    );
    assert.equal(new Set(calls.map((c) => c.id)).size, 200, "every request has its own id");
    const answers = await Promise.all(calls.map((c) => c.result));
    answers.forEach((answer, i) => {
      const job = jobs[i]!;
      if (job.kind === "ping") assert.deepEqual(answer, {});
      else if (job.kind === "optimize") assert.deepEqual(answer, optimizeAlone[job.k], `optimize ${job.k}`);
      else assert.deepEqual(answer, simulateAlone[job.k], `simulate ${job.k}`);
    });
    const stats = await client.stats();
    assert.equal(stats.requests_in_flight, 1, "nothing left in flight but stats itself");
  });
});
