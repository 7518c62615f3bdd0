// A typed round trip through WorkerClient for every method of SPEC 7, against
// one real worker; errors as their subclasses; batches; the worker's logs;
// result validation (against a fake worker that answers wrongly).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";

import {
  ErrorCode,
  InvalidParamsError,
  METHOD_NAMES,
  RequestAbortedError,
  PROGRESS_METHODS,
  ResultValidationError,
  RpcError,
  UnknownDatasetError,
  WorkerClient,
  WorkerUnavailableError,
  type CandlesColumnar,
  type CapitalMetrics,
  type DatasetInfo,
  type LogFields,
  type Logger,
  type SimulateResult,
} from "../src/index.js";
import { PACKAGE_DIR, REPO_DIR, demoFiles, inlineRows, workerOptions } from "./_worker.js";

/** Every log call, and a way to wait for one that matches. */
class RecordingLogger {
  readonly records: Array<{ level: string; message: string; fields: LogFields }> = [];
  private readonly waiters: Array<{ match: (r: RecordingLogger["records"][number]) => boolean; resolve: (r: RecordingLogger["records"][number]) => void }> = [];
  readonly logger: Logger = {
    debug: (message, fields) => this.add("debug", message, fields),
    info: (message, fields) => this.add("info", message, fields),
    warn: (message, fields) => this.add("warn", message, fields),
    error: (message, fields) => this.add("error", message, fields),
  };

  private add(level: string, message: string, fields: LogFields = {}): void {
    const record = { level, message, fields };
    this.records.push(record);
    for (const w of this.waiters.splice(0)) {
      if (w.match(record)) w.resolve(record);
      else this.waiters.push(w);
    }
  }

  /** Resolves with the first record (already seen or still to come) that matches. */
  waitFor(match: (r: RecordingLogger["records"][number]) => boolean): Promise<RecordingLogger["records"][number]> {
    const seen = this.records.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }
}

/** The same candles as `inlineRows` gives, in the columnar shape (ms timestamps). */
function toColumnar(rows: ReturnType<typeof inlineRows>): CandlesColumnar {
  const cols: CandlesColumnar = { key: [], ts_ms: [], open: [], high: [], low: [], close: [], volume: [] };
  for (const [key, candles] of Object.entries(rows.candles_by_call_id)) {
    for (const c of candles) {
      cols.key.push(key);
      cols.ts_ms.push(Math.round(c.timestamp * 1000));
      cols.open.push(c.open);
      cols.high.push(c.high);
      cols.low.push(c.low);
      cols.close.push(c.close);
      cols.volume!.push(c.volume ?? 0);
    }
  }
  return cols;
}

function capital(result: SimulateResult | null | undefined): CapitalMetrics {
  assert.ok(result, "a result");
  assert.equal(result.mode, "capital");
  return result as CapitalMetrics;
}

const sum = (values: number[]) => values.reduce((a, v) => a + v, 0);
const close = (actual: number, expected: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);

const ROWS = inlineRows(30, 240, 1, 3);
const PARAMS = { tp_mult: 2, sl_mult: 0.9, max_hold_hrs: 24 };

describe("round trip of every method against a real worker", { timeout: 60_000 }, () => {
  const log = new RecordingLogger();
  let client: WorkerClient;
  let rowsInfo: DatasetInfo;
  let filesInfo: DatasetInfo;
  let simulated: CapitalMetrics;

  before(async () => {
    client = await WorkerClient.start(workerOptions({ logger: log.logger, clientName: "roundtrip-test" }));
  });
  after(async () => {
    await client.close();
  });

  test("initialize: server, protocol 1.x, every method of the schema, capabilities", async () => {
    const atStart = client.serverInfo;
    assert.ok(atStart, "start() stored the initialize answer");
    const info = await client.initialize({ client: { name: "roundtrip-test", version: "1" } });
    assert.equal(info.server, "optimizer-worker");
    assert.match(info.protocol_version, /^1\.\d+$/);
    assert.deepEqual(info, atStart);
    for (const method of METHOD_NAMES) assert.ok(info.methods.includes(method), `worker lists ${method}`);
    assert.deepEqual([...(info.capabilities.modes as string[])].sort(), ["capital", "per_trade"]);
    assert.equal(info.capabilities.pool_size, 0);
    assert.equal(client.status, "ready");
    assert.equal(typeof client.pid, "number");
  });

  test("ping answers {}", async () => {
    assert.deepEqual(await client.ping(), {});
  });

  test("loadDataset from inline rows (timestamps in seconds)", async () => {
    rowsInfo = await client.loadDataset({ dataset_id: "rows", ...ROWS });
    assert.equal(rowsInfo.dataset_id, "rows");
    assert.equal(rowsInfo.series_key, "call_id");
    assert.equal(rowsInfo.calls, 30);
    assert.equal(rowsInfo.callers, 3);
    assert.equal(rowsInfo.series, 30);
    assert.equal(rowsInfo.candles, 30 * 240);
    assert.equal(rowsInfo.calls_with_entry, 30);
    assert.deepEqual(rowsInfo.dropped, { count: 0, keys: [] });
    assert.ok(rowsInfo.bytes > 30 * 240 * 5 * 8, "holds at least the float64 columns");
    assert.ok(client.rememberedDatasets.includes("rows"));
  });

  test("loadDataset from candles_columnar: same counts, and exactly the same simulation as the rows", async () => {
    const info = await client.loadDataset({ dataset_id: "cols", calls: ROWS.calls, candles_columnar: toColumnar(ROWS) });
    assert.deepEqual({ ...info, bytes: 0, dataset_id: "" }, { ...rowsInfo, bytes: 0, dataset_id: "" });
    const [fromRows, fromCols] = await Promise.all([
      client.simulate({ dataset_id: "rows", params: PARAMS }),
      client.simulate({ dataset_id: "cols", params: PARAMS }),
    ]);
    assert.deepEqual(fromCols, fromRows);
  });

  test("loadDataset from Parquet files", async () => {
    const files = demoFiles(200, 600, 7);
    filesInfo = await client.loadDataset({ dataset_id: "files", calls_path: files.calls, candles_path: files.candles });
    assert.equal(filesInfo.dataset_id, "files");
    assert.equal(filesInfo.calls, 200);
    assert.equal(filesInfo.series, 200);
    assert.equal(filesInfo.candles, 200 * 600);
    assert.equal(filesInfo.calls_with_entry, 200);
    assert.ok(filesInfo.callers > 1 && filesInfo.callers <= 200);
  });

  test("loadDataset without a dataset_id gets one chosen by the worker", async () => {
    const info = await client.loadDataset({ calls: ROWS.calls.slice(0, 2), candles_by_call_id: { "call-0": ROWS.candles_by_call_id["call-0"]! } });
    assert.ok(info.dataset_id.length > 0);
    assert.equal(info.calls, 2);
    assert.equal(info.series, 1);
    assert.equal(info.calls_with_entry, 1, "call-1 has no series: it has no entry, and is not an error");
    assert.ok(client.rememberedDatasets.includes(info.dataset_id));
    const dropped = await client.dropDataset({ dataset_id: info.dataset_id });
    assert.equal(dropped.dropped, true);
  });

  test("listDatasets lists what was loaded, as loadDataset described it", async () => {
    const held = await client.listDatasets();
    const byId = new Map(held.datasets.map((d) => [d.dataset_id, d]));
    assert.deepEqual([...byId.keys()].sort(), ["cols", "files", "rows"]);
    assert.deepEqual(byId.get("rows"), rowsInfo);
    assert.deepEqual(byId.get("files"), filesInfo);
    assert.ok(held.bytes >= sum(held.datasets.map((d) => d.bytes)) * 0.99);
    assert.ok(held.budget_bytes >= held.bytes);
  });

  test("simulate (capital): completed_trades match trades_executed, and the books balance", async () => {
    simulated = capital(await client.simulate({ dataset_id: "rows", params: PARAMS }));
    const trades = simulated.completed_trades;
    assert.ok(trades, "include_trades defaults to true");
    assert.ok(simulated.trades_executed > 0);
    assert.equal(trades.length, simulated.trades_executed);
    assert.equal(simulated.wins + simulated.losses, simulated.trades_executed);
    assert.equal(simulated.wins, trades.filter((t) => t.pnl > 0).length);
    assert.equal(simulated.trades_executed + simulated.trades_skipped, 30, "every call is either entered or skipped");
    assert.equal(sum(Object.values(simulated.exits)), simulated.trades_executed);
    assert.equal(sum(Object.values(simulated.skipped)), simulated.trades_skipped);
    close(simulated.final_capital, 10_000 + sum(trades.map((t) => t.pnl)), "final_capital = initial + sum(pnl)");
    close(simulated.total_return, simulated.final_capital / 10_000 - 1, "total_return");
    const callIds = new Set(ROWS.calls.map((c) => c.id));
    for (const t of trades) {
      assert.ok(callIds.has(t.call_id));
      assert.ok(t.exit_ts_ms >= t.entry_ts_ms);
      close(t.exit_mult, t.exit_px / t.entry_px, "exit_mult");
      assert.ok(t.size > 0 && t.size <= 0.04 * 10_000 + 1e-9, "size within max_allocation_pct of the initial capital");
      assert.ok(t.exit_ts_ms - t.entry_ts_ms <= 24 * 3_600_000 || t.exit_reason !== "time_exit");
    }
  });

  test("simulate: include_trades false leaves the trades out; per_trade mode has its own metrics", async () => {
    const lean = capital(await client.simulate({ dataset_id: "rows", params: PARAMS, include_trades: false }));
    assert.equal(lean.completed_trades, undefined);
    const { completed_trades: _, ...rest } = simulated;
    assert.deepEqual(lean, rest);

    const perTrade = await client.simulate({ dataset_id: "rows", params: PARAMS, mode: "per_trade" });
    assert.equal(perTrade.mode, "per_trade");
    if (perTrade.mode !== "per_trade") return;
    assert.equal(perTrade.trades, 30, "no sizing or concurrency limit: every call with an entry trades");
    assert.equal(perTrade.wins + perTrade.losses, 30);
    close(perTrade.avg_return, perTrade.total_return / 30, "avg_return");
    assert.equal(perTrade.completed_trades?.length, 30);
  });

  test("simulate with inline data (no dataset) equals the loaded dataset's", async () => {
    const inline = await client.simulate({ ...ROWS, params: PARAMS });
    assert.deepEqual(inline, simulated);
  });

  test("optimize: top is ranked, best_params is the top point, and re-simulating it agrees", async () => {
    const result = await client.optimize({ dataset_id: "rows" });
    assert.equal(result.objective, "final_capital");
    assert.equal(result.minimize, false);
    assert.equal(result.params_evaluated, 30, "the default grid is 6 x 5 x 1");
    assert.equal(result.feasible_count, 30);
    assert.equal(result.top.length, 10, "top_k defaults to 10");
    assert.deepEqual(result.top.map((p) => p.rank), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const capitals = result.top.map((p) => capital(p.metrics).final_capital);
    for (let i = 1; i < capitals.length; i++) assert.ok(capitals[i - 1]! >= capitals[i]!, "ranked by final_capital, descending");
    assert.ok(result.best_params);
    assert.deepEqual(result.best_params, result.top[0]!.params);
    assert.equal(result.best_final_capital, capitals[0]);
    assert.deepEqual(result.best_metrics, result.top[0]!.metrics);
    assert.equal(result.all_results, undefined);
    const again = await client.simulate({ dataset_id: "rows", params: result.best_params, include_trades: false });
    assert.deepEqual(again, result.best_metrics);
  });

  test("optimize: a custom grid, grid order indices, a constraint nobody meets gives best null", async () => {
    const grid = { tp_mults: [1.5, 2, 3], sl_mults: [0.8, 0.9], max_hold_hrs: [6, 24] };
    const all = await client.optimize({ dataset_id: "rows", param_grid: grid, include_all: true, top_k: 3 });
    assert.equal(all.params_evaluated, 12);
    assert.equal(all.all_results?.length, 12);
    const byIndex = [...all.all_results!].sort((a, b) => a.index - b.index);
    // tp outermost, max_hold_hrs innermost.
    assert.deepEqual(byIndex.slice(0, 4).map((p) => [p.params.tp_mult, p.params.sl_mult, p.params.max_hold_hrs]), [
      [1.5, 0.8, 6], [1.5, 0.8, 24], [1.5, 0.9, 6], [1.5, 0.9, 24],
    ]);
    assert.deepEqual([...all.all_results!.map((p) => p.rank)].sort((a, b) => a - b), Array.from({ length: 12 }, (_, i) => i + 1));
    assert.deepEqual(all.top, [...all.all_results!].sort((a, b) => a.rank - b.rank).slice(0, 3));

    const none = await client.optimize({ dataset_id: "rows", param_grid: grid, constraints: { min_trades: 31 } });
    assert.equal(none.feasible_count, 0);
    assert.equal(none.best_params, null);
    assert.equal(none.best_final_capital, null);
  });

  test("optimize: a trailing grid (SPEC 11), grid order, params name only what is on, re-simulating agrees", async () => {
    const grid = {
      tp_mults: [2, 3], sl_mults: [0.8], trail_pct: [null, 0.1], trail_activation: [1, 1.2],
      breakeven_trigger: [null, 1.3], entry_dip_pct: [0, 0.05],
    };
    const config = { gap_fill: "open" as const };
    const all = await client.optimize({ dataset_id: "rows", param_grid: grid, simulator_config: config, include_all: true });
    assert.equal(all.params_evaluated, 2 * 1 * 2 * 2 * 2 * 2);
    const byIndex = [...all.all_results!].sort((a, b) => a.index - b.index);
    // SPEC 11's dimensions follow max_hold_hrs in SPEC order, entry_dip_pct innermost;
    // a parameter at its default (off) is left out of a point's params.
    assert.deepEqual(byIndex[0]!.params, { tp_mult: 2, sl_mult: 0.8, max_hold_hrs: 48 });
    assert.deepEqual(byIndex[1]!.params, { tp_mult: 2, sl_mult: 0.8, max_hold_hrs: 48, entry_dip_pct: 0.05 });
    assert.deepEqual(byIndex[2]!.params, { tp_mult: 2, sl_mult: 0.8, max_hold_hrs: 48, breakeven_trigger: 1.3 });
    assert.deepEqual(byIndex[4]!.params, { tp_mult: 2, sl_mult: 0.8, max_hold_hrs: 48, trail_activation: 1.2 });
    assert.deepEqual(byIndex[8]!.params, { tp_mult: 2, sl_mult: 0.8, max_hold_hrs: 48, trail_pct: 0.1 });
    for (const p of all.all_results!) {
      const m = capital(p.metrics);
      assert.deepEqual(Object.keys(m.exits).sort(), ["breakeven", "end_of_data", "stop_loss", "take_profit", "time_exit", "trailing_stop"]);
      assert.deepEqual(Object.keys(m.skipped).sort(), ["below_min_size", "max_positions", "no_entry", "no_fill"]);
      assert.equal(sum(Object.values(m.exits)), m.trades_executed);
      if (p.params.trail_pct === undefined) assert.equal(m.exits.trailing_stop, 0, "no trail, no trailing_stop exit");
      if (p.params.entry_dip_pct === undefined) assert.equal(m.skipped.no_fill, 0, "a market entry never waits for a fill");
    }
    const trailed = byIndex.filter((p) => p.params.trail_pct !== undefined);
    assert.ok(trailed.some((p) => (capital(p.metrics).exits.trailing_stop ?? 0) > 0), "some trailing stop fires on the demo rows");
    const best = all.best_params!;
    const again = await client.simulate({ dataset_id: "rows", params: best, simulator_config: config });
    const trades = capital(again).completed_trades!;
    assert.deepEqual({ ...again, completed_trades: undefined }, { ...all.best_metrics!, completed_trades: undefined });
    const kind = best.entry_dip_pct === undefined ? "market" : "limit";
    for (const t of trades) assert.equal(t.entry_kind, kind);
  });

  test("walkForward (SPEC 12): cpcv folds cover every call, PBO in [0, 1], full is an optimize", async () => {
    const grid = { tp_mults: [2, 3], sl_mults: [0.8, 0.9] };
    const wf = await client.walkForward({
      dataset_id: "rows", param_grid: grid, folds: { scheme: "cpcv", n_groups: 3, n_test_groups: 1 },
      pbo: { blocks: 4 }, stress: undefined,
    });
    assert.equal(wf.objective, "final_capital");
    assert.equal(wf.folds.length, 3, "C(3, 1) folds");
    const loaded = await client.listDatasets();
    const calls = loaded.datasets.find((d) => d.dataset_id === "rows")!.calls;
    for (const f of wf.folds) assert.equal(f.n_train + f.n_test + f.n_purged, calls);
    assert.equal(wf.stitched, null, "no stitched run for cpcv");
    assert.ok(wf.pbo && wf.pbo.pbo >= 0 && wf.pbo.pbo <= 1);
    assert.equal(wf.full.params_evaluated, 4);
    const stressed = await client.optimize({ dataset_id: "rows", param_grid: grid, stress: "basic", rank_by: "maximin" });
    assert.deepEqual(Object.keys(stressed.top[0]!.lanes!).sort(), ["baseline", "worse"]);
    assert.ok("deflated_sharpe" in stressed);
  });

  test("optimizePerCaller: one result per caller; their calls sum to the dataset's", async () => {
    const result = await client.optimizePerCaller({ dataset_id: "files" });
    assert.equal(result.params_evaluated, 30);
    const callers = Object.entries(result.per_caller_results);
    assert.equal(callers.length, filesInfo.callers);
    assert.equal(sum(callers.map(([, r]) => r.calls)), filesInfo.calls);
    for (const [name, r] of callers) {
      assert.equal(r.caller, name);
      assert.ok(r.calls > 0);
      if (r.best_params === null) {
        assert.equal(r.collapsed_capital, true);
        assert.equal(r.requires_extreme_params, false);
      } else {
        assert.equal(r.collapsed_capital, r.best_final_capital! < 10_000, `${name}: collapsed_capital`);
        assert.equal(r.requires_extreme_params, r.best_params.sl_mult < 0.88 || r.best_params.tp_mult > 4, `${name}: extreme`);
        assert.equal(capital(r.best_metrics).trades_executed + capital(r.best_metrics).trades_skipped, r.calls);
      }
    }
  });

  test("groupedEval: selected callers pass the filters; grouped params are their mean; the grouped run covers their calls", async () => {
    const result = await client.groupedEval({ dataset_id: "files" });
    const perCaller = result.per_caller_results;
    assert.equal(Object.keys(perCaller).length, filesInfo.callers);
    assert.ok(result.selected_callers.length > 0, "this seeded dataset has good callers");
    const selected = result.selected_callers.map((name) => perCaller[name]!);
    for (const r of selected) {
      assert.ok(r.best_params, `${r.caller} has best params`);
      assert.equal(r.collapsed_capital, false);
      assert.equal(r.requires_extreme_params, false);
    }
    // Every caller left out was filtered for a reason.
    for (const [name, r] of Object.entries(perCaller)) {
      if (!result.selected_callers.includes(name)) assert.ok(r.collapsed_capital || r.requires_extreme_params, `${name} left out`);
    }
    assert.ok(result.grouped_params);
    close(result.grouped_params.tp_mult, sum(selected.map((r) => r.best_params!.tp_mult)) / selected.length, "mean tp_mult");
    close(result.grouped_params.sl_mult, sum(selected.map((r) => r.best_params!.sl_mult)) / selected.length, "mean sl_mult");
    const grouped = capital(result.grouped_result);
    assert.equal(grouped.trades_executed + grouped.trades_skipped, sum(selected.map((r) => r.calls)));
    assert.equal(grouped.completed_trades?.length, grouped.trades_executed);
    const selectedNames = new Set(result.selected_callers);
    for (const t of grouped.completed_trades!) assert.ok(selectedNames.has(t.caller));
  });

  test("cancel of an id nobody sent answers cancelled: false", async () => {
    assert.deepEqual(await client.cancel({ id: 987_654 }), { cancelled: false });
    assert.deepEqual(await client.cancel({ id: "no-such-request" }), { cancelled: false });
  });

  test("stats agrees with listDatasets", async () => {
    const [stats, held] = await Promise.all([client.stats(), client.listDatasets()]);
    assert.equal(stats.datasets, held.datasets.length);
    assert.equal(stats.bytes, held.bytes);
    assert.equal(stats.budget_bytes, held.budget_bytes);
    assert.equal(stats.pool_size, 0);
    assert.deepEqual(stats.pool_pids, []);
    assert.ok(stats.requests_in_flight >= 1, "the stats request itself is in flight");
    assert.ok(stats.uptime_s > 0);
  });

  test("dropDataset frees a dataset; dropping it again says dropped: false", async () => {
    const before = await client.listDatasets();
    const dropped = await client.dropDataset({ dataset_id: "cols" });
    assert.equal(dropped.dataset_id, "cols");
    assert.equal(dropped.dropped, true);
    assert.ok(dropped.bytes_freed > 0);
    const after = await client.listDatasets();
    assert.deepEqual(after.datasets.map((d) => d.dataset_id).sort(), ["files", "rows"]);
    assert.ok(after.bytes < before.bytes);
    assert.ok(!client.rememberedDatasets.includes("cols"));
    assert.deepEqual(await client.dropDataset({ dataset_id: "cols" }), { dataset_id: "cols", dropped: false, bytes_freed: 0 });
    await assert.rejects(client.simulate({ dataset_id: "cols", params: PARAMS }), UnknownDatasetError);
  });

  test("a bad grid value is an InvalidParamsError naming its JSON path", async () => {
    const error = await client.optimize({ dataset_id: "rows", param_grid: { tp_mults: [2], sl_mults: [0.9, 0.95, 1.5] } }).then(
      () => assert.fail("should reject"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof InvalidParamsError, String(error));
    assert.ok(error instanceof RpcError);
    assert.equal(error.code, ErrorCode.InvalidParams);
    assert.equal(error.method, "optimize");
    assert.equal(error.path, "$.param_grid.sl_mults[2]");
    assert.deepEqual(error.data, { path: "$.param_grid.sl_mults[2]" });

    const duplicate = await client.optimize({ dataset_id: "rows", param_grid: { tp_mults: [2, 3, 2] } }).catch((e: unknown) => e);
    assert.ok(duplicate instanceof InvalidParamsError);
    assert.equal(duplicate.path, "$.param_grid.tp_mults[2]");
    assert.match(duplicate.message, /duplicate/);

    const badParams = await client.simulate({ dataset_id: "rows", params: { tp_mult: 2, sl_mult: 0.9, max_hold_hrs: -1 } }).catch((e: unknown) => e);
    assert.ok(badParams instanceof InvalidParamsError);
    assert.equal(badParams.path, "$.params.max_hold_hrs");
  });

  test("an unknown dataset is an UnknownDatasetError naming it; the worker keeps serving", async () => {
    const error = await client.optimize({ dataset_id: "never-loaded" }).catch((e: unknown) => e);
    assert.ok(error instanceof UnknownDatasetError, String(error));
    assert.equal(error.code, ErrorCode.UnknownDataset);
    assert.equal(error.name, "UnknownDatasetError");
    assert.deepEqual(error.data, { dataset_id: "never-loaded" });
    assert.equal(error.path, undefined);
    assert.deepEqual(await client.ping(), {});
  });

  test("a batch of mixed methods settles each entry in order; one failure does not affect the others", async () => {
    const results = await client.batch([
      { method: "ping", params: {} },
      { method: "simulate", params: { dataset_id: "rows", params: PARAMS } },
      { method: "optimize", params: { dataset_id: "never-loaded" } },
      { method: "listDatasets", params: {} },
      { method: "simulate", params: { dataset_id: "rows", params: { tp_mult: 0.5, sl_mult: 0.9 } } },
      { method: "cancel", params: { id: 123_456 } },
    ] as const);
    assert.equal(results.length, 6);
    const [ping, sim, unknown, list, bad, cancel] = results;
    assert.deepEqual(ping, { ok: true, value: {} });
    assert.ok(sim.ok);
    assert.deepEqual(sim.value, simulated);
    assert.equal(unknown.ok, false);
    assert.ok(!unknown.ok && unknown.error instanceof UnknownDatasetError);
    assert.ok(list.ok);
    assert.deepEqual(list.value.datasets.map((d) => d.dataset_id).sort(), ["files", "rows"]);
    assert.ok(!bad.ok && bad.error instanceof InvalidParamsError);
    assert.ok(!bad.ok && (bad.error as InvalidParamsError).path === "$.params.tp_mult");
    assert.deepEqual(cancel, { ok: true, value: { cancelled: false } });
  });

  test("a batch whose entries are all aborted before sending settles each as aborted and sends nothing", async () => {
    const aborted = new AbortController();
    aborted.abort(new Error("changed my mind"));
    const results = await client.batch([{ method: "ping", params: {} }, { method: "stats", params: {} }], { signal: aborted.signal });
    assert.equal(results.length, 2);
    for (const r of results) assert.ok(!r.ok && r.error instanceof RequestAbortedError && r.error.name === "AbortError");
    // Had an empty batch "[]" gone out, its error answer would come before this ping's answer.
    await client.ping();
    assert.deepEqual(log.records.filter((r) => r.message === "the worker rejected a message"), []);
  });

  test("the worker's stderr JSON log lines reach the logger: 'ready' and each request's 'request' line", async () => {
    const ready = await log.waitFor((r) => r.message === "ready" && r.fields.source === "worker");
    assert.equal(ready.level, "info");
    assert.equal(ready.fields.transport, "stdio");
    assert.equal(ready.fields.pid, client.pid);

    const call = client.call("ping", {});
    await call.result;
    const line = await log.waitFor((r) => r.message === "request" && r.fields.id === call.id);
    assert.equal(line.level, "info");
    assert.equal(line.fields.source, "worker");
    assert.equal(line.fields.method, "ping");
    assert.equal(line.fields.outcome, "ok");
    assert.equal(typeof line.fields.duration_ms, "number");
    assert.ok(!("event" in line.fields) && !("level" in line.fields), "event and level become the message and method");

    const failing = client.call("optimize", { dataset_id: "never-loaded" });
    await failing.result.catch(() => undefined);
    const errorLine = await log.waitFor((r) => r.message === "request" && r.fields.id === failing.id);
    assert.equal(errorLine.fields.outcome, "error");
    assert.equal(errorLine.fields.code, ErrorCode.UnknownDataset);
  });

  test("shutdown via close(): the worker process is gone when close resolves", async () => {
    const pid = client.pid;
    assert.ok(pid !== undefined);
    assert.doesNotThrow(() => process.kill(pid, 0), "the worker runs before close");
    await client.close();
    assert.throws(() => process.kill(pid, 0), (error: NodeJS.ErrnoException) => error.code === "ESRCH");
    assert.equal(client.status, "closed");
    await assert.rejects(client.ping(), WorkerUnavailableError);
    await client.close(); // a second close is a no-op
    await log.waitFor((r) => r.message === "shutdown requested");
  });
});

test("PROGRESS_METHODS is exactly the methods whose params take a progress_token in schema.json", () => {
  const schema = JSON.parse(readFileSync(join(REPO_DIR, "protocol", "schema.json"), "utf8")) as {
    $defs: Record<string, { properties?: Record<string, unknown> }>;
    methods: Record<string, { params: { $ref?: string; properties?: Record<string, unknown> } }>;
  };
  const withToken = Object.entries(schema.methods)
    .filter(([, m]) => {
      const params = m.params.$ref ? schema.$defs[m.params.$ref.replace("#/$defs/", "")] : m.params;
      assert.ok(params, `params of a method resolve (${m.params.$ref})`);
      return params.properties !== undefined && "progress_token" in params.properties;
    })
    .map(([name]) => name)
    .sort();
  assert.ok(withToken.length > 0);
  assert.deepEqual([...PROGRESS_METHODS].sort(), withToken);
});

describe("results that do not match the schema (a fake worker)", { timeout: 30_000 }, () => {
  const fake = join(PACKAGE_DIR, "test", "fixtures", "bad-results.mjs");
  let client: WorkerClient;

  before(async () => {
    client = await WorkerClient.start({ command: [process.execPath, fake], restart: false });
  });
  after(async () => {
    await client.close();
  });

  test("the fake answers initialize well (the client is ready)", () => {
    assert.equal(client.serverInfo?.server, "fake-worker");
    assert.equal(client.status, "ready");
  });

  test("ping answered with an array rejects with ResultValidationError", async () => {
    const error = await client.ping().catch((e: unknown) => e);
    assert.ok(error instanceof ResultValidationError, String(error));
    assert.equal(error.method, "ping");
    assert.ok(error.issues.length > 0);
    assert.match(error.message, /^ping: the worker's result does not match the protocol schema/);
  });

  test("stats with wrongly typed fields rejects naming the fields", async () => {
    const error = await client.stats().catch((e: unknown) => e);
    assert.ok(error instanceof ResultValidationError, String(error));
    assert.equal(error.method, "stats");
    const paths = error.issues.map((i) => i.path.join("."));
    assert.ok(paths.includes("datasets"), paths.join(","));
    assert.ok(paths.includes("bytes"), "a non-integer byte count is rejected too");
    assert.match(error.message, /\$\.(datasets|bytes)/);
  });

  test("a valid answer from the same worker still resolves", async () => {
    assert.deepEqual(await client.listDatasets(), { datasets: [], bytes: 0, budget_bytes: 0 });
  });

  test("an answer in the same chunk as a line that is not UTF-8 still arrives", async () => {
    const errors: string[] = [];
    const logged = await WorkerClient.start({
      command: [process.execPath, fake],
      restart: false,
      logger: { error: (message) => errors.push(message) },
    });
    try {
      assert.deepEqual(await logged.cancel({ id: 99 }, { timeoutMs: 10_000 }), { cancelled: false });
      assert.deepEqual(errors, ["unreadable output from the worker"]);
    } finally {
      await logged.close();
    }
  });

  test("validateResults: false hands the raw result through", async () => {
    const lax = await WorkerClient.start({ command: [process.execPath, fake], validateResults: false, restart: false });
    try {
      assert.deepEqual(await lax.ping(), ["not", "an", "object"]);
      assert.equal(((await lax.stats()) as unknown as { datasets: unknown }).datasets, "two");
    } finally {
      await lax.close();
    }
  });
});
