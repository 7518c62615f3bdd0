#!/usr/bin/env node
/**
 * Example CLI: load dataset files into a worker, optimize a grid with a live
 * progress bar, and print the best points.
 *
 *   node dist/examples/optimize.js --calls calls.parquet --candles candles.parquet \
 *     --python ../../.venv/bin/python --tp 1.5,2,3,4 --sl 0.8,0.9 --hold 12,24,48
 *
 * Ctrl-C cancels the grid cleanly (the worker stops the work and stays
 * healthy) and exits 130; a second Ctrl-C exits at once.
 */

import { parseArgs } from "node:util";

import {
  RequestAbortedError,
  WorkerClient,
  WorkerClientError,
  consoleLogger,
  silentLogger,
  type OptimizeParams,
  type ParamGrid,
  type ProgressValue,
  type RankedPoint,
} from "../src/index.js";

const USAGE = `usage: optimizer-worker-example --calls FILE --candles FILE [options]

Loads a calls table and a candles table (Parquet or CSV, SPEC section 8) into
an optimizer worker, optimizes take-profit x stop-loss x max-hold, and prints
the top points. Make demo files with:
  optimizer-worker demo --write-files DIR

options:
  --calls FILE          calls table (id, caller, mint, ts_ms)
  --candles FILE        candles table (key, ts_ms, open, high, low, close[, volume])
  --series-key KEY      call_id (default) or mint
  --python PATH         a Python that has the worker installed (default: optimizer-worker on PATH)
  --socket PATH         use a worker already serving on this Unix socket
  --pool-size N         the worker's pool processes
  --tp LIST             take-profit multiples, e.g. 1.5,2,3 (default: the worker's grid)
  --sl LIST             stop-loss multiples, e.g. 0.8,0.9
  --hold LIST           max hold hours, e.g. 12,24,48
  --mode MODE           capital (default) or per_trade
  --objective NAME      metric to rank by (default final_capital)
  --top N               rows to print (default 10)
  --verbose             show the worker's log lines
  -h, --help            this text`;

function numbers(text: string | undefined, flag: string): number[] | undefined {
  if (text === undefined) return undefined;
  const values = text.split(",").map((s) => Number(s.trim()));
  const bad = values.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new UsageError(`${flag}: item ${bad + 1} of "${text}" is not a number`);
  return values;
}

class UsageError extends Error {}

function parse(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      calls: { type: "string" },
      candles: { type: "string" },
      "series-key": { type: "string", default: "call_id" },
      python: { type: "string" },
      socket: { type: "string" },
      "pool-size": { type: "string" },
      tp: { type: "string" },
      sl: { type: "string" },
      hold: { type: "string" },
      mode: { type: "string", default: "capital" },
      objective: { type: "string", default: "final_capital" },
      top: { type: "string", default: "10" },
      verbose: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return undefined;
  if (!values.calls || !values.candles) throw new UsageError("--calls and --candles are required");
  const top = Number(values.top);
  if (!Number.isInteger(top) || top < 1) throw new UsageError(`--top must be a positive integer, got "${values.top}"`);
  const grid = { tp: numbers(values.tp, "--tp"), sl: numbers(values.sl, "--sl"), hold: numbers(values.hold, "--hold") };
  return { ...values, calls: values.calls, candles: values.candles, top, grid };
}

/** One line redrawn in place on a terminal; a line a second otherwise. */
class ProgressBar {
  private lastPlain = 0;
  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {}

  update(p: ProgressValue): void {
    const fraction = p.total > 0 ? p.done / p.total : 1;
    const width = 30;
    const filled = Math.round(fraction * width);
    const best =
      p.best === null || p.best === undefined
        ? ""
        : `  best ${p.best.objective} ${p.best.value.toLocaleString("en-US", { maximumFractionDigits: 2 })}` +
          ` (tp ${p.best.params.tp_mult}, sl ${p.best.params.sl_mult})`;
    const text =
      `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%  ` +
      `${p.done.toLocaleString("en-US")}/${p.total.toLocaleString("en-US")} ${p.unit}  ${(p.elapsed_ms / 1000).toFixed(1)} s${best}`;
    if (this.out.isTTY) {
      this.out.write(`\r\x1b[2K${text}${p.kind === "end" ? "\n" : ""}`);
    } else if (p.kind !== "report" || p.elapsed_ms - this.lastPlain >= 1000) {
      this.lastPlain = p.elapsed_ms;
      this.out.write(`progress ${text}\n`);
    }
  }

  interrupt(): void {
    if (this.out.isTTY) this.out.write("\n");
  }
}

function table(points: RankedPoint[], objective: string): string {
  const head = ["rank", "tp", "sl", "hold_h", objective, "return", "trades", "win_rate", "max_dd"];
  const rows = points.map((p) => {
    const m = p.metrics;
    const trades = m.mode === "capital" ? m.trades_executed : m.trades;
    const maxDd = m.mode === "capital" ? `${(m.max_drawdown * 100).toFixed(2)}%` : "n/a";
    const value = (m as unknown as Record<string, unknown>)[objective];
    return [
      String(p.rank),
      String(p.params.tp_mult),
      String(p.params.sl_mult),
      String(p.params.max_hold_hrs),
      typeof value === "number" ? value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 }) : String(value),
      `${m.total_return >= 0 ? "+" : ""}${(m.total_return * 100).toFixed(2)}%`,
      String(trades),
      `${(m.win_rate * 100).toFixed(1)}%`,
      maxDd,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padStart(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parse(argv);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (!args) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const client = new WorkerClient({
    python: args.python,
    socketPath: args.socket,
    serveArgs: args["pool-size"] ? ["--pool-size", args["pool-size"]] : [],
    logger: args.verbose ? consoleLogger("info") : silentLogger,
    clientName: "optimizer-worker-example",
  });
  const abort = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts += 1;
    if (interrupts > 1) process.exit(130);
    abort.abort(new Error("interrupted (Ctrl-C)"));
  };
  process.on("SIGINT", onSigint);
  const bar = new ProgressBar();
  try {
    const server = await client.start();
    const where = args.socket ? `on ${args.socket}` : `pid ${client.pid}`;
    process.stderr.write(`worker ${server.version} (protocol ${server.protocol_version}, ${where}) ready\n`);
    const t0 = performance.now();
    const dataset = await client.loadDataset(
      { calls_path: args.calls, candles_path: args.candles, series_key: args["series-key"] as "call_id" | "mint" },
      { signal: abort.signal },
    );
    process.stderr.write(
      `loaded ${dataset.calls.toLocaleString("en-US")} calls by ${dataset.callers} callers, ` +
        `${dataset.candles.toLocaleString("en-US")} candles in ${(performance.now() - t0).toFixed(0)} ms\n`,
    );
    const paramGrid: ParamGrid = {};
    const { tp, sl, hold } = args.grid;
    if (tp) paramGrid.tp_mults = tp;
    if (sl) paramGrid.sl_mults = sl;
    if (hold) paramGrid.max_hold_hrs = hold;
    const params: OptimizeParams = {
      dataset_id: dataset.dataset_id,
      mode: args.mode as OptimizeParams["mode"],
      objective: args.objective,
      top_k: args.top,
      param_grid: paramGrid,
    };
    const t1 = performance.now();
    const result = await client.optimize(params, { signal: abort.signal, onProgress: (p) => bar.update(p) });
    const ms = performance.now() - t1;
    process.stdout.write(
      `\n${result.params_evaluated} grid points, ${result.feasible_count} feasible, optimized in ${ms.toFixed(0)} ms ` +
        `(objective ${result.objective}, ${result.minimize ? "minimized" : "maximized"})\n\n`,
    );
    process.stdout.write(result.top.length > 0 ? `${table(result.top, result.objective)}\n` : "no feasible grid point\n");
    return 0;
  } catch (error) {
    bar.interrupt();
    if (error instanceof RequestAbortedError) {
      process.stderr.write("cancelled: the worker stopped the grid\n");
      return 130;
    }
    if (error instanceof WorkerClientError) {
      process.stderr.write(`error: ${error.message}\n`);
      return 1;
    }
    throw error;
  } finally {
    await client.close();
    process.off("SIGINT", onSigint);
  }
}

process.exitCode = await main(process.argv.slice(2));
