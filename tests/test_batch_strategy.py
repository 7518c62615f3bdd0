"""``optimizer-worker run`` with ``run: strategy`` (SPEC 13): config
validation with the JSON path and the line, ``--dry-run``'s plan, ``demo
--bars``, and (once the engine is in) a full run's directory."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests._daemon import worker_env
from worker._batch.config import StrategyRunConfig, load_config
from worker._batch.runner import strategy_request
from worker._errors import InvalidParams

ROOT = Path(__file__).resolve().parents[1]
GOOD = """run: strategy
bars: bars
strategy: sweep_bos
timeframes: [5m, 15m]
strategy_grid:
  swing: [2, 3]
  window: [6, 12]
param_grid:
  tp_r: [1, 2]
  sl_pct: [0.01]
  max_hold_hrs: [12]
output: out
"""


def _engine() -> bool:
    try:
        return (importlib.util.find_spec("worker._core.strategy") is not None
                and importlib.util.find_spec("worker._data.bars") is not None)
    except ImportError:
        return False


needs_engine = pytest.mark.skipif(not _engine(), reason="waits on the strategy engine "
                                  "(worker._core.strategy, worker._data.bars)")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker", *args], capture_output=True,
                          text=True, cwd=cwd, env=worker_env(), timeout=300)


@pytest.mark.parametrize("old, new, line, path", [
    ("  tp_r: [1, 2]", "  tp_r: [1, -2]", 9, "$.param_grid.tp_r[1]"),
    ("  sl_pct: [0.01]", "  sl_pct: [1.5]", 10, "$.param_grid.sl_pct[0]"),
    ("  sl_pct: [0.01]", "  tp_mults: [2]", 10, "$.param_grid"),      # a SPEC 5 key: unknown here
    ("  max_hold_hrs: [12]", "  trail_r: [null, 0]", 11, "$.param_grid.trail_r[1]"),
    ("  tp_r: [1, 2]", "  tp_r: [1, 2, 1]", 9, "$.param_grid.tp_r[2]"),
    ("timeframes: [5m, 15m]", "timeframes: [5m, 15x]", 4, "$.timeframes[1]"),
    ("timeframes: [5m, 15m]", "timeframes: [60m, 1h]", 4, "$.timeframes[1]"),
    ("timeframes: [5m, 15m]", "timeframes: []", 4, "$.timeframes"),
    ("strategy: sweep_bos", "strategy: sweepbos", 3, "$.strategy"),
    ("strategy: sweep_bos", "strategy: 'my pkg:fn'", 3, "$.strategy"),
    ("  swing: [2, 3]", "  swing: [2, 2]", 6, "$.strategy_grid.swing[1]"),
    ("  window: [6, 12]", "  window: []", 7, "$.strategy_grid.window"),
    ("  window: [6, 12]", "  window: [6, {a: 1}]", 7, "$.strategy_grid.window[1]"),
    ("  window: [6, 12]", "  window: 6", 7, "$.strategy_grid.window"),
    ("bars: bars\n", "", 1, "$"),                                       # missing: at the top
    ("output: out", "output: out\nworkers: -1", 13, "$.workers"),
    ("output: out", "output: out\nfolds: {scheme: rolling}", 13, "$"),   # not a strategy key
    ("output: out", "output: out\nrank_by: maximin", 13, "$.rank_by"),
    ("output: out", "output: out\nreport: {heatmaps: [[swing, fast]]}", 13,
     "$.report.heatmaps[0][1]"),
])
def test_config_errors_name_the_key_and_the_line(tmp_path, old, new, line, path):
    cfg = tmp_path / "bad.yaml"
    text = GOOD.replace(old, new)
    assert text != GOOD
    cfg.write_text(text)
    with pytest.raises(InvalidParams) as info:
        load_config(cfg)
    assert info.value.data["path"] == path
    assert f"bad.yaml, line {line}:" in info.value.message


def test_good_config_paths_defaults_and_fingerprint(tmp_path):
    cfg_path = tmp_path / "sub" / "ok.yaml"
    cfg_path.parent.mkdir()
    cfg_path.write_text(GOOD)
    cfg, text = load_config(cfg_path)
    assert isinstance(cfg, StrategyRunConfig) and text == GOOD
    assert cfg.bars == str(tmp_path / "sub" / "bars") and cfg.output == str(tmp_path / "sub" / "out")
    assert cfg.exit_grid() == {"tp_r": [1, 2], "sl_pct": [0.01], "max_hold_hrs": [12]}
    assert cfg.simulator_config.gap_fill == "open"        # SPEC 13's default for strategies
    request = strategy_request(cfg)
    assert "bars" not in request and "output" not in request and request["strategy"] == "sweep_bos"
    cfg_path.write_text(GOOD + "simulator_config: {gap_fill: level}\n")
    assert load_config(cfg_path)[0].simulator_config.gap_fill == "level"


def test_example_config_loads():
    cfg, _ = load_config(ROOT / "examples" / "strategy.yaml")
    assert isinstance(cfg, StrategyRunConfig) and cfg.strategy == "sweep_bos"
    assert len(cfg.timeframes) == 3 and set(cfg.strategy_grid) == {"swing", "window", "direction"}
    assert set(cfg.exit_grid()) >= {"tp_r", "sl_pct", "max_hold_hrs", "trail_r"}


def test_demo_bars_writes_the_files_and_the_command(tmp_path):
    out = cli("demo", "--bars", "bars", "--symbols", "2", "--days", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (tmp_path / "bars").iterdir()) == ["ALPHA.parquet",
                                                                      "BRAVO.parquet"]
    assert "1,440 bars" in out.stdout
    assert "optimizer-worker run examples/strategy.yaml" in out.stdout


@needs_engine
def test_dry_run_prints_signal_sets_exit_grid_runs_and_estimate(tmp_path):
    from worker._data.synthetic_bars import write_demo_bars

    write_demo_bars(tmp_path / "bars", symbols=2, days=3, seed=1)
    cfg = tmp_path / "ok.yaml"
    cfg.write_text(GOOD.replace("strategy: sweep_bos", "strategy: sma_cross").replace(
        "  swing: [2, 3]\n  window: [6, 12]", "  fast: [5, 20]\n  slow: [10, 30]"))
    out = cli("run", str(cfg), "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    # fast 20 >= slow 10: one rejected set per timeframe.
    assert "signal sets: 6 (timeframe, params) sets evaluated, 2 rejected" in out.stdout
    assert "exit grid: 2 tp_r x 1 sl_pct x 1 max_hold_hrs = 2 points" in out.stdout
    assert "= 12 grid points" in out.stdout and "estimated time" in out.stdout
    assert not (tmp_path / "out").exists()


@needs_engine
def test_engine_errors_are_located_in_the_config(tmp_path):
    from worker._data.synthetic_bars import write_demo_bars

    write_demo_bars(tmp_path / "bars", symbols=1, days=1, seed=1)
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(GOOD.replace("  swing: [2, 3]", "  swing: [2, 0]"))
    out = cli("run", str(cfg), "--dry-run", cwd=tmp_path)
    assert out.returncode == 2 and "bad.yaml, line 6" in out.stderr, out.stderr


@needs_engine
def test_example_runs_and_writes_the_run_directory(tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples",
                    ignore=shutil.ignore_patterns("bars"))
    from worker._data.synthetic_bars import write_demo_bars

    write_demo_bars(tmp_path / "examples" / "bars", symbols=2, days=5, seed=7)
    cfg = tmp_path / "examples" / "strategy.yaml"
    cfg.write_text(cfg.read_text().replace("workers: 2", "workers: 0"))
    out = cli("run", str(cfg), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run = tmp_path / "runs" / "strategy"
    for name in ("result.json", "run.json", "results.csv", "results.parquet", "summary.md",
                 "per_symbol.csv", "config.yaml"):
        assert (run / name).exists(), name
    meta = json.loads((run / "run.json").read_text())
    assert meta["kind"] == "strategy" and not meta["incomplete"]
    assert list((run / "plots").glob("heatmap_5m_swing_x_window.png"))
    again = cli("run", str(cfg), cwd=tmp_path)             # resumes from the journal
    assert again.returncode == 0 and "0 chunks computed" in again.stdout, again.stderr
