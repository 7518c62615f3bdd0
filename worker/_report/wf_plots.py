"""A walk-forward run's plots (SPEC 12): the stitched out-of-sample equity
curve, against the full-data best's for contrast, and the train-vs-test
scatter of every grid point in every fold (``overfit.png``).

Matplotlib's object-oriented API only (``worker._report.figures``).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.dates as mdates
import numpy as np
import pyarrow as pa
from matplotlib import colormaps
from matplotlib.colors import BoundaryNorm
from matplotlib.figure import Figure

from .figures import save_png, tick_format
from .text import fmt_metric

STITCHED_COLOUR = "#1f77b4"      # the out-of-sample account
FULL_COLOUR = "#ff7f0e"          # the full-data best (chosen with hindsight)
CHOSEN_COLOUR = "#000000"        # each fold's choice, on the scatter
MAX_SCATTER = 200_000            # points drawn at most (a fixed thinning beyond; choices kept)
MAX_LEGEND_FOLDS = 12            # folds named in a legend; more get a colour bar


def stitched_equity_plot(run_dir: Path, *, meta: dict, result: dict,
                         full_trades: list | None) -> Path | None:
    """``plots/stitched_equity.png``: the stitched account's equity after
    every close, from the initial capital at the first test window's start;
    the full-data best's (``best_trades.json``) over the same axis; the
    out-of-sample span shaded. None without a stitched run."""
    stitched = result.get("stitched")
    if not stitched:
        return None
    capital = float(meta.get("initial_capital") or 0.0)
    folds = [f for f in result.get("folds") or [] if f.get("chosen_params") is not None]
    start = min((f["test_windows"][0][0] for f in folds), default=None)
    end = max((f["test_windows"][-1][1] for f in folds), default=None)
    points = [(int(t), float(x)) for t, x in stitched.get("equity") or []]
    if start is not None:
        points = [(start, capital), *points]
    fig = Figure(figsize=(10, 5.6), layout="constrained")
    ax = fig.add_subplot()
    sm = stitched.get("metrics") or {}
    if points:
        when = np.array([t for t, _ in points], "datetime64[ms]")
        ret = fmt_metric("total_return", sm.get("total_return"))
        ax.step(when, [x for _, x in points], where="post", color=STITCHED_COLOUR,
                linewidth=1.6, label=f"stitched out-of-sample ({ret})", zorder=3)
    full = result.get("full") or {}
    trades = sorted(full_trades or [], key=lambda t: (t["exit_ts_ms"], t["entry_ts_ms"]))
    if trades:
        when = np.array([min(int(t["entry_ts_ms"]) for t in trades)]
                        + [int(t["exit_ts_ms"]) for t in trades], "datetime64[ms]")
        curve = capital + np.concatenate([[0.0], np.cumsum([float(t["pnl"]) for t in trades])])
        ax.step(when, curve, where="post", color=FULL_COLOUR, linewidth=1.1, zorder=2,
                label=f"full-data best, chosen with hindsight "
                      f"({fmt_metric('total_return', full.get('best_total_return'))})")
    if start is not None:
        ax.axvspan(np.datetime64(int(start), "ms"), np.datetime64(int(end), "ms"),
                   color="#2ca02c", alpha=0.07, label="out-of-sample span (test windows)")
    ax.axhline(capital, color="#7f7f7f", linewidth=0.8, linestyle="--")
    lines = [y for line in ax.get_lines() for y in np.asarray(line.get_ydata(), float)]
    ax.yaxis.set_major_formatter(tick_format(float(np.ptp(lines)) if lines else 0.0))
    ax.set_ylabel("capital")
    ax.set_xlabel("exit time (UTC)")
    n = len(stitched.get("equity") or [])
    final = fmt_metric("final_capital", sm.get("final_capital"))
    ax.set_title(f"Stitched out-of-sample equity: each fold's choice on its test calls, one "
                 f"account ({n:,} trades, final {final}, "
                 f"max drawdown {fmt_metric('max_drawdown', sm.get('max_drawdown'))})", fontsize=10)
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    return save_png(fig, Path(run_dir) / "plots" / "stitched_equity.png")


def overfit_plot(run_dir: Path, *, meta: dict, result: dict,
                 points: pa.Table | None) -> Path | None:
    """``plots/overfit.png``: x the train objective, y the test objective of
    every grid point in every fold that chose one, a colour per fold; each
    fold's choice a large black-edged marker; the line y = x. Points far off
    the line to the lower right are what an overfit grid looks like. None
    without fold points (no fold chose anything, or no fold_points.parquet)."""
    if points is None or points.num_rows == 0:
        return None
    fold = points.column("fold").to_numpy()
    x = points.column("train_objective").to_numpy(zero_copy_only=False).astype(np.float64)
    y = points.column("test_objective").to_numpy(zero_copy_only=False).astype(np.float64)
    chosen = points.column("chosen").to_numpy(zero_copy_only=False).astype(bool)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return None
    drawn = ok & ~chosen
    idx = np.flatnonzero(drawn)
    if idx.size > MAX_SCATTER:         # a deterministic thinning: every k-th point
        keep = np.zeros(drawn.size, bool)
        keep[idx[:: -(-idx.size // MAX_SCATTER)]] = True
        drawn = keep
    folds = np.unique(fold)
    cmap = colormaps["tab10" if folds.size <= 10 else "tab20" if folds.size <= 20 else "viridis"]
    objective = meta.get("objective") or result.get("objective") or "objective"
    fig = Figure(figsize=(8.6, 7.2), layout="constrained")
    ax = fig.add_subplot()
    if folds.size <= MAX_LEGEND_FOLDS:
        colours = {int(k): cmap(i % cmap.N if cmap.N < 256 else i / max(1, folds.size - 1))
                   for i, k in enumerate(folds.tolist())}
        for k, c in colours.items():
            sel = drawn & (fold == k)
            ax.scatter(x[sel], y[sel], s=9, color=c, alpha=0.45, linewidths=0,
                       label=f"fold {k}")
            pick = chosen & ok & (fold == k)
            ax.scatter(x[pick], y[pick], s=220, color=c, edgecolors=CHOSEN_COLOUR,
                       linewidths=1.4, marker="*", zorder=3)
    else:
        norm = BoundaryNorm(np.arange(folds.min(), folds.max() + 2) - 0.5, cmap.N)
        art = ax.scatter(x[drawn], y[drawn], s=6, c=fold[drawn], cmap=cmap, norm=norm,
                         alpha=0.45, linewidths=0)
        ax.scatter(x[chosen & ok], y[chosen & ok], s=160, c=fold[chosen & ok], cmap=cmap,
                   norm=norm, edgecolors=CHOSEN_COLOUR, linewidths=1.2, marker="*", zorder=3)
        fig.colorbar(art, ax=ax, label="fold")
    ax.scatter([], [], s=160, color="white", edgecolors=CHOSEN_COLOUR, marker="*",
               label="the fold's choice")
    lo = float(min(x[ok].min(), y[ok].min()))
    hi = float(max(x[ok].max(), y[ok].max()))
    ax.plot([lo, hi], [lo, hi], color="#7f7f7f", linewidth=0.9, linestyle="--",
            label="test = train")
    span = hi - lo
    ax.xaxis.set_major_formatter(tick_format(span))
    ax.yaxis.set_major_formatter(tick_format(span))
    ax.set_xlabel(f"train {objective}")
    ax.set_ylabel(f"test {objective}")
    agg = result.get("aggregate") or {}
    pbo = (result.get("pbo") or {}).get("pbo")
    ax.set_title(f"Train vs test `{objective}`, every grid point in {folds.size:,} folds\n"
                 f"degradation {_ratio(agg.get('degradation'))}"
                 + (f", PBO {pbo:.2f}" if pbo is not None else ""), fontsize=10)
    ax.legend(loc="best", fontsize=8, markerscale=1.0)
    ax.grid(alpha=0.3)
    return save_png(fig, Path(run_dir) / "plots" / "overfit.png")


def _ratio(value) -> str:
    return "n/a" if value is None else f"{value:+.1%}"

