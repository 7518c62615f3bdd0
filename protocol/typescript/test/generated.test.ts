// The generated protocol module: it is up to date with schema.json, it covers
// every field of every definition, and its zod schemas validate as intended.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";

import * as protocol from "../src/generated/protocol.js";

// Compiled to dist/test/, so the package directory is two levels up.
const PACKAGE_DIR = fileURLToPath(new URL("../../", import.meta.url));
const GENERATOR = path.join(PACKAGE_DIR, "scripts", "generate-protocol.mjs");
const SCHEMA_PATH = path.join(PACKAGE_DIR, "..", "schema.json");
const GENERATED_PATH = path.join(PACKAGE_DIR, "src", "generated", "protocol.ts");

interface JsonSchema {
  properties?: Record<string, JsonSchema>;
  required?: string[];
  anyOf?: JsonSchema[];
  type?: string;
  [key: string]: unknown;
}
const schemaJson = JSON.parse(readFileSync(SCHEMA_PATH, "utf8")) as {
  $defs: Record<string, JsonSchema>;
  methods: Record<string, unknown>;
  notifications: Record<string, unknown>;
};

function runGenerator(...args: string[]) {
  const run = spawnSync(process.execPath, [GENERATOR, ...args], { cwd: PACKAGE_DIR, encoding: "utf8" });
  return { status: run.status, stderr: run.stderr };
}

function withTempDir(body: (dir: string) => void): void {
  const dir = mkdtempSync(path.join(tmpdir(), "generate-protocol-"));
  try {
    body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function schemaFor(name: string): z.ZodType {
  const schema = (protocol as Record<string, unknown>)[`${name}Schema`];
  assert.ok(schema instanceof z.ZodType, `${name}Schema is exported`);
  return schema;
}

function objectSchemaFor(name: string): z.ZodObject {
  const schema = schemaFor(name);
  assert.ok(schema instanceof z.ZodObject, `${name}Schema is an object schema`);
  return schema;
}

/** The paths (joined with ".") of a failed parse's issues. */
function issuePaths(schema: z.ZodType, value: unknown): string[] {
  const result = schema.safeParse(value);
  assert.equal(result.success, false, "parse should fail");
  return result.error!.issues.map((issue) => issue.path.join("."));
}

test("generate --check: the committed file matches schema.json", () => {
  const { status, stderr } = runGenerator("--check");
  assert.equal(status, 0, stderr);
});

test("generate --check fails, naming the file and the fix, when the output is stale", () => {
  withTempDir((dir) => {
    const out = path.join(dir, "protocol.ts");
    copyFileSync(GENERATED_PATH, out);
    assert.equal(runGenerator("--check", "--out", out).status, 0, "an unmodified copy is up to date");

    writeFileSync(out, readFileSync(out, "utf8").replace("export interface Call {", "export interface Call {\n  x: 1;"));
    const stale = runGenerator("--check", "--out", out);
    assert.equal(stale.status, 1);
    assert.match(stale.stderr, /protocol\.ts is stale/);
    assert.ok(stale.stderr.includes(out), stale.stderr);
    assert.match(stale.stderr, /npm run generate/);

    rmSync(out);
    assert.equal(runGenerator("--check", "--out", out).status, 1, "a missing file is stale");
  });
});

test("the generator rejects constructs it does not understand, naming the JSON path", () => {
  withTempDir((dir) => {
    const schemaPath = path.join(dir, "schema.json");
    const out = path.join(dir, "protocol.ts");
    const changed = structuredClone(schemaJson);
    changed.$defs["Call"]!.properties!["ts_ms"] = { type: "string", format: "date-time" };
    writeFileSync(schemaPath, JSON.stringify(changed));
    const run = runGenerator("--schema", schemaPath, "--out", out);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /#\/\$defs\/Call\/properties\/ts_ms: unsupported keyword "format"/);

    const cyclic = {
      $defs: {
        A: { type: "object", properties: { b: { $ref: "#/$defs/B" } } },
        B: { type: "object", properties: { a: { $ref: "#/$defs/A" } } },
      },
      methods: {},
      notifications: {},
    };
    writeFileSync(schemaPath, JSON.stringify(cyclic));
    const cycle = runGenerator("--schema", schemaPath, "--out", out);
    assert.equal(cycle.status, 2);
    assert.match(cycle.stderr, /reference cycle A -> B -> A/);
  });
});

test("the zod schemas are kept in step with every $def of schema.json", () => {
  for (const [name, def] of Object.entries(schemaJson.$defs)) {
    const shape = objectSchemaFor(name).shape;
    const properties = def.properties ?? {};
    assert.deepEqual(Object.keys(shape).sort(), Object.keys(properties).sort(), `${name}: property names`);
    for (const [key, property] of Object.entries(properties)) {
      const field = shape[key] as z.ZodType;
      const required = def.required?.includes(key) ?? false;
      assert.equal(field.safeParse(undefined).success, !required, `${name}.${key}: optional iff not required`);
      const nullable = property.anyOf?.some((member) => member.type === "null") ?? false;
      assert.equal(field.safeParse(null).success, nullable, `${name}.${key}: nullable iff anyOf has null`);
    }
  }
});

test("every method and notification has its schemas", () => {
  assert.deepEqual([...protocol.METHOD_NAMES], Object.keys(schemaJson.methods));
  assert.deepEqual(Object.keys(protocol.paramsSchemas), Object.keys(schemaJson.methods));
  assert.deepEqual(Object.keys(protocol.resultSchemas), Object.keys(schemaJson.methods));
  assert.deepEqual(Object.keys(protocol.notificationSchemas), Object.keys(schemaJson.notifications));
  assert.equal(protocol.resultSchemas.simulate, protocol.SimulateResultSchema);
});

const trade: protocol.TradeRecord = {
  call_id: "c1",
  caller: "alice",
  entry_ts_ms: 1_700_000_000_000,
  exit_ts_ms: 1_700_000_360_000,
  entry_px: 1.25,
  exit_px: 2.5,
  size: 400,
  pnl: 398.8,
  exit_reason: "tp",
  exit_mult: 2,
};

const capitalMetrics: protocol.CapitalMetrics = {
  mode: "capital",
  final_capital: 10_398.8,
  total_return: 0.03988,
  trades_executed: 1,
  wins: 1,
  losses: 0,
  win_rate: 1,
  exits: { tp: 1 },
  skipped: {},
  trades_skipped: 0,
  fees_paid: 2.4,
  profit_factor: null,
  max_drawdown: 0,
  avg_hold_min: 6,
  sharpe: null,
  completed_trades: [trade],
};

const perTradeMetrics: protocol.PerTradeMetrics = {
  mode: "per_trade",
  trades: 2,
  wins: 1,
  losses: 1,
  win_rate: 0.5,
  avg_return: 0.4,
  median_return: 0.4,
  total_return: 0.8,
  profit_factor: 1.8,
  avg_r: 0.9,
  total_r: 1.8,
  exits: { tp: 1, sl: 1 },
  skipped: { no_entry: 3 },
  sharpe: 0.5,
  avg_hold_min: 42.5,
};

const params: protocol.Params = { tp_mult: 2, sl_mult: 0.9, max_hold_hrs: null };

const optimizeResult: protocol.OptimizeResult = {
  objective: "final_capital",
  minimize: false,
  best_params: params,
  best_final_capital: 10_398.8,
  best_total_return: 0.03988,
  best_metrics: capitalMetrics,
  params_evaluated: 2,
  feasible_count: 2,
  top: [
    { index: 0, rank: 1, feasible: true, params, metrics: capitalMetrics },
    { index: 1, rank: 2, feasible: true, params: { tp_mult: 3, sl_mult: 0.85 }, metrics: perTradeMetrics },
  ],
};

test("realistic results pass", () => {
  assert.deepEqual(protocol.OptimizeResultSchema.parse(optimizeResult), optimizeResult);
  assert.deepEqual(protocol.CapitalMetricsSchema.parse(capitalMetrics), capitalMetrics);
  assert.deepEqual(protocol.resultSchemas.simulate.parse(perTradeMetrics), perTradeMetrics);
  assert.deepEqual(protocol.resultSchemas.optimize.parse({ ...optimizeResult, best_metrics: null }), {
    ...optimizeResult,
    best_metrics: null,
  });
});

test("a wrong type, a missing field and a bad discriminator fail at the field's path", () => {
  assert.deepEqual(issuePaths(protocol.CapitalMetricsSchema, { ...capitalMetrics, final_capital: "10398.8" }), [
    "final_capital",
  ]);
  const { wins: _wins, ...withoutWins } = capitalMetrics;
  assert.deepEqual(issuePaths(protocol.CapitalMetricsSchema, withoutWins), ["wins"]);

  const badTop = { ...optimizeResult, top: [{ ...optimizeResult.top[0]!, metrics: { ...capitalMetrics, mode: "cash" } }] };
  assert.deepEqual(issuePaths(protocol.OptimizeResultSchema, badTop), ["top.0.metrics.mode"]);
  assert.deepEqual(issuePaths(protocol.SimulateResultSchema, { ...perTradeMetrics, mode: "capital" }).sort(), [
    "fees_paid",
    "final_capital",
    "max_drawdown",
    "trades_executed",
    "trades_skipped",
  ]);
});

test("results keep unknown fields; params reject them", () => {
  const newer = { ...optimizeResult, elapsed_ms: 12.5, best_metrics: { ...capitalMetrics, sortino: 1.1 } };
  const parsed = protocol.OptimizeResultSchema.parse(newer) as unknown as typeof newer;
  assert.equal(parsed.elapsed_ms, 12.5);
  assert.equal(parsed.best_metrics.sortino, 1.1);

  // zod reports unknown keys on the object itself (path []), naming them in `keys`.
  const unknown = protocol.OptimizeParamsSchema.safeParse({ dataset_id: "d1", bogus: 1 });
  assert.deepEqual(
    unknown.error?.issues.map((issue) => ({ code: issue.code, path: issue.path, keys: "keys" in issue ? issue.keys : [] })),
    [{ code: "unrecognized_keys", path: [], keys: ["bogus"] }],
  );
  assert.deepEqual(issuePaths(protocol.paramsSchemas.simulate, { params, bogus: 1 }), [""]);
  assert.deepEqual(issuePaths(protocol.OptimizeParamsSchema, { simulator_config: { fee: 1 } }), ["simulator_config"]);
  assert.ok(protocol.paramsSchemas.optimize.safeParse({ dataset_id: "d1", top_k: 5 }).success);
});

test("integers: millisecond timestamps pass, fractions fail", () => {
  const call = { id: "c1", caller: "alice", ts_ms: 1.7e12 };
  assert.ok(protocol.CallSchema.safeParse(call).success);
  assert.deepEqual(issuePaths(protocol.CallSchema, { ...call, ts_ms: 1.5 }), ["ts_ms"]);
  assert.deepEqual(issuePaths(protocol.TradeRecordSchema, { ...trade, exit_ts_ms: 1.7e12 + 0.5 }), ["exit_ts_ms"]);
});

test("numeric, string and array constraints are applied", () => {
  assert.deepEqual(issuePaths(protocol.ParamsSchema, { tp_mult: 1, sl_mult: 0.9 }), ["tp_mult"]);
  assert.deepEqual(issuePaths(protocol.ParamsSchema, { tp_mult: 2, sl_mult: 1 }), ["sl_mult"]);
  assert.deepEqual(issuePaths(protocol.ParamGridSchema, { tp_mults: [] }), ["tp_mults"]);
  assert.deepEqual(issuePaths(protocol.ConstraintsSchema, { min_win_rate: 1.5 }), ["min_win_rate"]);
  assert.deepEqual(issuePaths(protocol.OptimizeParamsSchema, { run_id: ".hidden" }), ["run_id"]);
  assert.deepEqual(issuePaths(protocol.OptimizeParamsSchema, { run_id: "a".repeat(201) }), ["run_id"]);
  assert.ok(protocol.OptimizeParamsSchema.safeParse({ run_id: "run-1.a_b", top_k: 0 }).success);
});
