"""The run directory's plots: objective heatmaps over tp x sl (one per hold)
and the equity curve of the best point.

Matplotlib's object-oriented API only (``Figure`` + ``FigureCanvasAgg``, no
pyplot): no global backend switch, no figure registry, so plots can be drawn
from any thread of the daemon without touching anyone else's state.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib.dates as mdates
import msgspec
import numpy as np
import pyarrow as pa
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter

from .report import (
    MONEY,
    PERCENT,
    SIGNED,
    fmt_metric,
    fmt_param,
    fmt_params,
    point_means,
    table_columns,
    write_atomic,
)

ANNOTATE_MAX = 12     # annotate cell values when the grid is at most this wide and tall
MAX_TICKS = 20        # label at most this many tp / sl values on an axis
DPI = 110
_HATCH = dict(facecolor="#e6e6e6", edgecolor="#a0a0a0", hatch="///", linewidth=0)


def hold_label(hours: float) -> str:
    """48.0 -> "48", 0.5 -> "0.5": shortest exact decimal, never exponent form."""
    return np.format_float_positional(float(hours), trim="-")


def write_plots(run_dir: Path, *, table: pa.Table, meta: dict, result: dict,
                best_trades: list | None) -> list[Path]:
    """Heatmaps and the equity curve; plots of an earlier write that this one
    does not produce (other holds, no trades) are removed, so ``plots/``
    always matches the table."""
    plots = Path(run_dir) / "plots"
    paths = heatmaps(table, meta["objective"], run_dir, minimize=bool(meta.get("minimize")))
    grouped = meta.get("kind") == "grouped"
    title = (f"grouped run ({fmt_params(result.get('grouped_params'))})" if grouped
             else f"best point ({fmt_params(result.get('best_params'))})")
    curve = equity_curve(best_trades or [], float(meta.get("initial_capital") or 0.0), run_dir,
                         meta.get("mode") or "capital", title=title)
    paths += [] if curve is None else [curve]
    for old in [*plots.glob("heatmap_hold_*.png"), plots / "equity_best.png"]:
        if old not in paths:
            old.unlink(missing_ok=True)
    return paths


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)  # attaches itself to the figure: render with Agg, no backend lookup
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return write_atomic(path, buf.getvalue())


# -------------------------------------------------------------------- heatmaps

def heatmaps(table: pa.Table, objective: str, run_dir: Path, *,
             minimize: bool = False) -> list[Path]:
    """``plots/heatmap_hold_<h>h.png``: ``objective`` over tp (x) x sl (y) per hold.

    A per-caller table (a ``caller`` column) shows, per cell, the mean
    objective over the callers for which the point is feasible.
    """
    cols = table_columns(table)
    holds = cols["max_hold_hrs"].astype(np.float64)
    best = _best_cell(cols, objective, minimize)
    paths = []
    for hold in np.unique(holds[np.isfinite(holds)]).tolist():
        # Colours span this hold's values only: a shared scale washes out
        # the structure of every hold but the best one (values are labelled).
        cells = _cells(cols, objective, holds == hold, "caller" in cols)
        fig = _heatmap_figure(cells, objective, hold, minimize, "caller" in cols,
                              best if best is not None and best[2] == hold else None)
        paths.append(_save(fig, Path(run_dir) / "plots" / f"heatmap_hold_{hold_label(hold)}h.png"))
    return paths


def _cells(cols: dict, objective: str, rows: np.ndarray, per_caller: bool) -> dict:
    """Cell values (the mean over feasible rows: one row unless per caller) and
    states, for the rows of one hold."""
    tp, sl = cols["tp_mult"][rows], cols["sl_mult"][rows]
    obj = cols[objective][rows].astype(np.float64)
    failed = cols["failed"][rows].astype(bool)
    feasible = cols["feasible"][rows].astype(bool) & ~failed
    xs, ys = np.unique(tp), np.unique(sl)
    ix, iy = np.searchsorted(xs, tp), np.searchsorted(ys, sl)
    shape = (ys.size, xs.size)
    ok = feasible & np.isfinite(obj)
    n_ok = np.zeros(shape)
    np.add.at(n_ok, (iy[ok], ix[ok]), 1)
    total = np.zeros(shape)
    np.add.at(total, (iy[ok], ix[ok]), obj[ok])
    n_rows, n_failed = np.zeros(shape), np.zeros(shape)
    np.add.at(n_rows, (iy, ix), 1)
    np.add.at(n_failed, (iy, ix), failed)
    value = np.divide(total, n_ok, out=np.full(shape, np.nan), where=n_ok > 0)
    # One group: an infeasible point still has its own figure, shown greyed.
    # Per caller there is no single figure for it, so none is shown.
    raw = np.full(shape, np.nan)
    if not per_caller:
        one = ~feasible & ~failed
        raw[iy[one], ix[one]] = obj[one]
    return dict(xs=xs, ys=ys, value=value, raw=raw, failed=(n_failed == n_rows) & (n_rows > 0))


def _best_cell(cols: dict, objective: str, minimize: bool) -> tuple[float, float, float] | None:
    """(tp, sl, hold) of the best point: rank 1 and feasible (one group), or the
    best mean over callers (per-caller tables)."""
    if "caller" not in cols:
        feasible = cols["feasible"].astype(bool) & ~cols["failed"].astype(bool)
        hit = np.flatnonzero(feasible & (cols["rank"] == 1))
    else:
        mean, counts = point_means(cols, objective)
        if not counts.any():
            return None
        best = int(np.nanargmin(mean) if minimize else np.nanargmax(mean))
        hit = np.flatnonzero(cols["index"] == best)
    if hit.size == 0:
        return None
    r = int(hit[0])
    return float(cols["tp_mult"][r]), float(cols["sl_mult"][r]), float(cols["max_hold_hrs"][r])


def compact(name: str, value: float) -> str:
    """A cell annotation: short enough for a 0.6-inch cell."""
    if not math.isfinite(value):
        return "n/a"
    if name in PERCENT:
        return f"{value * 100:+.1f}%" if name in SIGNED else f"{value * 100:.1f}%"
    if name in MONEY and abs(value) >= 1e6:
        return f"{value / 1e6:,.2f}M"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _heatmap_figure(cells: dict, objective: str, hold: float, minimize: bool,
                    per_caller: bool, best: tuple | None) -> Figure:
    xs, ys, value = cells["xs"], cells["ys"], cells["value"]
    nx, ny = xs.size, ys.size
    # Wide enough for the title at any grid size; cells ~0.75 x 0.5 inch.
    fig = Figure(figsize=(min(16.0, max(6.4, 3.2 + 0.75 * nx)), min(12.0, 2.9 + 0.5 * ny)),
                 layout="constrained")
    ax = fig.add_subplot()
    # Brighter is better either way: the colour scale flips when minimizing.
    cmap = colormaps["viridis_r" if minimize else "viridis"].with_extremes(bad=(0, 0, 0, 0))
    finite = value[np.isfinite(value)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    image = ax.imshow(np.ma.masked_invalid(value), cmap=cmap, vmin=lo, vmax=hi,
                      origin="lower", aspect="auto", interpolation="nearest",
                      extent=(-0.5, nx - 0.5, -0.5, ny - 0.5), zorder=1)
    # One hatched patch behind the whole grid shows through the masked cells.
    ax.add_patch(Rectangle((-0.5, -0.5), nx, ny, zorder=0, **_HATCH))
    if nx <= ANNOTATE_MAX and ny <= ANNOTATE_MAX:
        _annotate(ax, cells, objective, image)
    if best is not None:
        bx, by = int(np.searchsorted(xs, best[0])), int(np.searchsorted(ys, best[1]))
        ax.add_patch(Rectangle((bx - 0.46, by - 0.46), 0.92, 0.92, fill=False,
                               edgecolor="#d62728", linewidth=2.5, zorder=3))
    _ticks(ax.set_xticks, ax.set_xticklabels, xs, rotate=nx > 10)
    _ticks(ax.set_yticks, ax.set_yticklabels, ys, rotate=False)
    ax.set_xlabel("tp_mult (take-profit multiple)")
    ax.set_ylabel("sl_mult (stop-loss multiple)")
    what = ("mean over the callers where feasible" if per_caller
            else "one run per grid point") + "; colour range: this hold"
    ax.set_title(f"{objective}, max_hold_hrs = {hold_label(hold)}\n{what}\n"
                 "hatched: infeasible or failed; red box: best point", fontsize=9.5)
    bar = fig.colorbar(image, ax=ax, shrink=0.9)
    percent = objective in PERCENT
    bar.formatter = tick_format(hi - lo, scale=100 if percent else 1, suffix="%" if percent else "")
    bar.set_label(f"{objective} ({'lower' if minimize else 'higher'} is better)")
    return fig


def tick_format(span: float, *, scale: float = 1.0, suffix: str = "") -> FuncFormatter:
    """Thousands separators, and as many decimals as the range needs for
    neighbouring ticks to differ (a tiny range would otherwise repeat a label)."""
    span *= scale
    digits = min(6, max(0, 1 - math.floor(math.log10(span)))) if span > 0 else 0
    return FuncFormatter(lambda v, _: f"{v * scale:,.{digits}f}{suffix}")


def _ticks(set_ticks, set_labels, values: np.ndarray, rotate: bool) -> None:
    step = max(1, math.ceil(values.size / MAX_TICKS))
    at = np.arange(0, values.size, step)
    set_ticks(at)
    set_labels([fmt_param(float(values[i])) for i in at], rotation=45 if rotate else 0)


def _annotate(ax, cells: dict, objective: str, image) -> None:
    value, raw = cells["value"], cells["raw"]
    for y in range(value.shape[0]):
        for x in range(value.shape[1]):
            v = value[y, x]
            if np.isfinite(v):
                r, g, b, _ = image.cmap(image.norm(v))
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.55
                ax.text(x, y, compact(objective, v), ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
            elif cells["failed"][y, x]:
                ax.text(x, y, "failed", ha="center", va="center", fontsize=7, color="#b00000")
            elif np.isfinite(raw[y, x]):
                ax.text(x, y, compact(objective, raw[y, x]), ha="center", va="center",
                        fontsize=7, color="#555555", style="italic")


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
    return _save(fig, Path(run_dir) / "plots" / "equity_best.png")


def _dates(ax) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
