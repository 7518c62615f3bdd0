"""Kill a run mid-grid (once through the CLI, once through the daemon),
resume it, and get results identical to an uninterrupted run, with every
chunk in the journal exactly once. Waiting is on the run's own signals (a
``checkpoint:`` line, a ``$/checkpoint`` notification), never on sleeps."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import msgspec
import pyarrow.parquet as pq
import pytest

import worker
from tests._daemon import Daemon, wait_gone, worker_env
from worker._data.files import write_dataset_files
from worker._data.synthetic import synthetic_dataset

GRID = {"tp_mults": [round(1.2 + 0.2 * i, 2) for i in range(15)],
        "sl_mults": [round(0.5 + 0.03 * i, 2) for i in range(15)],
        "max_hold_hrs": [1, 2, 4, 8, 12, 24, 36, 48]}   # 1,800 points


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Many chunks per run (so one can be killed mid-grid): the runs here are
    small, and a chunk is normally ~32 M evaluations."""
    monkeypatch.setenv("OPTIMIZER_WORKER_CHUNK_EVALUATIONS", "40000")


def journal_ids(run_dir: Path) -> list[str]:
    lines = (run_dir / "journal.jsonl").read_text().splitlines()
    return [json.loads(line)["id"] for line in lines if '"chunk"' in line]


def write_config(path: Path, output: str, *, workers: int, run: str = "per_caller") -> Path:
    path.write_text(f"""
data:
  demo: {{calls: 800, candles: 600, callers: 6, seed: 3}}
run: {run}
param_grid: {json.dumps(GRID)}
constraints: {{min_trades: 3}}
output: {output}
workers: {workers}
""")
    return path


def run_cli(config: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker", "run", str(config), *extra],
                          capture_output=True, text=True, env=worker_env(), timeout=600)


@pytest.mark.parametrize("workers", [0, 2])
def test_cli_run_killed_mid_grid_resumes_to_identical_results(tmp_path, workers):
    reference = run_cli(write_config(tmp_path / "ref.yaml", "ref", workers=workers))
    assert reference.returncode == 0, reference.stderr
    config = write_config(tmp_path / "cfg.yaml", "run", workers=workers)
    proc = subprocess.Popen([sys.executable, "-m", "worker", "run", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=worker_env())
    for line in proc.stderr:  # wait until some progress is durable
        if line.startswith("checkpoint:") and not line.startswith("checkpoint: 0/"):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = journal_ids(tmp_path / "run")
    assert partial, "the run was killed before any chunk was durable"
    assert not (tmp_path / "run" / "result.json").exists()

    resumed = run_cli(config)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(set(partial))} reused" in resumed.stdout
    ids = journal_ids(tmp_path / "run")
    assert len(ids) == len(set(ids)) and set(partial) <= set(ids)
    assert sorted(ids) == sorted(journal_ids(tmp_path / "ref"))  # every chunk, once
    ours = json.loads((tmp_path / "run" / "result.json").read_text())
    theirs = json.loads((tmp_path / "ref" / "result.json").read_text())
    assert ours == theirs
    a = pq.read_table(tmp_path / "run" / "results.parquet")
    b = pq.read_table(tmp_path / "ref" / "results.parquet")
    assert a.equals(b) and a.num_rows == 6 * 1800


def test_cli_refuses_a_different_run_in_the_same_directory(tmp_path):
    small = {"tp_mults": [2, 3], "sl_mults": [0.9]}
    cfg = tmp_path / "a.yaml"
    cfg.write_text(f"data: {{demo: {{calls: 50, candles: 200}}}}\nparam_grid: {json.dumps(small)}\n"
                   "output: out\n")
    assert run_cli(cfg).returncode == 0
    cfg.write_text(cfg.read_text().replace("[2, 3]", "[2, 4]"))
    refused = run_cli(cfg)
    assert refused.returncode == 2 and "different run" in refused.stderr
    assert run_cli(cfg, "--restart").returncode == 0
    assert json.loads((tmp_path / "out" / "result.json").read_text())["params_evaluated"] == 2


def test_daemon_run_killed_mid_grid_resumes_to_identical_results(tmp_path):
    ds = synthetic_dataset(n_calls=800, n_candles=600, n_callers=6, seed=3)
    calls, candles = str(tmp_path / "calls.parquet"), str(tmp_path / "candles.parquet")
    write_dataset_files(ds, calls, candles)
    request = {"dataset_id": "d", "param_grid": GRID, "constraints": {"min_trades": 3},
               "run_id": "r1", "checkpoint_dir": str(tmp_path / "ckpt"), "progress_token": "t"}
    first = Daemon("--pool-size", "2", "--local-evaluations", "0")
    try:
        first.client.result("loadDataset", {"dataset_id": "d", "calls_path": calls,
                                            "candles_path": candles})
        pids = first.client.result("stats")["pool_pids"]
        first.client.send("optimizePerCaller", request)
        first.client.wait_for(lambda: next((n for n in first.client.notifications
                                            if n["method"] == "$/checkpoint"
                                            and n["params"]["done"] > 0), None), "$/checkpoint")
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
    finally:
        first.kill()
    partial = journal_ids(tmp_path / "ckpt" / "r1")
    assert partial
    first.client.wait_closed()
    assert all(wait_gone(p) for p in pids)  # the pool died with its daemon

    second = Daemon("--pool-size", "2", "--local-evaluations", "0")
    try:
        c = second.client
        c.result("loadDataset", {"dataset_id": "d", "calls_path": calls, "candles_path": candles})
        resumed = c.result("optimizePerCaller", request)
        begin = next(n["params"]["value"] for n in c.notifications
                     if n["method"] == "$/progress" and n["params"]["value"]["kind"] == "begin")
        # The resumed run's begin counts the earlier work, all of it, at once.
        earlier = sum(int(b) - int(a) for a, b in
                      (cid.split(":")[1].split("-") for cid in set(partial)))
        assert begin["done"] == earlier > 0 and begin["total"] > 0
        mismatch = c.call("optimizePerCaller", {**request, "param_grid": {"tp_mults": [2]}})
        assert mismatch["error"]["code"] == -32004
    finally:
        second.kill()
    ids = journal_ids(tmp_path / "ckpt" / "r1")
    assert len(ids) == len(set(ids)) and set(partial) <= set(ids)
    want = worker.optimize_per_caller(ds, GRID, constraints={"min_trades": 3})
    assert resumed == json.loads(msgspec.json.encode(want))
    for name in ("results.parquet", "results.csv", "summary.md", "run.json", "request.json"):
        assert (tmp_path / "ckpt" / "r1" / name).exists(), name
