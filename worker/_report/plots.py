"""The run directory's plots: objective heatmaps (``worker._report.heatmap``:
tp x sl per hold, or the pairs of dimensions the config chooses) and the
equity curve of the best point.

Matplotlib's object-oriented API only (``worker._report.figures``): no
pyplot, no global backend switch, so plots can be drawn from any thread.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.dates as mdates
import msgspec
import numpy as np
import pyarrow as pa
from matplotlib.figure import Figure

from .figures import save_png, tick_format
from .heatmap import compact, heatmaps, hold_label, pair_file_name  # noqa: F401  (re-exported)
from .report import fmt_metric, fmt_params


def write_plots(run_dir: Path, *, table: pa.Table, meta: dict, result: dict,
                best_trades: list | None) -> list[Path]:
    """Heatmaps and the equity curve; plots of an earlier write that this one
    does not produce (other holds or pairs, no trades) are removed, so
    ``plots/`` always matches the table. ``meta["heatmaps"]`` (run.json): the
    config's chosen pairs, if any."""
    plots = Path(run_dir) / "plots"
    paths = heatmaps(table, meta["objective"], run_dir, minimize=bool(meta.get("minimize")),
                     pairs=meta.get("heatmaps"))
    grouped = meta.get("kind") == "grouped"
    title = (f"grouped run ({fmt_params(result.get('grouped_params'))})" if grouped
             else f"best point ({fmt_params(result.get('best_params'))})")
    curve = equity_curve(best_trades or [], float(meta.get("initial_capital") or 0.0), run_dir,
                         meta.get("mode") or "capital", title=title)
    paths += [] if curve is None else [curve]
    for old in [*plots.glob("heatmap_*.png"), plots / "equity_best.png"]:
        if old not in paths:
            old.unlink(missing_ok=True)
    return paths


# ---------------------------------------------------------------- equity curve

def equity_curve(trades: list, initial_capital: float, run_dir: Path, mode: str, *,
                 title: str = "best point") -> Path | None:
    """``plots/equity_best.png``; None when there are no trades.

    Capital mode: equity = initial capital + the pnl realized so far, stepping
    at each exit (SPEC 4's equity, which counts open positions at their size),
    over the drawdown from its running peak. Per-trade mode: the cumulative
    sum of trade returns.
    """
    trades = [t if isinstance(t, dict) else msgspec.to_builtins(t) for t in trades or []]
    if not trades:
        return None
    order = sorted(range(len(trades)), key=lambda i: (trades[i]["exit_ts_ms"], i))
    start_ms = min(int(t["entry_ts_ms"]) for t in trades)
    when = np.array([start_ms] + [trades[i]["exit_ts_ms"] for i in order], "datetime64[ms]")
    gain = np.concatenate([[0.0], np.cumsum([float(trades[i]["pnl"]) for i in order])])
    capital = mode != "per_trade"
    curve = initial_capital + gain if capital else gain * 100
    peak = np.maximum.accumulate(curve)
    fig = Figure(figsize=(10, 6.2 if capital else 4.8), layout="constrained")
    if capital:
        ax, ax_dd = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    else:
        ax, ax_dd = fig.add_subplot(), None
    ax.step(when, curve, where="post", color="#1f77b4", linewidth=1.4,
            label="equity" if capital else "cumulative return")
    ax.step(when, peak, where="post", color="#7f7f7f", linewidth=0.8, linestyle="--",
            label="running peak")
    ax.fill_between(when, curve, peak, step="post", color="#d62728", alpha=0.25,
                    label="drawdown")
    ax.set_ylabel("capital" if capital else "sum of trade returns (%)")
    ax.yaxis.set_major_formatter(tick_format(float(np.ptp(curve))))
    ax.legend(loc="best", fontsize=8)
    if capital and initial_capital:
        end = (f"final {fmt_metric('final_capital', curve[-1])} "
               f"({fmt_metric('total_return', gain[-1] / initial_capital)})")
    else:
        end = f"total return {curve[-1]:+.2f}%"
    ax.set_title(f"Equity of the {title}: {len(trades):,} trades, {end}", fontsize=10)
    if ax_dd is not None:
        dd = np.where(peak > 0, (peak - curve) / np.where(peak > 0, peak, 1) * 100, 0.0)
        ax_dd.fill_between(when, -dd, 0, step="post", color="#d62728", alpha=0.4)
        ax_dd.set_ylabel("drawdown (%)")
        ax_dd.set_title(f"drawdown from the running peak (max {dd.max():.2f}%)", fontsize=9)
    for a in fig.axes:
        a.grid(alpha=0.3)
        _dates(a)
    fig.axes[-1].set_xlabel("exit time (UTC)")
    return save_png(fig, Path(run_dir) / "plots" / "equity_best.png")


def _dates(ax) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
