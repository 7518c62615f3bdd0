"""``optimizer-worker run``: config validation with lines, --dry-run,
the example config, and ``analyze`` on the run directory it writes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests._daemon import worker_env
from worker._batch.config import load_config
from worker._batch.yaml_errors import yaml_line
from worker._errors import InvalidParams

ROOT = Path(__file__).resolve().parents[1]
GOOD = """data:
  demo: {calls: 60, candles: 200, callers: 3, seed: 1}
run: grouped
param_grid:
  tp_mults: [1.5, 2, 3]
  sl_mults: [0.85, 0.9]
  max_hold_hrs: [6, 48]
output: out
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker", *args], capture_output=True,
                          text=True, cwd=cwd, env=worker_env(), timeout=300)


@pytest.mark.parametrize("old, new, line, path", [
    ("  sl_mults: [0.85, 0.9]", "  sl_mults: [0.85, 1.2]", 6, "$.param_grid.sl_mults[1]"),
    ("run: grouped", "run: groupd", 3, "$.run"),
    ("output: out", "output: out\nworkers: -1", 9, "$.workers"),
    ("param_grid:", "paramgrid:", 4, "$"),            # unknown key: reported on its own line
    ("  demo: {calls: 60, candles: 200, callers: 3, seed: 1}", "  series_key: mint", 2, "$.data"),
])
def test_config_errors_name_the_key_and_the_line(tmp_path, old, new, line, path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(GOOD.replace(old, new))
    with pytest.raises(InvalidParams) as info:
        load_config(cfg)
    assert info.value.data["path"] == path
    assert f"bad.yaml, line {line}:" in info.value.message


def test_yaml_line_follows_the_path():
    text = "a:\n  b:\n    - 1\n    - 2\nc: 3\n"
    assert yaml_line(text, "$.a.b[1]") == 4
    assert yaml_line(text, "$.c") == 5
    assert yaml_line(text, "$.missing") == 1
    assert yaml_line(text, "$.a.b", key=True) == 2 and yaml_line(text, "$.a.b") == 3


def test_cli_error_exit_code_and_message(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(GOOD.replace("run: grouped", "run: groupd"))
    out = cli("run", str(cfg), cwd=tmp_path)
    assert out.returncode == 2 and "bad.yaml, line 3" in out.stderr and "Traceback" not in out.stderr


def test_dry_run_prints_sizes_and_runs_nothing(tmp_path):
    cfg = tmp_path / "ok.yaml"
    cfg.write_text(GOOD)
    out = cli("run", str(cfg), "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "3 tp x 2 sl x 2 hold = 12 points" in out.stdout
    assert "60 calls by 3 callers" in out.stdout and "estimated time" in out.stdout
    assert not (tmp_path / "out").exists()


def test_example_config_runs_and_analyze_rewrites_the_report(tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    cfg = tmp_path / "examples" / "demo.yaml"
    cfg.write_text(cfg.read_text().replace("calls: 1000, candles: 2880", "calls: 200, candles: 600"))
    out = cli("run", str(cfg), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run_dir = tmp_path / "runs" / "demo"
    for name in ("results.parquet", "results.csv", "summary.md", "run.json", "result.json",
                 "journal.jsonl", "request.json", "config.yaml", "plots/heatmap_hold_48h.png"):
        assert (run_dir / name).exists(), name
    summary = (run_dir / "summary.md").read_text()
    (run_dir / "summary.md").unlink()
    out = cli("analyze", str(run_dir), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (run_dir / "summary.md").read_text() == summary


def test_an_invalid_config_writes_nothing_and_dry_run_catches_it(tmp_path):
    cfg = tmp_path / "dup.yaml"
    cfg.write_text(GOOD.replace("tp_mults: [1.5, 2, 3]", "tp_mults: [2, 2]"))
    for args in ((), ("--dry-run",)):
        out = cli("run", str(cfg), *args, cwd=tmp_path)
        assert out.returncode == 2 and "dup.yaml, line 5" in out.stderr and "duplicate" in out.stderr
    assert not (tmp_path / "out").exists()
    cfg.write_text(GOOD)  # the corrected config then runs: nothing stale refuses it
    assert cli("run", str(cfg), cwd=tmp_path).returncode == 0


def test_restart_clears_the_previous_runs_results(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(GOOD.replace("run: grouped", "run: optimize"))
    assert cli("run", str(cfg), cwd=tmp_path).returncode == 0
    assert (tmp_path / "out" / "best_trades.json").exists()
    cfg.write_text(GOOD.replace("run: grouped", "run: per_caller"))
    assert cli("run", str(cfg), "--restart", cwd=tmp_path).returncode == 0
    assert not (tmp_path / "out" / "best_trades.json").exists()  # per-caller runs have none
    assert not (tmp_path / "out" / "plots" / "equity_best.png").exists()
    assert '"kind": "per_caller"' in (tmp_path / "out" / "run.json").read_text()


def test_resume_does_not_depend_on_the_working_directory(tmp_path):
    from worker._data.files import write_dataset_files
    from worker._data.synthetic import synthetic_dataset

    proj = tmp_path / "proj"
    proj.mkdir()
    write_dataset_files(synthetic_dataset(n_calls=40, n_candles=200, seed=2),
                        str(proj / "calls.parquet"), str(proj / "candles.parquet"))
    (proj / "cfg.yaml").write_text("data: {calls: calls.parquet, candles: candles.parquet}\n"
                                   "param_grid: {tp_mults: [2, 3], sl_mults: [0.9]}\noutput: out\n")
    assert cli("run", "cfg.yaml", cwd=proj).returncode == 0
    again = cli("run", "proj/cfg.yaml", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "reused from the journal" in again.stdout and " 0 chunks computed" in again.stdout


def test_unknown_caller_groups_names_are_warned_about(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(GOOD + "caller_groups: [caller-000, nobody]\n")
    out = cli("run", str(cfg), "--dry-run", cwd=tmp_path)
    assert out.returncode == 0 and "warning" in out.stderr and "nobody" in out.stderr
    assert "caller-000" not in out.stderr.split("ignored")[-1]


def test_demo_write_files_round_trips_through_the_file_loader(tmp_path):
    from worker._data.files import dataset_from_files
    from worker._data.synthetic import synthetic_dataset

    out = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-m", "worker", "demo", "--calls", "40", "--candles", "90",
         "--seed", "3", "--write-files", str(out)],
        capture_output=True, text=True, env=worker_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "40 calls" in done.stdout and "3,600 candles" in done.stdout
    loaded = dataset_from_files(str(out / "calls.parquet"), str(out / "candles.parquet"))
    expected = synthetic_dataset(n_calls=40, n_candles=90, seed=3)
    assert list(loaded.call_ids) == list(expected.call_ids)
    assert (loaded.close == expected.close).all() and (loaded.ts_ms == expected.ts_ms).all()


def test_incomplete_run_warns_exits_3_and_a_rerun_completes(tmp_path, monkeypatch, capsys):
    """A chunk that fails (injected) is isolated in a batch run, but the run
    says so: exit code 3, run.json ``incomplete``, summary.md warns first,
    and the printed lines say how to resume; running it again completes it."""
    import json

    import worker._batch.runner as B
    import worker._run.chunks as J
    from worker._cli import main

    monkeypatch.setattr(J, "CHUNK_EVALUATIONS", 200)   # a few items per chunk: 6 chunks
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(GOOD.replace("run: grouped", "run: optimize"))
    real = B.ThreadEvaluator

    class Failing(real):
        async def evaluate(self, job, span, **kw):
            if span[0] == 0:
                raise RuntimeError("injected failure")
            return await super().evaluate(job, span, **kw)

    monkeypatch.setattr(B, "ThreadEvaluator", Failing)
    assert main(["run", str(cfg)]) == 3
    out = capsys.readouterr()
    run_dir = tmp_path / "out"
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["incomplete"] is True and meta["chunks_failed"] == 1
    assert [c["error"] for c in meta["failed_chunks"]] == ["RuntimeError: injected failure"]
    first = (run_dir / "summary.md").read_text().splitlines()[0]
    assert first.startswith("> **Warning: incomplete run**") and "1 chunk failed" in first
    assert "INCOMPLETE" in out.out and "1 chunk failed" in out.out
    assert f"optimizer-worker run {cfg}" in out.out            # how to resume
    assert "incomplete" in out.err.lower()

    monkeypatch.setattr(B, "ThreadEvaluator", real)            # the fault is gone: resume
    assert main(["run", str(cfg)]) == 0
    out = capsys.readouterr()
    assert "1 chunks computed" in out.out and "5 reused" in out.out and "INCOMPLETE" not in out.out
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["incomplete"] is False and meta["chunks_failed"] == 0
    assert (run_dir / "summary.md").read_text().startswith("# ")


# ----------------------------------------- SPEC 11 dimensions, chosen heatmaps

EXT = """data:
  demo: {calls: 60, candles: 200, callers: 3, seed: 1}
param_grid:
  tp_mults: [1.5, 2]
  sl_mults: [0.85, 0.9]
  trail_pct: [null, 0.1, 0.2]
  entry_dip_pct: [0, 0.05]
simulator_config: {gap_fill: open}
report:
  heatmaps:
    - [tp_mult, sl_mult]
    - [trail_pct, entry_dip_pct]
output: out
workers: 0
"""


def test_new_grid_dimensions_gap_fill_and_heatmap_pairs_load():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        cfg_path = Path(d) / "ext.yaml"
        cfg_path.write_text(EXT)
        cfg, _ = load_config(cfg_path)
    assert cfg.param_grid.trail_pct == [None, 0.1, 0.2]
    assert cfg.param_grid.entry_dip_pct == [0, 0.05] and cfg.param_grid.breakeven_trigger is None
    assert cfg.simulator_config.gap_fill == "open"
    assert cfg.report.heatmaps == [["tp_mult", "sl_mult"], ["trail_pct", "entry_dip_pct"]]


@pytest.mark.parametrize("old, new, line, path, words", [
    ("[trail_pct, entry_dip_pct]", "[trail_pct, dip]", 12, "$.report.heatmaps[1][1]",
     "unknown grid dimension 'dip'"),
    ("[trail_pct, entry_dip_pct]", "[breakeven_trigger, tp_mult]", 12,
     "$.report.heatmaps[1][0]", "give param_grid.breakeven_trigger"),
    ("[trail_pct, entry_dip_pct]", "[trail_pct, trail_pct]", 12, "$.report.heatmaps[1][1]",
     "two different"),
    ("[trail_pct, entry_dip_pct]", "[tp_mult, sl_mult]", 12, "$.report.heatmaps[1]", "twice"),
    ("[trail_pct, entry_dip_pct]", "[trail_pct, entry_dip_pct, tp_mult]", 12,
     "$.report.heatmaps[1]", "length"),
    ("trail_pct: [null, 0.1, 0.2]", "trail_pct: [null, 1.5]", 6, "$.param_grid.trail_pct[1]",
     "< 1"),
    ("{gap_fill: open}", "{gap_fill: close}", 8, "$.simulator_config.gap_fill", "close"),
    ("report:", "report:\n  heatmap: []", 10, "$.report", "heatmap"),   # on its own line
])
def test_extended_config_errors_name_the_key_and_the_line(tmp_path, old, new, line, path, words):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(EXT.replace(old, new))
    with pytest.raises(InvalidParams) as info:
        load_config(cfg)
    assert info.value.data["path"] == path
    assert f"bad.yaml, line {line}:" in info.value.message and words in info.value.message


def test_dry_run_counts_every_dimension(tmp_path):
    cfg = tmp_path / "ext.yaml"
    cfg.write_text(EXT)
    out = cli("run", str(cfg), "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "grid: 2 tp x 2 sl x 1 hold x 3 trail_pct x 2 entry_dip_pct = 24 points" in out.stdout
    assert "1,440 call x point evaluations" in out.stdout


def test_a_rule_across_new_fields_is_refused_at_its_line(tmp_path):
    """breakeven_offset must be below breakeven_trigger - 1: checked by the
    engine's validation, reported on the config's own key."""
    cfg = tmp_path / "be.yaml"
    cfg.write_text(EXT.replace("simulator_config:", "  breakeven_trigger: [1.2]\n"
                               "  breakeven_offset: [0, 0.3]\nsimulator_config:"))
    out = cli("run", str(cfg), "--dry-run", cwd=tmp_path)
    assert out.returncode == 2 and "be.yaml, line 9" in out.stderr, out.stderr
    assert "$.param_grid.breakeven_offset[1]" in out.stderr


def test_trailing_example_runs_with_its_heatmaps_and_analyze_rewrites_them(tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    cfg = tmp_path / "examples" / "trailing.yaml"
    text = cfg.read_text()
    assert "calls: 1000, candles: 2880" in text and "workers: 2" in text
    cfg.write_text(text.replace("calls: 1000, candles: 2880", "calls: 60, candles: 300")
                   .replace("workers: 2", "workers: 0"))
    out = cli("run", str(cfg), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run_dir = tmp_path / "runs" / "trailing"
    plots = sorted(p.name for p in (run_dir / "plots").iterdir())
    assert plots == ["equity_best.png", "heatmap_breakeven_trigger_x_entry_dip_pct.png",
                     "heatmap_tp_mult_x_sl_mult.png", "heatmap_trail_pct_x_trail_activation.png"]
    header = (run_dir / "results.csv").read_text().splitlines()[0].replace('"', "").split(",")
    assert header[1:9] == ["tp_mult", "sl_mult", "max_hold_hrs", "trail_pct", "trail_activation",
                           "breakeven_trigger", "entry_dip_pct", "entry_max_wait_min"]
    assert {"exits_trailing_stop", "exits_breakeven", "skipped_no_fill"} <= set(header)
    summary = (run_dir / "summary.md").read_text()
    assert "### trail_pct\n" in summary and "| off |" in summary
    assert "### entry_dip_pct\n" in summary and "At the best point:" in summary
    (run_dir / "summary.md").unlink()
    shutil.rmtree(run_dir / "plots")
    out = cli("analyze", str(run_dir), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (run_dir / "summary.md").read_text() == summary
    assert sorted(p.name for p in (run_dir / "plots").iterdir()) == plots


def test_changing_only_the_heatmaps_resumes_and_redraws(tmp_path):
    cfg = tmp_path / "ext.yaml"
    cfg.write_text(EXT)
    assert cli("run", str(cfg), cwd=tmp_path).returncode == 0
    cfg.write_text(EXT.replace("    - [tp_mult, sl_mult]\n", ""))
    again = cli("run", str(cfg), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert " 0 chunks computed" in again.stdout              # the report is not the run
    assert sorted(p.name for p in (tmp_path / "out" / "plots").iterdir()) == [
        "equity_best.png", "heatmap_trail_pct_x_entry_dip_pct.png"]


# ------------------------------------------------ SPEC 12: walk-forward, stress

WF = """data:
  demo: {calls: 150, candles: 300, callers: 3, seed: 2}
run: walk_forward
param_grid:
  tp_mults: [1.5, 2, 3]
  sl_mults: [0.85, 0.9]
  max_hold_hrs: [6, 24]
folds:
  scheme: rolling
  train_days: 6
  test_days: 4
pbo: {blocks: 8}
output: out
workers: 0
"""
WF_GRID = {"tp_mults": [1.5, 2, 3], "sl_mults": [0.85, 0.9], "max_hold_hrs": [6, 24]}


@pytest.mark.parametrize("old, new, line, path, words", [
    ("folds:\n  scheme: rolling\n  train_days: 6\n  test_days: 4\n", "", 1, "$.folds",
     "run: walk_forward needs folds"),
    ("run: walk_forward", "run: optimize", 9, "$.folds", "is for run: walk_forward"),
    ("scheme: rolling", "scheme: rollin", 9, "$.folds.scheme", "rollin"),
    ("train_days: 6", "train_days: 0", 10, "$.folds.train_days", "> 0"),
    ("test_days: 4\n", "test_days: 4\n  n_groups: 4\n", 12, "$.folds.n_groups",
     "not a key of rolling folds"),
    ("  test_days: 4\n", "", 9, "$.folds", "rolling folds need test_days"),
    ("  train_days: 6\n", "  trian_days: 6\n", 10, "$.folds", "trian_days"),
    ("scheme: rolling\n  train_days: 6\n  test_days: 4", "scheme: cpcv\n  n_groups: 4\n"
     "  n_test_groups: 4", 11, "$.folds.n_test_groups", "less than n_groups (4)"),
    ("{blocks: 8}", "{blocks: 7}", 12, "$.pbo.blocks", "even"),
    ("output: out", "stress: [{name: a}, {name: a}]\noutput: out", 13, "$.stress[1].name",
     "duplicate lane name"),
    ("output: out", "rank_by: maximin\noutput: out", 13, "$.rank_by", "needs stress lanes"),
    ("output: out", "plateau: {radius: -1}\noutput: out", 13, "$.plateau.radius", ">= 0"),
])
def test_walk_forward_config_errors_name_the_key_and_the_line(tmp_path, old, new, line, path,
                                                              words):
    cfg = tmp_path / "bad.yaml"
    assert old in WF
    cfg.write_text(WF.replace(old, new))
    with pytest.raises(InvalidParams) as info:
        load_config(cfg)
    assert info.value.data["path"] == path
    assert f"bad.yaml, line {line}:" in info.value.message and words in info.value.message


@pytest.mark.parametrize("extra, line, path, words", [
    ("stress:\n  - {name: a, taker_fee_bps: 40}\n  - {name: a}\n", 10, "$.stress[1].name",
     "duplicate lane name 'a'"),
    ("stress: worst\n", 8, "$.stress", "worst"),
    ("stress: []\n", 8, "$.stress", "length"),
    ("stress:\n  - {name: a, fee: 40}\n", 9, "$.stress[0]", "fee"),
])
def test_stress_config_errors_name_the_key_and_the_line(tmp_path, extra, line, path, words):
    cfg = tmp_path / "bad.yaml"
    text = (WF.replace("run: walk_forward", "run: optimize")
            .replace("folds:\n  scheme: rolling\n  train_days: 6\n  test_days: 4\n", "")
            .replace("pbo: {blocks: 8}\n", "").replace("output: out", extra + "output: out"))
    cfg.write_text(text)
    with pytest.raises(InvalidParams) as info:
        load_config(cfg)
    assert info.value.data["path"] == path
    assert f"bad.yaml, line {line}:" in info.value.message and words in info.value.message


def test_spec12_keys_reach_a_grouped_run(tmp_path):
    """plateau, stress and rank_by rank each caller's points in a grouped run
    (the engine's per-caller flow); the config takes them."""
    cfg = tmp_path / "ok.yaml"
    cfg.write_text(GOOD + "stress: basic\nrank_by: maximin\n")
    loaded, _ = load_config(cfg)
    assert loaded.run == "grouped" and loaded.stress == "basic" and loaded.rank_by == "maximin"


def test_folds_that_do_not_fit_the_data_are_refused_at_their_line(tmp_path):
    """A check that needs the data (the engine's): before anything is written."""
    cfg = tmp_path / "wf.yaml"
    cfg.write_text(WF.replace("train_days: 6", "train_days: 40"))
    out = cli("run", str(cfg), "--dry-run", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "wf.yaml, line 10" in out.stderr and "no fold fits" in out.stderr
    assert cli("run", str(cfg), cwd=tmp_path).returncode == 2
    assert not (tmp_path / "out").exists()


def test_walk_forward_dry_run_prints_the_folds_plan(tmp_path):
    from worker._core.folds import fold_windows

    cfg = tmp_path / "wf.yaml"
    cfg.write_text(WF)
    out = cli("run", str(cfg), "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    ds = worker_dataset()
    t0, t1 = int(ds.call_ts_ms.min()), int(ds.call_ts_ms.max()) + 1
    n = len(fold_windows(t0, t1, "rolling", 6, 4))
    assert n >= 4
    assert f"folds: rolling, {n} folds (train 6 d, test 4 d, step 4 d)" in out.stdout
    assert "  fold 0: train " in out.stdout and f"  fold {n - 1}: train " in out.stdout
    assert "pbo: 8 blocks, C(8, 4) = 70 in-sample / out-of-sample splits" in out.stdout
    assert f"one grid job of {2 * n + 8 + 1} call sets" in out.stdout
    assert "stitched out-of-sample run: yes" in out.stdout and "estimated time" in out.stdout
    assert not (tmp_path / "out").exists()


def worker_dataset():
    import worker

    return worker.synthetic_dataset(n_calls=150, n_candles=300, n_callers=3, seed=2)


def _csv_rows(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _float(cell: str):
    return None if cell == "" else float(cell)


def test_walk_forward_run_matches_the_library_and_resumes(tmp_path, monkeypatch, capsys):
    """The batch run's result.json, folds.csv and the robustness section carry
    ``worker.walk_forward``'s numbers on the same data; a second run reuses
    the journal; analyze rewrites the same report."""
    import json

    import msgspec

    import worker
    from worker._cli import main

    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "wf.yaml"
    cfg.write_text(WF)
    assert main(["run", str(cfg)]) == 0
    capsys.readouterr()
    run_dir = tmp_path / "out"
    expected = worker.walk_forward(worker_dataset(), WF_GRID,
                                   folds={"scheme": "rolling", "train_days": 6, "test_days": 4},
                                   pbo={"blocks": 8}, include_all=True, top_k=10)
    want = json.loads(msgspec.json.encode(expected))
    got = json.loads((run_dir / "result.json").read_text())
    assert got == want
    assert json.loads((run_dir / "run.json").read_text())["kind"] == "walk_forward"

    rows = _csv_rows(run_dir / "folds.csv")
    assert len(rows) == len(want["folds"]) >= 4
    for row, fold in zip(rows, want["folds"]):
        assert int(row["fold"]) == fold["index"]
        assert [int(row["n_train"]), int(row["n_test"]), int(row["n_purged"])] == [
            fold["n_train"], fold["n_test"], fold["n_purged"]]
        assert int(row["test_start_ms"]) == fold["test_windows"][0][0]
        assert int(row["train_end_ms"]) == fold["train_windows"][-1][1]
        chosen = fold["chosen_params"]
        assert _float(row["tp_mult"]) == (chosen and chosen["tp_mult"])
        assert _float(row["sl_mult"]) == (chosen and chosen["sl_mult"])
        for side in ("train", "test"):
            m = fold[f"{side}_metrics"] or {}
            assert _float(row[f"{side}_objective"]) == pytest.approx(m.get("final_capital"),
                                                                     rel=1e-12)
            assert _float(row[f"{side}_total_return"]) == pytest.approx(m.get("total_return"),
                                                                        rel=1e-12)
        assert _float(row["test_rank_pct"]) == pytest.approx(fold["test_rank_pct"], rel=1e-12)
        assert _float(row["spearman"]) == pytest.approx(fold["spearman"], rel=1e-12)

    summary = (run_dir / "summary.md").read_text()
    section = summary.split("## Robustness\n\n", 1)[1].split("\n### ", 1)[0]
    verdict = section.splitlines()[0]
    assert verdict.startswith("**Verdict: ")
    assert summary.index("## Robustness") < summary.index("## Top 10")
    assert f"PBO {want['pbo']['pbo']:.2f}" in verdict
    assert f"deflated Sharpe {want['full']['deflated_sharpe']:.3f}" in verdict
    valid = [f for f in want["folds"] if f["chosen_params"]]
    wins = sum(1 for f in valid if f["test_metrics"]["total_return"] > 0)
    assert f"{wins} of {len(valid)} folds profitable out of sample" in verdict
    assert f"stitched out-of-sample return {want['stitched']['metrics']['total_return']:+.2%}" \
        in verdict
    agg = want["aggregate"]
    assert f"| degradation (median test vs train) | {agg['degradation']:+.1%} |" in summary
    assert f"| efficiency (test vs train return per day) | {agg['efficiency']:.2f} |" in summary
    assert f"| median test objective | {agg['median_test_objective']:,.2f} |" in summary
    assert f"| P(out-of-sample loss) | {want['pbo']['prob_oos_loss']:.2f} |" in summary

    plots = run_dir / "plots"
    for name in ("stitched_equity.png", "overfit.png", "equity_best.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    import pyarrow.parquet as pq

    points = pq.read_table(run_dir / "fold_points.parquet").to_pylist()
    assert len(points) == len(valid) * 12
    picks = [p for p in points if p["chosen"]]
    assert [p["train_objective"] for p in picks] == pytest.approx(
        [f["train_metrics"]["final_capital"] for f in valid], rel=1e-12)
    assert [p["test_objective"] for p in picks] == pytest.approx(
        [f["test_metrics"]["final_capital"] for f in valid], rel=1e-12)
    # The results table is the full-data optimize's: its ranks are the answer's.
    table = _csv_rows(run_dir / "results.csv")
    ranks = {p["index"]: p["rank"] for p in want["full"]["all_results"]}
    assert {int(r["index"]): int(r["rank"]) for r in table} == ranks

    assert main(["run", str(cfg)]) == 0                      # resume: nothing recomputed
    assert " 0 chunks computed" in capsys.readouterr().out
    assert json.loads((run_dir / "result.json").read_text()) == want
    summary = (run_dir / "summary.md").read_text()
    for name in ("summary.md", "folds.csv"):
        (run_dir / name).unlink()
    shutil.rmtree(plots)
    assert main(["analyze", str(run_dir)]) == 0
    assert (run_dir / "summary.md").read_text() == summary
    assert len(_csv_rows(run_dir / "folds.csv")) == len(rows)
    assert (plots / "overfit.png").exists() and (plots / "stitched_equity.png").exists()


def test_optimize_with_stress_has_lane_columns_and_a_stress_section(tmp_path, monkeypatch,
                                                                      capsys):
    import worker
    from worker._cli import main

    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "s.yaml"
    cfg.write_text(GOOD.replace("run: grouped", "run: optimize")
                   + "objective: total_return\nstress: basic\nplateau: {radius: 1}\n"
                     "rank_by: maximin\nworkers: 0\n")
    out = cli("run", str(cfg), "--dry-run", cwd=tmp_path)
    assert "stress: 2 lanes (baseline, worse): the grid runs 1 more time(s)" in out.stdout
    assert "1,440 call x point evaluations" in out.stdout       # 60 calls x 12 points x 2
    assert main(["run", str(cfg)]) == 0
    capsys.readouterr()
    expected = worker.optimize(
        worker.synthetic_dataset(n_calls=60, n_candles=200, n_callers=3, seed=1),
        {"tp_mults": [1.5, 2, 3], "sl_mults": [0.85, 0.9], "max_hold_hrs": [6, 48]},
        objective="total_return", stress="basic", plateau={"radius": 1}, rank_by="maximin",
        include_all=True)
    rows = _csv_rows(tmp_path / "out" / "results.csv")
    assert list(rows[0])[-5:] == ["plateau", "lane_baseline", "lane_worse", "worst_lane",
                                  "maximin"]
    by_index = {int(r["index"]): r for r in rows}
    assert len(by_index) == 12
    for p in expected.all_results:
        r = by_index[p.index]
        assert int(r["rank"]) == p.rank
        assert _float(r["lane_worse"]) == pytest.approx(p.lanes["worse"], rel=1e-12)
        assert _float(r["lane_baseline"]) == pytest.approx(p.lanes["baseline"], rel=1e-12)
        assert r["worst_lane"] == p.worst_lane
        assert _float(r["maximin"]) == pytest.approx(p.maximin, rel=1e-12)
        assert _float(r["plateau"]) == pytest.approx(p.plateau, rel=1e-12)
    summary = (tmp_path / "out" / "summary.md").read_text()
    best = expected.top[0]
    assert "## Stress lanes and plateau" in summary and "Ranked by `maximin`" in summary
    assert (f"under its worst lane (`{best.worst_lane}`)" in summary
            and f"{best.maximin:+.2%} under" in summary)
    assert f"deflated Sharpe of the best: {expected.deflated_sharpe:.3f}" in summary


def test_walk_forward_example_runs_with_its_report(tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    cfg = tmp_path / "examples" / "walk_forward.yaml"
    text = cfg.read_text()
    for words in ("run: walk_forward", "scheme: rolling", "blocks: 16",
                  "calls: 1000, candles: 2880", "workers: 2"):
        assert words in text, words
    cfg.write_text(text.replace("calls: 1000, candles: 2880", "calls: 150, candles: 300")
                   .replace("workers: 2", "workers: 0"))
    out = cli("run", str(cfg), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run_dir = tmp_path / "runs" / "walk_forward"
    assert {"folds.csv", "fold_points.parquet", "summary.md"} <= {p.name for p in run_dir.iterdir()}
    assert {"stitched_equity.png", "overfit.png"} <= {p.name for p in (run_dir / "plots").iterdir()}
    lines = (run_dir / "summary.md").read_text().splitlines()
    assert lines[2] == "## Robustness" and lines[4].startswith("**Verdict: ")


def test_spec12_keys_enter_the_fingerprinted_request_only_when_given(tmp_path):
    """A run directory made before SPEC 12's keys existed still resumes."""
    from worker._batch.runner import request_of

    cfg = tmp_path / "c.yaml"
    cfg.write_text(GOOD)
    request = request_of(load_config(cfg)[0])
    assert not {"folds", "pbo", "plateau", "stress", "rank_by"} & set(request)
    cfg.write_text(WF)
    request = request_of(load_config(cfg)[0])
    assert request["folds"]["train_days"] == 6 and request["pbo"] == {"blocks": 8}
    assert "stress" not in request
