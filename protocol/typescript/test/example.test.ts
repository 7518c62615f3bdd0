/**
 * The example CLI, run as a user would: a table of the top points, and a
 * clean cancel on Ctrl-C (SIGINT) that leaves no worker behind.
 */

import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { test } from "node:test";
import assert from "node:assert/strict";

import { PACKAGE_DIR, demoFiles, processGone, workerPython } from "./_worker.js";

const EXAMPLE = join(PACKAGE_DIR, "dist", "examples", "optimize.js");

function runExample(args: string[]) {
  const child = spawn(process.execPath, [EXAMPLE, "--python", workerPython(), "--pool-size", "0", ...args], {
    cwd: PACKAGE_DIR,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group, as a terminal's foreground job
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  const stderrLines: Array<(text: string) => void> = [];
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
    for (const notify of stderrLines) notify(stderr);
  });
  const exited = once(child, "close") as Promise<[number | null, NodeJS.Signals | null]>;
  /** Resolves once stderr matches `pattern`. */
  const stderrMatches = (pattern: RegExp) =>
    new Promise<RegExpExecArray>((resolve) => {
      const check = (text: string) => {
        const m = pattern.exec(text);
        if (m) resolve(m);
      };
      stderrLines.push(check);
      check(stderr);
    });
  return { child, exited, stderrMatches, out: () => stdout, err: () => stderr };
}

test("the example CLI optimizes dataset files and prints the top table", async () => {
  const files = demoFiles(120, 400, 5);
  const run = runExample(["--calls", files.calls, "--candles", files.candles, "--tp", "1.5,2,3", "--sl", "0.8,0.9", "--hold", "6,24", "--top", "4"]);
  const [code] = await run.exited;
  assert.equal(code, 0, run.err());
  const lines = run.out().trim().split("\n");
  assert.match(run.out(), /12 grid points, \d+ feasible, optimized in \d+ ms \(objective final_capital, maximized\)/);
  const header = lines.findIndex((l) => /^rank\s+tp\s+sl\s+hold_h\s+final_capital\s+return\s+trades\s+win_rate\s+max_dd$/.test(l));
  assert.ok(header >= 0, run.out());
  const rows = lines.slice(header + 2);
  assert.equal(rows.length, 4);
  assert.deepEqual(rows.map((r) => Number(r.trim().split(/\s+/)[0])), [1, 2, 3, 4]);
  const capital = rows.map((r) => Number(r.trim().split(/\s+/)[4]!.replace(/,/g, "")));
  assert.deepEqual([...capital].sort((a, b) => b - a), capital, "ranked by final_capital, best first");
  assert.match(run.err(), /loaded 120 calls by \d+ callers, 48,000 candles/);
  assert.match(run.err(), /^progress \[#+\] 100%/m);
});

test("Ctrl-C cancels the grid cleanly: exit 130, no worker left", async () => {
  const files = demoFiles(1000, 2880, 7);
  // 30 x 20 x 1,000 = 600,000 points over 1,000 calls: many seconds of work
  // even for fast kernels, so the grid is still running when Ctrl-C comes.
  const holds = Array.from({ length: 1000 }, (_, i) => i + 1).join(",");
  const tps = Array.from({ length: 30 }, (_, i) => (1.1 + 0.1 * i).toFixed(1)).join(",");
  const sls = Array.from({ length: 20 }, (_, i) => (0.5 + 0.02 * i).toFixed(2)).join(",");
  const run = runExample(["--calls", files.calls, "--candles", files.candles, "--tp", tps, "--sl", sls, "--hold", holds]);
  const [, pid] = await run.stderrMatches(/pid (\d+)\) ready/);
  await run.stderrMatches(/^progress .* runs/m); // the grid is running
  // Ctrl-C in a terminal signals the whole foreground process group.
  process.kill(-run.child.pid!, "SIGINT");
  const [code] = await run.exited;
  assert.equal(code, 130, run.err());
  assert.match(run.err(), /cancelled: the worker stopped the grid/);
  assert.doesNotMatch(run.out(), /grid points/);
  assert.ok(processGone(Number(pid)), "the worker exited with the example");
});

test("bad arguments exit 2 with the usage", async () => {
  const run = runExample(["--calls", "x.parquet"]);
  const [code] = await run.exited;
  assert.equal(code, 2);
  assert.match(run.err(), /--calls and --candles are required/);
  assert.match(run.err(), /^usage: optimizer-worker-example/m);
});
