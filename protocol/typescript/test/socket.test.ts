// A worker serving a Unix socket (`serve --socket PATH`), shared by two
// clients: round trips, a shared dataset cache, and who stops the worker.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { LineDecoder, WorkerClient, WorkerUnavailableError, type LogFields } from "../src/index.js";
import { REPO_DIR, inlineRows, workerPython } from "./_worker.js";

/** The worker's stderr, parsed: every JSON log record, and waiting for one. */
class WorkerLog {
  readonly records: LogFields[] = [];
  readonly text: string[] = [];
  private readonly waiters: Array<{ match: (r: LogFields) => boolean; resolve: (r: LogFields) => void }> = [];

  add(line: string): void {
    this.text.push(line);
    let record: LogFields;
    try {
      record = JSON.parse(line) as LogFields;
    } catch {
      return;
    }
    this.records.push(record);
    for (const w of this.waiters.splice(0)) {
      if (w.match(record)) w.resolve(record);
      else this.waiters.push(w);
    }
  }

  waitFor(match: (r: LogFields) => boolean): Promise<LogFields> {
    const seen = this.records.find(match);
    return seen ? Promise.resolve(seen) : new Promise((resolve) => this.waiters.push({ match, resolve }));
  }
}

describe("a worker on a Unix socket, shared by two clients", { timeout: 60_000 }, () => {
  let dir: string;
  let socketPath: string;
  let child: ChildProcess;
  let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  const log = new WorkerLog();
  let ready: LogFields;
  let a: WorkerClient;
  let b: WorkerClient;
  let connA: unknown;
  const rows = inlineRows(24, 180, 3, 3);
  const grid = { tp_mults: [1.5, 2, 3], sl_mults: [0.85, 0.9], max_hold_hrs: [6, 48] };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "ow-ts-sock-"));
    chmodSync(dir, 0o700);
    socketPath = join(dir, "worker.sock");
    child = spawn(workerPython(), ["-m", "worker", "serve", "--socket", socketPath, "--pool-size", "0"], {
      cwd: REPO_DIR,
      stdio: ["ignore", "ignore", "pipe"],
    });
    // 'close' (not 'exit'): stderr is read to its end by then.
    exited = new Promise((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
    const decoder = new LineDecoder();
    child.stderr!.on("data", (chunk: Buffer) => decoder.push(chunk).forEach((line) => log.add(line)));
    // Listening is announced by the "ready" log line; an early exit is a failed start.
    ready = await Promise.race([
      log.waitFor((r) => r.event === "ready"),
      exited.then(({ code }) => {
        throw new Error(`the socket worker exited (${code}) before it was ready:\n${log.text.join("\n")}`);
      }),
    ]);
  });

  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test("the worker announces that it listens, on a private socket", () => {
    assert.equal(ready.transport, "socket");
    assert.equal(ready.socket, socketPath);
    assert.equal(ready.pid, child.pid);
    const st = statSync(socketPath);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
  });

  test("client A: loadDataset and optimize over the socket", async () => {
    a = new WorkerClient({ socketPath, clientName: "socket-test-a" });
    const info = await a.loadDataset({ dataset_id: "shared", ...rows });
    assert.equal(a.serverInfo?.server, "optimizer-worker");
    assert.equal(a.pid, undefined, "a socket worker is not this client's process");
    assert.equal(info.calls, 24);
    assert.equal(info.candles, 24 * 180);
    const fromCache = await a.optimize({ dataset_id: "shared", param_grid: grid, top_k: 12 });
    const inline = await a.optimize({ ...rows, param_grid: grid, top_k: 12 });
    assert.equal(fromCache.params_evaluated, 12);
    assert.equal(fromCache.top.length, 12);
    assert.ok(fromCache.best_params);
    assert.deepEqual(fromCache, inline);
    connA = (await log.waitFor((r) => r.event === "connected")).conn;
    assert.equal(typeof connA, "string");
  });

  test("client B sees A's dataset and gets the same answers; both are served at once", async () => {
    b = await WorkerClient.start({ socketPath, clientName: "socket-test-b" });
    const held = await b.listDatasets();
    const shared = held.datasets.find((d) => d.dataset_id === "shared");
    assert.ok(shared, `B sees A's dataset (held: ${held.datasets.map((d) => d.dataset_id).join(", ")})`);
    assert.equal(shared.calls, 24);
    assert.equal((await b.stats()).datasets, 1);

    const [fromA, fromB, pingA, pingB] = await Promise.all([
      a.optimize({ dataset_id: "shared", param_grid: grid, top_k: 3 }),
      b.optimize({ dataset_id: "shared", param_grid: grid, top_k: 3 }),
      a.ping(),
      b.ping(),
    ]);
    assert.deepEqual(fromB, fromA);
    assert.deepEqual([pingA, pingB], [{}, {}]);
    const connB = (await log.waitFor((r) => r.event === "connected" && r.conn !== connA)).conn;
    assert.equal(typeof connB, "string", "B has a connection of its own");
  });

  test("close() on a socket client disconnects it but leaves the shared worker serving", async () => {
    assert.ok(!log.records.some((r) => r.event === "disconnected"));
    await a.close();
    assert.equal(a.status, "closed");
    await assert.rejects(a.ping(), WorkerUnavailableError);
    await log.waitFor((r) => r.event === "disconnected" && r.conn === connA);
    assert.ok(!log.records.some((r) => r.event === "shutdown requested"));

    assert.deepEqual(await b.ping(), {});
    assert.equal(child.exitCode, null, "the worker still runs");
    // The dataset A loaded outlives A's connection: the cache is the worker's.
    assert.deepEqual((await b.listDatasets()).datasets.map((d) => d.dataset_id), ["shared"]);
  });

  test("close({ shutdown: true }) stops the shared worker: it exits 0 and removes its socket", async () => {
    await b.close({ shutdown: true });
    assert.equal(b.status, "closed");
    const { code, signal } = await exited;
    assert.equal(signal, null);
    assert.equal(code, 0);
    assert.ok(log.records.some((r) => r.event === "shutdown requested"));
    assert.ok(!existsSync(socketPath), "the socket file is unlinked on exit");
  });

  test("a socket nobody listens on fails the start with WorkerUnavailableError, not a hang", async () => {
    const nobody = new WorkerClient({ socketPath: join(dir, "nobody.sock"), restart: false });
    const error = await nobody.ping().catch((e: unknown) => e);
    assert.ok(error instanceof WorkerUnavailableError, String(error));
    assert.match(error.message, /did not start/);
    assert.match(error.message, /ENOENT/);
    assert.equal(nobody.status, "failed");
    await nobody.close();
  });
});
