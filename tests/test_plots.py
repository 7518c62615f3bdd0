"""The equity curve's pixels show its trades: the line climbs when the trades
win and falls when they lose, and a drawdown is painted where there is one
(not only a PNG of the right size)."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from worker._report.plots import equity_curve

T0 = 1_700_000_000_000
HOUR = 3_600_000
EQUITY_BLUE = (31, 119, 180)     # "#1f77b4", the equity line


def trades(pnls):
    return [{"entry_ts_ms": T0 + i * HOUR, "exit_ts_ms": T0 + (i + 1) * HOUR, "pnl": pnl}
            for i, pnl in enumerate(pnls)]


def render(tmp_path, pnls, mode="capital"):
    path = equity_curve(trades(pnls), 10_000.0, tmp_path, mode)
    return (matplotlib.image.imread(path)[..., :3] * 255).round().astype(int)


def near(rgb, colour, tol=12):
    return np.abs(rgb - np.array(colour)).max(axis=-1) <= tol


def drawdown_pixels(rgb):
    """Pixels of the drawdown fills: "#d62728" at alpha 0.25 and 0.4 over white
    (pink, much more red than green or blue, green about equal to blue)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return int(((r - g > 40) & (np.abs(g - b) < 12)).sum())


def rise(rgb):
    """How far the equity line climbs, in pixel rows, from its left end to its
    right end (image rows grow downwards). The line is the blue of the widest
    span of columns; the legend's short sample of it barely moves the means."""
    rows, cols = np.nonzero(near(rgb, EQUITY_BLUE))
    left, right = np.percentile(cols, [10, 90])
    return rows[cols <= left].mean() - rows[cols >= right].mean()


@pytest.mark.parametrize("mode", ["capital", "per_trade"])
def test_the_line_climbs_with_winners_and_falls_with_losers(tmp_path, mode):
    up = rise(render(tmp_path, [100.0] * 40, mode))
    down = rise(render(tmp_path, [-100.0] * 40, mode))
    assert up > 100 and down < -100  # most of the plot's height, each way


def test_a_drawdown_is_painted_only_where_there_is_one(tmp_path):
    # Up 2,000, then down 3,000 (a 25 % drawdown from the peak), then up again.
    dipped = render(tmp_path, [200.0] * 10 + [-300.0] * 10 + [200.0] * 10)
    steady = render(tmp_path, [100.0] * 30)
    assert drawdown_pixels(dipped) > 50_000
    # A curve that never falls: only the legend's swatch and a hairline at 0 %.
    assert drawdown_pixels(steady) < 5_000


def test_different_trades_give_different_pictures(tmp_path):
    a = render(tmp_path, [100.0, -50.0, 80.0] * 10)
    b = render(tmp_path, [100.0, -50.0, 80.0] * 10)
    c = render(tmp_path, [-50.0, 100.0, 80.0] * 10)
    assert np.array_equal(a, b)                       # drawn the same way every time
    assert a.shape == c.shape and not np.array_equal(a, c)


# -------------------------------------------------------------------- heatmaps

def extended_table(objective_of, *, exits=None, skipped=None):
    """A hand-built results table over tp x sl x trail_pct (null: off) x
    trail_activation, the objective ``objective_of(params)``; every point
    feasible, ranked by the objective; exit and skip counts 0 unless given."""
    from protocol import ParamGrid, Params
    from worker._core.layouts import CAP_FINAL_CAPITAL, N_EXITS, N_METRICS, N_SKIPS
    from worker._report.report import results_table

    grid = ParamGrid(tp_mults=[1.5, 2.0], sl_mults=[0.85, 0.9], max_hold_hrs=[4.0],
                     trail_pct=[None, 0.1, 0.2], trail_activation=[1.0, 1.5])
    params = [Params(tp_mult=tp, sl_mult=sl, max_hold_hrs=4.0, trail_pct=tr, trail_activation=ta)
              for tp in grid.tp_mults for sl in grid.sl_mults for tr in grid.trail_pct
              for ta in grid.trail_activation]
    n = len(params)
    metrics = np.zeros((n, N_METRICS))
    metrics[:, CAP_FINAL_CAPITAL] = [objective_of(p) for p in params]
    rank = np.empty(n, np.int64)
    rank[np.argsort(-metrics[:, CAP_FINAL_CAPITAL], kind="stable")] = np.arange(1, n + 1)
    return results_table(mode="capital", params=params, metrics=metrics,
                         exits=np.zeros((n, N_EXITS)) if exits is None else exits(rank),
                         skipped=np.zeros((n, N_SKIPS)) if skipped is None else skipped(rank),
                         feasible=np.ones(n, bool), rank=rank, failed=np.zeros(n, bool),
                         grid=grid)


def trail_score(p):
    """Best at trail 0.1 armed at 1.5, tp 2, sl 0.9; off is worst."""
    trail = {None: 0.0, 0.1: 3_000.0, 0.2: 1_000.0}[p.trail_pct]
    return 10_000 + trail + 500 * (p.trail_activation == 1.5) + 100 * p.tp_mult + 10 * p.sl_mult


@pytest.fixture
def drawn(monkeypatch):
    """The figures the heatmap code saves, by file name (besides the PNGs)."""
    import worker._report.heatmap as H

    figures = {}
    real = H.save_png

    def keep(fig, path):
        figures[path.name] = fig
        return real(fig, path)

    monkeypatch.setattr(H, "save_png", keep)
    return figures


def test_a_chosen_pair_is_drawn_over_its_axes_with_the_best_of_the_rest(tmp_path, drawn):
    from worker._report.plots import heatmaps

    table = extended_table(trail_score)
    paths = heatmaps(table, "final_capital", tmp_path,
                     pairs=[["trail_pct", "trail_activation"], ["tp_mult", "trail_pct"]])
    assert [p.name for p in paths] == ["heatmap_trail_pct_x_trail_activation.png",
                                       "heatmap_tp_mult_x_trail_pct.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    ax = drawn["heatmap_trail_pct_x_trail_activation.png"].axes[0]
    assert ax.get_xlabel().startswith("trail_pct")
    assert ax.get_ylabel().startswith("trail_activation")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["off", "0.1", "0.2"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1", "1.5"]
    title = ax.get_title()
    assert "over trail_pct x trail_activation" in title and "best over tp_mult, sl_mult" in title
    # Each cell: the best over tp and sl (tp 2, sl 0.9) of that trail setting.
    expected = np.array([[trail_score(_P(tr, ta)) for tr in (None, 0.1, 0.2)]
                         for ta in (1.0, 1.5)])
    assert np.array_equal(np.asarray(ax.images[0].get_array()), expected)
    # The red box is on the best cell (trail 0.1, activation 1.5).
    red = (0.839, 0.153, 0.157)     # "#d62728"
    [box] = [p for p in ax.patches if p.get_edgecolor()[:3] == pytest.approx(red, abs=0.01)]
    assert box.get_x() == pytest.approx(1 - 0.46) and box.get_y() == pytest.approx(1 - 0.46)
    other = drawn["heatmap_tp_mult_x_trail_pct.png"].axes[0]
    assert [t.get_text() for t in other.get_yticklabels()] == ["off", "0.1", "0.2"]


def _P(trail, activation):
    from protocol import Params
    return Params(tp_mult=2.0, sl_mult=0.9, max_hold_hrs=4.0, trail_pct=trail,
                  trail_activation=activation)


def test_the_default_heatmap_per_hold_takes_the_best_over_new_dimensions(tmp_path, drawn):
    from worker._report.plots import heatmaps

    [path] = heatmaps(extended_table(trail_score), "final_capital", tmp_path)
    assert path.name == "heatmap_hold_4h.png"
    ax = drawn[path.name].axes[0]
    assert ax.get_xlabel().startswith("tp_mult") and ax.get_ylabel().startswith("sl_mult")
    assert "best over trail_pct, trail_activation" in ax.get_title()
    expected = [[10_000 + 3_500 + 100 * tp + 10 * sl for tp in (1.5, 2.0)] for sl in (0.85, 0.9)]
    assert np.allclose(np.asarray(ax.images[0].get_array()), expected)


def test_write_plots_draws_run_json_pairs_and_drops_stale_heatmaps(tmp_path):
    from worker._report.plots import write_plots

    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "heatmap_hold_4h.png").write_bytes(b"old")
    meta = {"objective": "final_capital", "heatmaps": [["trail_pct", "trail_activation"]]}
    paths = write_plots(tmp_path, table=extended_table(trail_score), meta=meta, result={},
                        best_trades=None)
    assert sorted(p.name for p in plots.iterdir()) == [
        "heatmap_trail_pct_x_trail_activation.png"] == [p.name for p in paths]
    del meta["heatmaps"]                       # no choice: the default, by hold
    write_plots(tmp_path, table=extended_table(trail_score), meta=meta, result={},
                best_trades=None)
    assert sorted(p.name for p in plots.iterdir()) == ["heatmap_hold_4h.png"]


# ------------------------------------------- SPEC 12: walk-forward plots

import pyarrow as pa  # noqa: E402

from worker._report.wf_plots import overfit_plot, stitched_equity_plot  # noqa: E402

DAY = 24 * HOUR
FOLD_COLOURS = [(31, 119, 180), (255, 127, 14)]     # tab10's first two: folds 0 and 1
FULL_ORANGE = (255, 127, 14)                         # the full-data best's curve


def fold_points(chosen=True):
    """Fold 0: its choice best in train, poor in test (lower right); fold 1's
    the reverse (upper left). 40 other points per fold in the middle."""
    rng = np.random.default_rng(1)
    rows = []
    for fold, pick in ((0, (14_000.0, 8_000.0)), (1, (8_000.0, 14_000.0))):
        for i in range(40):
            rows.append((fold, i, *rng.uniform(10_000, 12_000, 2), False))
        rows.append((fold, 40, *pick, chosen))
    names = ("fold", "index", "train_objective", "test_objective", "chosen")
    return pa.table({n: [r[k] for r in rows] for k, n in enumerate(names)})


def centre(rgb, colour, tol=6):
    rows, cols = np.nonzero(near(rgb, colour, tol))
    return rows.size, (rows.mean() if rows.size else None), (cols.mean() if cols.size else None)


def test_overfit_marks_each_folds_choice_where_it_lies(tmp_path):
    meta = {"objective": "final_capital"}
    result = {"aggregate": {"degradation": -0.2}, "pbo": {"pbo": 0.4}}
    path = overfit_plot(tmp_path, meta=meta, result=result, points=fold_points())
    rgb = (matplotlib.image.imread(path)[..., :3] * 255).round().astype(int)
    (n0, y0, x0), (n1, y1, x1) = (centre(rgb, c) for c in FOLD_COLOURS)
    # Only the choices are drawn opaque in their fold's colour (the others are translucent).
    assert n0 > 30 and n1 > 30
    assert x0 > x1 and y0 > y1          # fold 0's choice: right of and below fold 1's
    plain = overfit_plot(tmp_path, meta=meta, result=result, points=fold_points(chosen=False))
    rgb = (matplotlib.image.imread(plain)[..., :3] * 255).round().astype(int)
    assert all(centre(rgb, c)[0] < 5 for c in FOLD_COLOURS)
    assert overfit_plot(tmp_path, meta=meta, result=result, points=None) is None


def stitched_result(pnls):
    equity, capital = [], 10_000.0
    for i, pnl in enumerate(pnls):
        capital += pnl
        equity.append([T0 + 5 * DAY + (i + 1) * HOUR, capital])
    return {"stitched": {"metrics": {"total_return": capital / 10_000 - 1,
                                     "final_capital": capital, "max_drawdown": 0.0},
                         "equity": equity},
            "folds": [{"chosen_params": {"tp_mult": 2.0}, "test_windows": [[T0 + 5 * DAY,
                                                                            T0 + 7 * DAY]]}],
            "full": {"best_total_return": 0.1}}


def test_stitched_equity_follows_the_out_of_sample_account(tmp_path):
    meta = {"initial_capital": 10_000.0}
    up = stitched_equity_plot(tmp_path, meta=meta, result=stitched_result([50.0] * 40),
                              full_trades=None)
    rgb = (matplotlib.image.imread(up)[..., :3] * 255).round().astype(int)
    assert rise(rgb) > 100
    assert near(rgb, FULL_ORANGE, 6).sum() == 0           # no full-data curve given
    down = stitched_equity_plot(tmp_path, meta=meta, result=stitched_result([-50.0] * 40),
                                full_trades=trades([30.0] * 100))
    rgb = (matplotlib.image.imread(down)[..., :3] * 255).round().astype(int)
    assert rise(rgb) < -100
    assert near(rgb, FULL_ORANGE, 30).sum() > 120          # the curve, not only its legend
    assert stitched_equity_plot(tmp_path, meta=meta, result={"stitched": None},
                                full_trades=None) is None
