#!/usr/bin/env node
// What the TypeScript client costs on top of the wire (SPEC 9's daemon
// figures, seen from Node): ping and a 100-call x 30-point optimize, sent
// through WorkerClient (framing, id matching, zod validation of the result)
// and as bare JSON lines on a second worker, side by side in one run.
//
//   cd protocol/typescript && npm ci && npm run build && cd ../..
//   node bench/bench_client.mjs [--python .venv/bin/python]

import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const { WorkerClient } = await import(join(repo, "protocol/typescript/dist/src/index.js"));
const { inlineRows } = await import(join(repo, "protocol/typescript/dist/test/_worker.js"));

const { values } = parseArgs({ options: { python: { type: "string", default: join(repo, ".venv/bin/python") } } });
const serve = [values.python, "-m", "worker", "serve", "--pool-size", "0"];
const ROUNDS = 500;
const OPTIMIZE = { dataset_id: "bench", param_grid: { tp_mults: [1.5, 2, 3, 4, 5], sl_mults: [0.8, 0.9, 0.95], max_hold_hrs: [12, 48] } };

/** Bare lines: one request at a time, the answer matched by reading the next line. */
async function rawWorker() {
  const child = spawn(serve[0], serve.slice(1), { cwd: repo, stdio: ["pipe", "pipe", "ignore"] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  let id = 0;
  return {
    async call(method, params) {
      child.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params })}\n`);
      const { value } = await lines.next();
      return JSON.parse(value).result;
    },
    async close() {
      child.stdin.end();
      await once(child, "close");
    },
  };
}

async function timeIt(fn) {
  for (let i = 0; i < 50; i++) await fn(); // warm both sides
  const ms = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t = performance.now();
    await fn();
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  return { median: ms[ms.length >> 1], p99: ms[Math.floor(ms.length * 0.99)] };
}

const data = { dataset_id: "bench", ...inlineRows(100, 600, 3, 5) };
const client = await WorkerClient.start({ command: serve, cwd: repo });
const raw = await rawWorker();
await client.loadDataset(data);
await raw.call("loadDataset", data);

const rows = [
  ["ping", await timeIt(() => client.ping()), await timeIt(() => raw.call("ping", {}))],
  ["optimize, 100 calls x 30 points", await timeIt(() => client.optimize(OPTIMIZE)), await timeIt(() => raw.call("optimize", OPTIMIZE))],
];
const same = JSON.stringify(await client.optimize(OPTIMIZE)) === JSON.stringify(await raw.call("optimize", OPTIMIZE));
await client.close();
await raw.close();

const f = (x) => `${x.toFixed(3)} ms`;
for (const [name, c, r] of rows) {
  console.log(`${name.padEnd(34)} client ${f(c.median)} median (p99 ${f(c.p99)})   bare lines ${f(r.median)} (p99 ${f(r.p99)})   = ${(c.median / r.median).toFixed(2)}x`);
}
console.log(`results identical through both paths: ${same ? "yes" : "NO"}  (${ROUNDS} sequential requests each)`);
