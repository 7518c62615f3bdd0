/**
 * Shared test helpers: where the real Python worker is, seeded demo data
 * files made by the worker itself, and a seeded inline dataset.
 *
 * The worker's Python is `$OPTIMIZER_WORKER_PYTHON`, else the repository's
 * `.venv/bin/python` (what `.ci/run` and the README create), else `python3`.
 */

import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { WorkerClient, type Call, type CandleRow, type WorkerClientOptions } from "../src/index.js";

/** The package directory (tests run from dist/test). */
export const PACKAGE_DIR = resolve(fileURLToPath(new URL("../..", import.meta.url)));
export const REPO_DIR = resolve(PACKAGE_DIR, "../..");

export function workerPython(): string {
  const fromEnv = process.env.OPTIMIZER_WORKER_PYTHON;
  if (fromEnv) return fromEnv;
  const venv = join(REPO_DIR, ".venv", "bin", "python");
  return existsSync(venv) ? venv : "python3";
}

/**
 * Options for a client of a real worker. The pool is off unless asked for:
 * tests start many workers on a 2-core machine, and large work then runs in
 * the daemon in spans (with progress and cancellation points) just the same.
 */
export function workerOptions(extra: WorkerClientOptions = {}, poolSize = 0): WorkerClientOptions {
  return {
    python: workerPython(),
    cwd: REPO_DIR,
    serveArgs: ["--pool-size", String(poolSize)],
    requestTimeoutMs: 120_000,
    ...extra,
  };
}

const made = new Map<string, { calls: string; candles: string }>();
const dirs: string[] = [];

/** Seeded demo dataset files (Parquet), written by `optimizer-worker demo --write-files`. */
export function demoFiles(calls = 200, candles = 600, seed = 7): { calls: string; candles: string } {
  const key = `${calls}/${candles}/${seed}`;
  const cached = made.get(key);
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), "ow-ts-demo-"));
  dirs.push(dir);
  const done = spawnSync(
    workerPython(),
    ["-m", "worker", "demo", "--calls", String(calls), "--candles", String(candles), "--seed", String(seed), "--write-files", dir],
    { cwd: REPO_DIR, encoding: "utf8" },
  );
  if (done.status !== 0) throw new Error(`could not write demo files: ${done.stderr || done.error}`);
  const files = { calls: join(dir, "calls.parquet"), candles: join(dir, "candles.parquet") };
  made.set(key, files);
  return files;
}

process.on("exit", () => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A small deterministic PRNG (mulberry32), so inline data is seeded. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Inline rows in the earlier CLI's shape: `calls` and `candles_by_call_id`
 * (timestamps in seconds), `nCalls` calls by `nCallers` callers, each with
 * `nCandles` one-minute candles from its call time, as a seeded random walk.
 */
export function inlineRows(nCalls = 30, nCandles = 240, seed = 1, nCallers = 3) {
  const random = rng(seed);
  const t0 = 1_700_000_000;
  const calls: Call[] = [];
  const candles_by_call_id: Record<string, CandleRow[]> = {};
  for (let i = 0; i < nCalls; i++) {
    const id = `call-${i}`;
    const start = t0 + i * 600;
    calls.push({ id, caller: `caller-${i % nCallers}`, mint: `mint-${i}`, ts_ms: start * 1000 });
    let price = 1 + random();
    const rows: CandleRow[] = [];
    for (let k = 0; k < nCandles; k++) {
      const open = price;
      price = Math.max(0.01, price * (1 + (random() - 0.5) * 0.08));
      const high = Math.max(open, price) * (1 + random() * 0.03);
      const low = Math.min(open, price) * (1 - random() * 0.03);
      rows.push({ timestamp: start + k * 60, open, high, low, close: price, volume: random() * 1000 });
    }
    candles_by_call_id[id] = rows;
  }
  return { calls, candles_by_call_id };
}

/**
 * A grid of `nTp x nSl x nHold` points (holds 1..nHold hours): with
 * `demoFiles(1000, 2880)` and the pool off, 20 x 20 x 120 runs for a couple
 * of seconds in spans, with a progress report about every 0.1 s.
 */
export function longGrid(nTp = 20, nSl = 20, nHold = 120) {
  const spread = (n: number, lo: number, hi: number) =>
    Array.from({ length: n }, (_, i) => Number((lo + ((hi - lo) * i) / Math.max(1, n - 1)).toFixed(4)));
  return {
    tp_mults: spread(nTp, 1.2, 6),
    sl_mults: spread(nSl, 0.5, 0.97),
    max_hold_hrs: Array.from({ length: nHold }, (_, i) => i + 1),
  };
}

/**
 * Whether a process is gone: `kill(pid, 0)` fails with ESRCH, or it is a
 * zombie (dead, waiting for a parent that is not us to reap it).
 */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return true;
    throw error;
  }
  try {
    // /proc/PID/stat: "pid (comm) STATE ..."; comm may hold spaces or parens.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true; // gone between the two looks
  }
}

/** A client of a real worker (pool off) with the 1,000-call demo files loaded. */
export async function clientWithDemo(): Promise<{ client: WorkerClient; datasetId: string }> {
  const files = demoFiles(1000, 2880);
  const client = await WorkerClient.start(workerOptions());
  const datasetId = (await client.loadDataset({ calls_path: files.calls, candles_path: files.candles })).dataset_id;
  return { client, datasetId };
}
