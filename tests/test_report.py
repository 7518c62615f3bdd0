"""The run directory's report (docs/run-directory.md): results table,
summary.md, plots, and ``analyze`` rewriting them from the run's own files.

Results are real: a seeded synthetic dataset run through the library's grid
jobs, ranked the way the optimizer ranks. Nothing sleeps, nothing is timed.
"""

from __future__ import annotations

import re
import shutil

import matplotlib.image
import msgspec
import numpy as np
import pyarrow.parquet as pq
import pytest
from matplotlib import colormaps
from worker._report.analyze import NotARunDirectory, analyze, analyze_main

import worker
from worker._core.engine import grid_levels
from worker._core.jobs import GridJob, evaluate
from worker._core.layouts import (CAP_FINAL_CAPITAL, CAPITAL_METRICS, EXIT_REASONS,
                                  MODE_SKIP_REASONS, N_EXITS, N_METRICS, N_SKIPS,
                                  PER_TRADE_METRICS)
from worker._core.optimize import feasible_mask, make_study, rank_order
from worker._report.plots import heatmaps, hold_label
from worker._report.report import (fmt_params, pearson, results_table, summary_markdown,
                                   table_column_names, write_report)

GRID = {"tp_mults": [1.2, 1.5, 2.0, 3.0], "sl_mults": [0.8, 0.85, 0.9, 0.95],
        "max_hold_hrs": [0.5, 8.0]}
N_POINTS = 4 * 4 * 2
CONSTRAINTS = {"max_drawdown": 0.12}       # leaves some points infeasible
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ds():
    return worker.synthetic_dataset(n_calls=200, n_candles=600, n_callers=5, seed=4)


def table_for(ds, *, per_caller=False, failed_items=(), grid=GRID, **study_args):
    """The results table of a run, built the way the optimizer builds its answer:
    grid job arrays, feasibility, ranks per caller group. ``failed_items`` are
    flat item numbers whose chunk "failed": their arrays hold garbage (nothing
    came back), which the table must not show."""
    study = make_study(ds, grid=grid, **study_args)
    levels = grid_levels(study.grid, study.config)
    codes = np.unique(ds.call_caller[study.positions]) if per_caller else None
    job = GridJob(levels, study.positions, codes, study.config, study.mode)
    metrics, exits, skipped = evaluate(ds, job)
    failed = np.zeros(job.n_items, bool)
    failed[list(failed_items)] = True
    metrics[failed], exits[failed], skipped[failed] = 123.0, 7, 7
    feasible = feasible_mask(study, metrics)
    rank = np.empty(job.n_items, np.int64)
    p = levels.n_points
    for g in range(job.n_groups):
        rows = slice(g * p, (g + 1) * p)
        order = rank_order(metrics[rows, study.column(study.objective)], feasible[rows],
                           study.minimize)
        rank[g * p + order] = np.arange(1, p + 1)
    callers = None if codes is None else [ds.caller_names[c] for c in codes.tolist()]
    return results_table(mode=study.mode, params=levels.params, metrics=metrics, exits=exits,
                         skipped=skipped, feasible=feasible, rank=rank, failed=failed,
                         callers=callers, grid=study.grid), study


def meta_for(kind, study, *, failed_chunks=(), dropped=None):
    return {"kind": kind, "mode": study.mode, "objective": study.objective,
            "minimize": study.minimize, "initial_capital": study.config.initial_capital,
            "params_evaluated": N_POINTS, "failed_chunks": list(failed_chunks),
            "dropped": dropped or {"count": 0, "keys": []}, "fingerprint": "f00d",
            "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:00:09Z"}


def save_run(run_dir, *, table, meta, result, trades):
    """What the run writer puts next to the report, then the report itself."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_bytes(msgspec.json.encode(meta))
    (run_dir / "result.json").write_bytes(msgspec.json.encode(result))
    if trades is not None:
        (run_dir / "best_trades.json").write_bytes(msgspec.json.encode(trades))
    return write_report(run_dir, table=table, meta=meta, result=result, best_trades=trades)


def section(text, title):
    """The lines of a ``## title`` section of summary.md."""
    body = text.split(f"\n## {title}\n", 1)[1]
    return body.split("\n## ", 1)[0].splitlines()


def cells(line):
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]


def check_markdown_tables(text):
    """Every table: header, separator, rows with the header's column count,
    preceded by a blank line (or it does not render as a table)."""
    lines = text.splitlines()
    tables = 0
    for i, line in enumerate(lines):
        if line.startswith("|") and not lines[i - 1].startswith("|"):
            tables += 1
            assert lines[i - 1] == "", f"no blank line before table at line {i + 1}"
            width = len(cells(line))
            assert re.fullmatch(r"\|( :?---:? \|)+", lines[i + 1]), lines[i + 1]
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                assert len(cells(lines[j])) == width, lines[j]
                j += 1
    return tables


@pytest.fixture(scope="module")
def optimize_run(ds, tmp_path_factory):
    table, study = table_for(ds, constraints=CONSTRAINTS)
    result = worker.optimize(ds, GRID, constraints=CONSTRAINTS)
    trades = worker.simulate(ds, result.best_params).completed_trades
    run_dir = tmp_path_factory.mktemp("optimize")
    paths = save_run(run_dir, table=table, meta=meta_for("optimize", study), result=result,
                     trades=trades)
    return run_dir, paths, table, result


@pytest.fixture(scope="module")
def per_caller_run(ds, tmp_path_factory):
    table, study = table_for(ds, per_caller=True, constraints=CONSTRAINTS)
    result = worker.optimize_per_caller(ds, GRID, constraints=CONSTRAINTS)
    run_dir = tmp_path_factory.mktemp("per_caller")
    paths = save_run(run_dir, table=table, meta=meta_for("per_caller", study), result=result,
                     trades=None)
    return run_dir, paths, table, result


@pytest.fixture(scope="module")
def grouped_run(ds, tmp_path_factory):
    kw = dict(constraints=CONSTRAINTS, filter_collapsed=False, filter_extreme=False)
    table, study = table_for(ds, per_caller=True, constraints=CONSTRAINTS)
    result = worker.grouped_eval(ds, GRID, **kw)
    trades = worker.simulate(ds, result.grouped_params,
                             caller_groups=result.selected_callers).completed_trades
    run_dir = tmp_path_factory.mktemp("grouped")
    failed = [{"id": "j0:32-64", "job": 0, "span": [32, 64], "error": "pool process died | x"}]
    meta = meta_for("grouped", study, failed_chunks=failed,
                    dropped={"count": 3, "keys": ["mint-a", "mint-b", "mint-c"]})
    paths = save_run(run_dir, table=table, meta=meta, result=result, trades=trades)
    return run_dir, paths, table, result


# ------------------------------------------------------------------ the table

def test_optimize_table_columns_rows_and_ranks(ds):
    table, _ = table_for(ds, constraints=CONSTRAINTS)
    assert table.column_names == [
        "index", "tp_mult", "sl_mult", "max_hold_hrs", *CAPITAL_METRICS,
        *(f"exits_{r}" for r in EXIT_REASONS),
        *(f"skipped_{r}" for r in MODE_SKIP_REASONS["capital"]),
        "feasible", "rank", "failed"]
    assert table.num_rows == N_POINTS
    assert table.column("index").to_pylist() == list(range(N_POINTS))
    assert sorted(table.column("rank").to_pylist()) == list(range(1, N_POINTS + 1))
    for name in ("trades_executed", "wins", "losses", "trades_skipped", "exits_take_profit"):
        assert str(table.schema.field(name).type) == "int64", name
    first = table.slice(0, 1).to_pylist()[0]
    assert (first["tp_mult"], first["sl_mult"], first["max_hold_hrs"]) == (1.2, 0.8, 0.5)
    feasible = np.array(table.column("feasible").to_pylist())
    assert 0 < feasible.sum() < N_POINTS        # the constraint bites, but not everywhere
    # Feasible points rank before every infeasible one.
    ranks = np.array(table.column("rank").to_pylist())
    assert ranks[feasible].max() < ranks[~feasible].min()


def test_per_caller_table_ranks_are_a_permutation_per_caller(ds):
    table, _ = table_for(ds, per_caller=True)
    callers = table.column("caller").to_pylist()
    assert table.column_names[:2] == ["caller", "index"]
    assert table.num_rows == len(ds.caller_names) * N_POINTS
    assert list(dict.fromkeys(callers)) == sorted(set(callers), key=callers.index)
    rank = np.array(table.column("rank").to_pylist()).reshape(-1, N_POINTS)
    for row in rank:
        assert sorted(row.tolist()) == list(range(1, N_POINTS + 1))
    assert len(set(callers)) == len(ds.caller_names)


def test_failed_rows_have_null_metrics_and_are_infeasible(ds):
    table, _ = table_for(ds, per_caller=True, failed_items=range(40, 50))
    rows = table.to_pylist()
    for i, row in enumerate(rows):
        failed = 40 <= i < 50
        assert row["failed"] is failed
        if failed:
            assert row["feasible"] is False
            assert all(row[k] is None for k in (*CAPITAL_METRICS, "exits_stop_loss",
                                                "skipped_no_entry"))
        else:
            assert row["final_capital"] is not None and row["trades_executed"] is not None


def test_per_trade_table_and_nan_profit_factor_is_null(ds):
    table, _ = table_for(ds, mode="per_trade")
    assert table.column_names == [
        "index", "tp_mult", "sl_mult", "max_hold_hrs", *PER_TRADE_METRICS,
        *(f"exits_{r}" for r in EXIT_REASONS),
        *(f"skipped_{r}" for r in MODE_SKIP_REASONS["per_trade"]), "feasible", "rank", "failed"]
    study = make_study(ds, mode="per_trade")
    levels = grid_levels(study.grid, study.config)
    metrics = np.ones((levels.n_points, N_METRICS))  # default grid: 30 points, hold from the config
    metrics[3, PER_TRADE_METRICS.index("profit_factor")] = np.nan
    n = levels.n_points
    t = results_table(mode="per_trade", params=levels.params, metrics=metrics,
                      exits=np.zeros((n, N_EXITS)), skipped=np.zeros((n, N_SKIPS)),
                      feasible=np.ones(n, bool), rank=np.arange(1, n + 1),
                      failed=np.zeros(n, bool))
    pf = t.column("profit_factor").to_pylist()
    assert pf[3] is None and pf[2] == 1.0
    assert t.column("max_hold_hrs").to_pylist()[0] == 48.0   # the config's horizon


# -------------------------------------------------------------- write_report

def test_write_report_writes_every_file_of_the_contract(optimize_run):
    run_dir, paths, table, _ = optimize_run
    expected = {"results.parquet", "results.csv", "summary.md", "plots/heatmap_hold_0.5h.png",
                "plots/heatmap_hold_8h.png", "plots/equity_best.png"}
    assert {str(p.relative_to(run_dir)) for p in paths} == expected
    assert all(p.stat().st_size > 0 for p in paths)
    assert pq.read_table(run_dir / "results.parquet").equals(table)
    csv = (run_dir / "results.csv").read_text().splitlines()
    assert len(csv) == N_POINTS + 1 and csv[0].split(",")[:2] == ['"index"', '"tp_mult"']
    assert not list(run_dir.glob("**/*.tmp"))


def test_writers_print_nothing(ds, tmp_path, capsys):
    table, study = table_for(ds, grid={"tp_mults": [2.0], "sl_mults": [0.9]})
    result = worker.optimize(ds, {"tp_mults": [2.0], "sl_mults": [0.9]})
    write_report(tmp_path, table=table, meta=meta_for("optimize", study), result=result,
                 best_trades=[])
    out = capsys.readouterr()
    assert out.out == "" and (tmp_path / "summary.md").is_file()
    assert not (tmp_path / "plots" / "equity_best.png").exists()   # no trades, no curve


def test_summary_top_10_starts_with_the_optimizers_best(optimize_run):
    run_dir, _, _, result = optimize_run
    text = (run_dir / "summary.md").read_text()
    rows = [cells(line) for line in section(text, "Top 10") if line.startswith("| ")]
    header, body = rows[0], rows[2:]
    assert header[:5] == ["rank", "tp_mult", "sl_mult", "max_hold_hrs", "final_capital"]
    assert len(body) == min(10, result.feasible_count)
    best = result.best_params
    assert [float(x) for x in body[0][1:4]] == [best.tp_mult, best.sl_mult, best.max_hold_hrs]
    assert body[0][4] == f"{result.best_final_capital:,.2f}"
    assert [int(r[0]) for r in body] == [p.rank for p in result.top]
    assert check_markdown_tables(text) == 5       # top 10, 3 marginal effects, correlations


def test_summary_marginal_effects_list_every_grid_value(optimize_run):
    text = (optimize_run[0] / "summary.md").read_text()
    lines = section(text, "Marginal effects")
    for name in ("tp_mult", "sl_mult", "max_hold_hrs"):
        block = "\n".join(lines).split(f"### {name}\n", 1)[1].split("###", 1)[0]
        values = [cells(line)[0] for line in block.splitlines() if line.startswith("| ")][2:]
        grid_values = GRID["max_hold_hrs" if name == "max_hold_hrs" else name + "s"]
        assert [float(v) for v in values] == sorted(grid_values), name


def test_summary_correlations(optimize_run):
    lines = section((optimize_run[0] / "summary.md").read_text(), "Correlations")
    table = [cells(line) for line in lines if line.startswith("| ")]
    assert [r[0] for r in table[2:]] == ["tp_mult", "sl_mult", "max_hold_hrs"]
    values = [c for r in table[2:] for c in r[1:]]
    assert all(c == "n/a" or -1 <= float(c) <= 1 for c in values)
    assert any(c != "n/a" for c in values)
    assert pearson(np.array([1.0, 2, 3, np.nan]), np.array([2.0, 4, 6, 1])) == pytest.approx(1.0)
    assert pearson(np.ones(5), np.arange(5.0)) is None


def test_summary_failures_none_when_nothing_failed(optimize_run):
    lines = section((optimize_run[0] / "summary.md").read_text(), "Failures and dropped data")
    assert "Failed chunks: none." in lines and "Dropped series: none." in lines


def test_per_caller_summary_lists_every_caller(per_caller_run, ds):
    run_dir, _, _, result = per_caller_run
    text = (run_dir / "summary.md").read_text()
    rows = {cells(line)[0]: cells(line) for line in section(text, "Per caller")
            if line.startswith("| caller-")}
    assert set(rows) == set(ds.caller_names) == set(result.per_caller_results)
    for name, r in result.per_caller_results.items():
        if r.best_params is None:
            assert rows[name][2:5] == ["n/a"] * 3
        else:
            assert [float(x) for x in rows[name][2:5]] == [
                r.best_params.tp_mult, r.best_params.sl_mult, r.best_params.max_hold_hrs]
        assert rows[name][-2:] == ["yes" if r.collapsed_capital else "no",
                                   "yes" if r.requires_extreme_params else "no"]
    assert "## Grouped result" not in text
    assert check_markdown_tables(text) >= 6


def test_grouped_summary_and_failures(grouped_run):
    run_dir, paths, _, result = grouped_run
    text = (run_dir / "summary.md").read_text()
    grouped = "\n".join(section(text, "Grouped result"))
    assert result.selected_callers
    assert all(name in grouped for name in result.selected_callers)
    gp = result.grouped_params
    assert f"tp_mult {gp.tp_mult:.6g}, sl_mult {gp.sl_mult:.6g}" in grouped
    assert f"| final_capital | {result.grouped_result.final_capital:,.2f} |" in grouped
    failures = "\n".join(section(text, "Failures and dropped data"))
    assert "| j0:32-64 | 32-64 | pool process died \\| x |" in failures
    assert "Dropped series: 3" in failures and "`mint-a`" in failures
    assert (run_dir / "plots" / "equity_best.png") in paths
    assert check_markdown_tables(text) >= 7


@pytest.mark.parametrize("marked", [True, False])  # False: a run.json without the marker
def test_incomplete_run_warns_first_and_never_calls_a_subset_best(ds, marked):
    table, study = table_for(ds, constraints=CONSTRAINTS, failed_items=range(8, 16))
    result = worker.optimize(ds, GRID, constraints=CONSTRAINTS)
    failed = [{"id": "j0:8-16", "job": 0, "span": [8, 16], "error": "RuntimeError: x"}]
    meta = meta_for("optimize", study, failed_chunks=failed)
    if marked:
        meta.update(incomplete=True, chunks_failed=1)
    text = summary_markdown(table, meta, result)
    lines = text.splitlines()
    # The warning comes before anything else, the title included.
    assert lines[0].startswith("> **Warning: incomplete run**") and "1 chunk failed" in lines[0]
    assert "8 of the 32 result rows" in text.split("\n# ", 1)[0]
    assert "run the same config" in text.split("\n# ", 1)[0]
    assert any(line.startswith("# ") for line in lines[1:6])  # the title right after
    assert "Best of the evaluated points (incomplete run: 1 chunk failed):" in text
    assert " Best:" not in text
    assert "\n## Top 10 of the evaluated points (incomplete run: 1 chunk failed)\n" in text
    assert check_markdown_tables(text) == 6   # top 10, 3 marginal, correlations, failures


def test_a_complete_run_has_no_warning(optimize_run):
    text = (optimize_run[0] / "summary.md").read_text()
    assert text.startswith("# ") and "incomplete" not in text.lower()
    assert " Best: " in text and "\n## Top 10\n" in text


# ---------------------------------------------------------------------- plots

def read_png(path):
    assert path.read_bytes()[:8] == PNG
    return matplotlib.image.imread(path)


def test_heatmaps_are_valid_pngs_per_hold(optimize_run, per_caller_run):
    for run_dir in (optimize_run[0], per_caller_run[0]):
        for hold in GRID["max_hold_hrs"]:
            image = read_png(run_dir / "plots" / f"heatmap_hold_{hold_label(hold)}h.png")
            assert image.shape[0] > 300 and image.shape[1] > 400
            rgb = (image[..., :3] * 255).astype(np.uint32)
            colours = np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2])
            assert colours.size > 50
    assert [hold_label(h) for h in (48.0, 0.5, 1.0, 0.25, 100.0)] == ["48", "0.5", "1", "0.25",
                                                                      "100"]


def test_heatmap_colours_follow_the_objective(ds, tmp_path):
    """Lowest and highest cells are painted with the ends of the colour map
    (big blocks of pixels, not just the colour bar's end), an infeasible cell
    is hatched grey instead."""
    grid = {"tp_mults": [1.5, 2.0, 3.0], "sl_mults": [0.8, 0.9, 0.95], "max_hold_hrs": [4.0]}
    study = make_study(ds, grid=grid)
    levels = grid_levels(study.grid, study.config)
    metrics = np.zeros((9, N_METRICS))
    metrics[:, CAP_FINAL_CAPITAL] = 5_000 + 1_000 * np.arange(9)
    feasible = np.arange(9) != 4
    rank = np.empty(9, np.int64)
    rank[rank_order(metrics[:, CAP_FINAL_CAPITAL], feasible, False)] = np.arange(1, 10)
    table = results_table(mode="capital", params=levels.params, metrics=metrics,
                          exits=np.zeros((9, N_EXITS)), skipped=np.zeros((9, N_SKIPS)),
                          feasible=feasible,
                          rank=rank, failed=np.zeros(9, bool))
    [path] = heatmaps(table, "final_capital", tmp_path)
    rgb = (read_png(path)[..., :3] * 255).astype(int)

    def pixels_near(colour):
        return int((np.abs(rgb - np.array(colour)).max(axis=-1) <= 3).sum())

    viridis = colormaps["viridis"]
    low, high = ((np.array(viridis(x)[:3]) * 255).round() for x in (0.0, 1.0))
    assert pixels_near(low) > 2_000 and pixels_near(high) > 2_000
    assert pixels_near((230, 230, 230)) > 500      # the hatched infeasible cell


def test_equity_curve_png(optimize_run):
    image = read_png(optimize_run[0] / "plots" / "equity_best.png")
    # The run's own curve is drawn (not a blank canvas); what the pixels
    # show, line and drawdown against the data: tests/test_plots.py.
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert len(np.unique(image[..., :3].reshape(-1, 3), axis=0)) > 10


# -------------------------------------------------------------------- analyze

@pytest.mark.parametrize("run", ["optimize_run", "grouped_run"])
def test_analyze_recreates_the_report(run, request, tmp_path, capsys):
    source = request.getfixturevalue(run)[0]
    run_dir = tmp_path / "run"
    shutil.copytree(source, run_dir)
    summary = (run_dir / "summary.md").read_text()
    plots = sorted(p.name for p in (run_dir / "plots").iterdir())
    (run_dir / "summary.md").unlink()
    (run_dir / "results.csv").unlink()
    shutil.rmtree(run_dir / "plots")
    (run_dir / "plots").mkdir()
    (run_dir / "plots" / "heatmap_hold_99h.png").write_bytes(PNG)   # stale: not in the table
    assert analyze_main(str(run_dir)) == 0
    written = capsys.readouterr().out.splitlines()
    assert (run_dir / "summary.md").read_text() == summary
    assert sorted(p.name for p in (run_dir / "plots").iterdir()) == plots
    assert (run_dir / "results.csv").read_bytes() == (source / "results.csv").read_bytes()
    assert sorted(written) == sorted(str(p) for p in [run_dir / "results.csv",
                                                      run_dir / "summary.md",
                                                      *(run_dir / "plots").iterdir()])


def test_analyze_refuses_a_directory_that_is_not_a_finished_run(tmp_path, capsys):
    with pytest.raises(NotARunDirectory, match=r"missing results\.parquet, run\.json"):
        analyze(tmp_path)
    (tmp_path / "journal.jsonl").write_text('{"type": "header"}\n')
    assert analyze_main(str(tmp_path)) == 2
    err = capsys.readouterr()
    assert "results.parquet" in err.err and "has not finished" in err.err and err.out == ""
    with pytest.raises(NotARunDirectory, match="no such directory"):
        analyze(tmp_path / "nope")


# ------------------------------------------------- SPEC 11 dimensions (issue 12)

EXT_GRID = {"tp_mults": [1.5, 2.0], "sl_mults": [0.85, 0.9], "max_hold_hrs": [8.0],
            "trail_pct": [None, 0.1], "trail_activation": [1.0], "entry_delay_candles": [0, 2]}


def test_table_has_a_column_per_spec11_dimension_the_grid_sets(ds):
    table, _ = table_for(ds, grid=EXT_GRID)
    extended = ("trail_pct", "trail_activation", "entry_delay_candles")
    assert table.column_names == table_column_names("capital", extended=extended)
    assert table.column_names[:7] == ["index", "tp_mult", "sl_mult", "max_hold_hrs", *extended]
    rows = table.to_pylist()
    assert len(rows) == 16
    assert [r["trail_pct"] for r in rows[:4]] == [None, None, 0.1, 0.1]   # grid order
    assert {r["trail_activation"] for r in rows} == {1.0}       # given at its default: kept
    assert [r["entry_delay_candles"] for r in rows[:4]] == [0, 2, 0, 2]
    assert str(table.schema.field("entry_delay_candles").type) == "int64"
    csv_header = table_column_names("capital", extended=extended)
    assert "breakeven_trigger" not in csv_header and "entry_dip_pct" not in csv_header


def test_a_dimension_set_by_a_point_gets_a_column_without_a_grid():
    from protocol import Params
    from worker._report.report import extended_dims

    plain = [Params(tp_mult=2.0, sl_mult=0.9)]
    assert extended_dims(plain, None) == ()
    dipped = plain + [Params(tp_mult=2.0, sl_mult=0.9, entry_dip_pct=0.05)]
    assert extended_dims(dipped, None) == ("entry_dip_pct",)


def test_fmt_params_shows_spec11_parameters_off_their_default():
    p = {"tp_mult": 2.0, "sl_mult": 0.9, "max_hold_hrs": 48.0, "trail_pct": 0.1,
         "trail_activation": 1.0, "breakeven_trigger": None}
    assert fmt_params(p) == "tp_mult 2, sl_mult 0.9, max_hold_hrs 48, trail_pct 0.1"


def extended_summary(**table_args):
    from tests.test_plots import extended_table, trail_score

    table = extended_table(trail_score, **table_args)
    meta = {"kind": "optimize", "mode": "capital", "objective": "final_capital",
            "params_evaluated": table.num_rows}
    return summary_markdown(table, meta, {}), table


def block(text, name):
    lines = "\n".join(section(text, "Marginal effects")).split(f"### {name}\n", 1)[1]
    return [cells(line) for line in lines.split("###", 1)[0].splitlines()
            if line.startswith("| ")][2:]


def test_marginal_effects_cover_new_dimensions_with_off_as_a_level():
    text, table = extended_summary()
    assert check_markdown_tables(text) == 1 + 5 + 1      # top 10, 5 marginals, correlations
    rows = block(text, "trail_pct")
    assert [r[0] for r in rows] == ["off", "0.1", "0.2"]
    trail = table.column("trail_pct").to_pylist()
    obj = table.column("final_capital").to_pylist()
    for label, value in (("off", None), ("0.1", 0.1), ("0.2", 0.2)):
        at = [o for t, o in zip(trail, obj) if t == value]
        [row] = [r for r in rows if r[0] == label]
        assert row[1:] == [f"{np.mean(at):,.2f}", f"{max(at):,.2f}", f"{len(at)} / {len(at)}"]
    assert [r[0] for r in block(text, "trail_activation")] == ["1", "1.5"]


def test_correlations_of_an_optional_dimension_leave_off_points_out():
    text, table = extended_summary()
    lines = section(text, "Correlations")
    assert any("`trail_pct`" in line and "left out" in line for line in lines)
    rows = {cells(line)[0]: cells(line) for line in lines if line.startswith("| ")}
    trail = np.array(table.column("trail_pct").to_pylist(), np.float64)   # None -> NaN
    obj = np.array(table.column("final_capital").to_pylist())
    on = ~np.isnan(trail)
    expected = pearson(trail[on], obj[on])
    assert rows["trail_pct"][1] == f"{expected:+.2f}"
    # Off as 0 would read the other way round: off is the worst, 0.2 < 0.1.
    assert f"{pearson(np.nan_to_num(trail), obj):+.2f}" != rows["trail_pct"][1]
    assert rows["trail_activation"][1] != "n/a"


def test_top_10_and_best_point_show_new_dimensions_exits_and_skips():
    from worker._core.layouts import EXIT_REASONS, SKIP_REASONS

    def exits(rank):
        e = np.zeros((rank.size, N_EXITS), np.int64)
        e[rank == 1, EXIT_REASONS.index("trailing_stop")] = 7
        return e

    def skipped(rank):
        s = np.zeros((rank.size, N_SKIPS), np.int64)
        s[rank == 1, SKIP_REASONS.index("no_fill")] = 3
        return s

    text, _ = extended_summary(exits=exits, skipped=skipped)
    top = [cells(line) for line in section(text, "Top 10") if line.startswith("| ")]
    assert top[0][:6] == ["rank", "tp_mult", "sl_mult", "max_hold_hrs", "trail_pct",
                          "trail_activation"]
    assert top[2][:6] == ["1", "2", "0.9", "4", "0.1", "1.5"]
    [line] = [ln for ln in text.splitlines() if ln.startswith("At the best point:")]
    assert "trailing_stop 7" in line and "breakeven 0" in line and "no_fill 3" in line


def test_per_caller_table_fills_in_defaults_left_out_of_best_params():
    from tests.test_plots import extended_table, trail_score

    table = extended_table(trail_score)
    meta = {"kind": "per_caller", "mode": "capital", "objective": "final_capital"}
    best = {"tp_mult": 2.0, "sl_mult": 0.9, "max_hold_hrs": 4.0, "trail_pct": 0.1}
    result = {"per_caller_results": {
        "a": {"calls": 3, "best_params": best, "best_metrics": {"final_capital": 1.0}},
        "b": {"calls": 2, "best_params": None, "best_metrics": None}}}
    lines = section(summary_markdown(table, meta, result), "Per caller")
    rows = {cells(line)[0]: cells(line) for line in lines if line.startswith("| ")}
    assert rows["caller"][2:7] == ["tp_mult", "sl_mult", "max_hold_hrs", "trail_pct",
                                   "trail_activation"]
    assert rows["a"][2:7] == ["2", "0.9", "4", "0.1", "1"]      # activation: its default
    assert rows["b"][2:7] == ["n/a"] * 5


def test_engine_run_over_new_dimensions_reports_them(ds, tmp_path):
    """The engine's own table and answer: marginals list off and on, the
    header names the best point's trailing stop when it has one."""
    table, study = table_for(ds, grid=EXT_GRID)
    result = worker.optimize(ds, EXT_GRID)
    text = summary_markdown(table, meta_for("optimize", study), result)
    assert [r[0] for r in block(text, "trail_pct")] == ["off", "0.1"]
    assert [r[0] for r in block(text, "entry_delay_candles")] == ["0", "2"]
    assert f"Best: {fmt_params(msgspec.to_builtins(result.best_params))} ->" in text
    assert "exits_trailing_stop" in table.column_names and "skipped_no_fill" in table.column_names


# ------------------------------------------------------ SPEC 12: robustness

from worker._report.robust import result_ranks, robust_columns  # noqa: E402
from worker._report.robust_summary import verdict, walk_forward_section  # noqa: E402
from worker._report.walkforward import folds_table  # noqa: E402

WF_FOLDS = {"scheme": "rolling", "train_days": 6, "test_days": 4}


@pytest.fixture(scope="module")
def wf_result(ds):
    return worker.walk_forward(ds, GRID, folds=WF_FOLDS, pbo={"blocks": 8},
                               constraints=CONSTRAINTS, include_all=True)


def _wf(pbo, dsr, test_returns, stitched, full_return=0.3):
    """A walk-forward answer as result.json holds it, reduced to what the
    verdict reads."""
    folds = [{"index": k, "chosen_params": None if r is None else {"tp_mult": 2.0, "sl_mult": 0.9,
                                                                     "max_hold_hrs": 6.0},
              "test_metrics": None if r is None else {"total_return": r}}
             for k, r in enumerate(test_returns)]
    valid = [r for r in test_returns if r is not None]
    return {"objective": "total_return", "folds": folds,
            "aggregate": {"profitable_folds": (sum(r > 0 for r in valid) / len(valid)
                                               if valid else None)},
            "pbo": None if pbo is None else {"pbo": pbo},
            "stitched": None if stitched is None else {"metrics": {"total_return": stitched}},
            "full": {"deflated_sharpe": dsr, "best_total_return": full_return}}


@pytest.mark.parametrize("args, head", [
    ((0.1, 0.99, [0.1, 0.2, -0.05], 0.12), "the edge looks real"),
    ((0.6, 0.99, [0.1, 0.2, 0.3], 0.12), "likely overfit"),
    ((0.1, 0.99, [0.1, -0.2, -0.3], 0.12), "no edge out of sample"),
    ((0.1, 0.99, [0.1, 0.2, 0.3], -0.01), "no edge out of sample"),
    ((0.1, 0.5, [0.1, 0.2, 0.3], 0.12), "promising, not proven"),
    ((None, 0.99, [0.1, 0.2, 0.3], 0.12), "promising, not proven"),
    ((0.1, 0.99, [None, None], None), "no verdict: no fold chose a point"),
])
def test_verdict_headline_follows_the_statistics(args, head):
    line = verdict(_wf(*args))
    assert line.startswith(f"**Verdict: {head}"), line
    if head != "no verdict: no fold chose a point":
        wins = sum(1 for r in args[2] if r is not None and r > 0)
        assert f"{wins} of {sum(r is not None for r in args[2])} folds profitable" in line
        assert (f"PBO {args[0]:.2f}" if args[0] is not None else "PBO not computed") in line


def test_walk_forward_summary_opens_with_the_verdict(ds, wf_result):
    table, study = table_for(ds, constraints=CONSTRAINTS)
    meta = meta_for("walk_forward", study)
    text = summary_markdown(table, meta, wf_result)
    lines = text.splitlines()
    assert lines[0].startswith("# Walk-forward optimization")
    assert lines[2] == "## Robustness" and lines[4].startswith("**Verdict: ")
    result = msgspec.to_builtins(wf_result)
    assert lines[4] == verdict(result)
    assert text.index("## Robustness") < text.index("## Full-data optimization") < text.index(
        "## Top 10")
    check_markdown_tables(text)
    folds = section(text, "Robustness")
    fold_rows = [line for line in folds[folds.index("### Folds"):] if line.startswith("| ")]
    assert len(fold_rows) == 2 + len(result["folds"])          # header, separator, folds
    assert [cells(r)[0] for r in fold_rows[2:]] == [str(f["index"]) for f in result["folds"]]
    agg = result["aggregate"]
    assert f"| worst test objective | {agg['worst_test_objective']:,.2f} |" in text
    assert f"| PBO | {result['pbo']['pbo']:.2f} |" in text
    # An incomplete run says so right after the verdict, on the same line.
    incomplete = walk_forward_section(result, {**meta, "incomplete": True})
    assert incomplete[2].startswith(lines[4]) and "Incomplete run" in incomplete[2]


def test_folds_csv_has_a_row_per_fold_and_nulls_for_a_fold_without_a_choice(wf_result):
    result = msgspec.to_builtins(wf_result)
    result["folds"][1] = {**result["folds"][1], "chosen_params": None, "train_metrics": None,
                          "test_metrics": None, "test_rank_pct": None, "spearman": None}
    rows = folds_table(result).to_pylist()
    assert len(rows) == len(result["folds"])
    f0 = result["folds"][0]
    assert rows[0]["tp_mult"] == f0["chosen_params"]["tp_mult"]
    assert rows[0]["test_objective"] == f0["test_metrics"]["final_capital"]
    assert rows[0]["train_total_return"] == f0["train_metrics"]["total_return"]
    assert rows[0]["test_windows"].startswith("20") and "/" in rows[0]["test_windows"]
    assert rows[1]["tp_mult"] is None and rows[1]["test_objective"] is None
    assert rows[1]["spearman"] is None and rows[1]["n_test"] == result["folds"][1]["n_test"]


def test_stress_and_plateau_columns_come_from_the_answer(ds):
    result = worker.optimize(ds, GRID, objective="total_return", stress="basic",
                             plateau={"radius": 1, "stat": "min"}, rank_by="plateau",
                             include_all=True)
    cols = robust_columns(result, N_POINTS)
    assert list(cols) == ["plateau", "lane_baseline", "lane_worse", "worst_lane", "maximin"]
    for p in result.all_results:
        assert cols["lane_worse"][p.index].as_py() == p.lanes["worse"]
        assert cols["worst_lane"][p.index].as_py() == p.worst_lane
        assert cols["plateau"][p.index].as_py() == p.plateau
    ranks = result_ranks(result, np.arange(1, N_POINTS + 1))
    assert sorted(ranks.tolist()) == list(range(1, N_POINTS + 1))
    assert [int(ranks[p.index]) for p in result.top] == [p.rank for p in result.top]
    assert robust_columns(worker.optimize(ds, GRID, include_all=True), N_POINTS) == {}
