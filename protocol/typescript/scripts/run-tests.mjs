#!/usr/bin/env node
// Runs the compiled tests (dist/test/*.test.js) with Node's own runner, one
// file at a time (each file starts real workers; two cores are enough for
// one file's workers, not for several files'). Fails when no test ran: an
// empty run is a broken build, not a pass (like pytest's exit code 5).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dir = join(root, "dist", "test");
const only = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".test.js") && (only.length === 0 || only.some((o) => f.startsWith(o))))
  .sort()
  .map((f) => join(dir, f));
if (files.length === 0) {
  console.error(`no test files in ${dir}${only.length ? ` matching ${only.join(", ")}` : ""}: failing the run`);
  process.exit(1);
}
const scratch = mkdtempSync(join(tmpdir(), "ow-ts-tap-"));
const tap = join(scratch, "report.tap");
const run = spawnSync(
  process.execPath,
  ["--test", "--test-concurrency=1", "--test-reporter=spec", "--test-reporter-destination=stdout",
   "--test-reporter=tap", `--test-reporter-destination=${tap}`, ...files],
  { stdio: "inherit", cwd: root },
);
const count = Number(/^# tests (\d+)$/m.exec(readFileSync(tap, "utf8"))?.[1] ?? 0);
rmSync(scratch, { recursive: true, force: true });
if (run.status === 0 && count === 0) {
  console.error("no tests ran: failing the run");
  process.exit(1);
}
process.exit(run.status ?? 1);
