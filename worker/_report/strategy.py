"""The run directory of a ``run: strategy`` batch run (SPEC 13).

A strategy run's points have flat parameters (``timeframe``, the
strategy's parameters, the exit parameters), so the SPEC 8 table of
``worker._report.report`` (tp_mult, sl_mult, ...) does not fit; this module
writes its own, from the answer alone:

- ``result.json``: the answer, as a daemon would send it;
- ``run.json``: what ran (kind ``strategy``, strategy, timeframes, symbols,
  signal sets, chunks, incomplete or not);
- ``results.parquet`` / ``results.csv``: one row per grid point in grid
  order (index, rank, feasible, every parameter, every scalar metric);
- ``per_symbol.csv``: each symbol's own best (``per_symbol: true``) and its
  share of the best point's trades;
- ``best_trades.json`` / ``trades.csv``: the best point's trades (symbol,
  direction, entry, exit, pnl, ...) and ``plots/equity_best.png``;
- ``plots/heatmap_<tf>_<x>_x_<y>.png``: per timeframe, the best objective
  over every other dimension for each pair of parameters (the config's
  ``report.heatmaps``, else the first two strategy parameters that vary);
- ``summary.md``.

Not here yet: ``optimizer-worker analyze`` of a strategy run directory
(it reads SPEC 8 tables), plateau / stress columns in the table, and folds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from matplotlib import colormaps
from matplotlib.figure import Figure

from .figures import save_png
from .plots import equity_curve
from .report import write_atomic
from .rundir import _write_json, now
from .text import fmt_metric, md_table

_ANNOTATE_MAX = 12
_TRADE_COLUMNS = ("call_id", "symbol", "caller", "direction", "entry_ts_ms", "exit_ts_ms",
                  "entry_px", "exit_px", "size", "pnl", "exit_reason", "exit_mult", "r")
_SUMMARY_METRICS = ("final_capital", "total_return", "trades_executed", "trades", "win_rate",
                    "profit_factor", "max_drawdown", "total_r", "avg_r", "sharpe")


def finish_strategy_run(run_dir: Path, *, cfg: Any, bars: Any, plan: Any, result: Any,
                        stats: Any, started: str, all_results: Any = None) -> list[Path]:
    """Write the run directory's results and report; the paths written.
    ``all_results``: every point, when the answer (``result.json``) does
    not list them."""
    run_dir = Path(run_dir)
    res = msgspec.to_builtins(result)
    points = res.get("all_results") or msgspec.to_builtins(all_results or [])
    objective = res.get("objective") or cfg.objective or "final_capital"
    trades, trades_note = best_trades(cfg, bars, res.get("best_params"))
    meta = {"kind": "strategy", "strategy": cfg.strategy, "timeframes": list(cfg.timeframes),
            "symbols": list(cfg.symbols) if cfg.symbols else list(bars.symbols),
            "mode": cfg.mode, "objective": objective, "minimize": bool(res.get("minimize")),
            "initial_capital": cfg.simulator_config.initial_capital,
            "params_evaluated": int(res.get("params_evaluated") or len(points)),
            "signal_sets": res.get("signal_sets") or {"evaluated": len(plan.sets),
                                                      "rejected": int(plan.rejected)},
            "fingerprint": stats.fingerprint, "started": started, "finished": now(),
            "incomplete": bool(stats.failed), "chunks_failed": len(stats.failed),
            "chunks_total": stats.chunks_total, "failed_chunks": stats.failed,
            "trades_note": trades_note}
    _write_json(run_dir / "result.json", result)
    _write_json(run_dir / "run.json", meta)
    paths = [run_dir / "result.json", run_dir / "run.json"]
    table = results_table(points)
    if table is not None:
        buf = pa.BufferOutputStream()
        pq.write_table(table, buf)
        paths.append(write_atomic(run_dir / "results.parquet", buf.getvalue().to_pybytes()))
        buf = pa.BufferOutputStream()
        pacsv.write_csv(table, buf)
        paths.append(write_atomic(run_dir / "results.csv", buf.getvalue().to_pybytes()))
    symbols = per_symbol_rows(res, trades)
    if symbols:
        paths.append(_write_csv(run_dir / "per_symbol.csv", symbols))
    if trades:
        _write_json(run_dir / "best_trades.json", trades)
        paths += [run_dir / "best_trades.json",
                  _write_csv(run_dir / "trades.csv",
                             [{k: t.get(k) for k in _TRADE_COLUMNS if k in t} for t in trades])]
        curve = equity_curve(trades, float(cfg.simulator_config.initial_capital), run_dir,
                             cfg.mode, title="best point")
        paths += [] if curve is None else [curve]
    paths += strategy_heatmaps(run_dir, points, objective, meta["minimize"], cfg)
    summary = summary_markdown(meta, res, symbols, trades)
    paths.append(write_atomic(run_dir / "summary.md", summary.encode()))
    return paths


# ------------------------------------------------------------------ tables

def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def results_table(points: list[dict]) -> pa.Table | None:
    """One row per grid point (``all_results``), grid order."""
    if not points:
        return None
    params = list(dict.fromkeys(k for p in points for k in (p.get("params") or {})))
    metrics = list(dict.fromkeys(k for p in points for k, v in (p.get("metrics") or {}).items()
                                 if _scalar(v) and k != "mode"))
    rows = []
    for p in points:
        row = {"index": p.get("index"), "rank": p.get("rank"), "feasible": p.get("feasible")}
        row.update({k: (p.get("params") or {}).get(k) for k in params})
        row.update({k: (p.get("metrics") or {}).get(k) for k in metrics})
        rows.append(row)
    return pa.Table.from_pylist(rows)


def _write_csv(path: Path, rows: list[dict]) -> Path:
    buf = pa.BufferOutputStream()
    pacsv.write_csv(pa.Table.from_pylist(rows), buf)
    return write_atomic(path, buf.getvalue().to_pybytes())


def per_symbol_rows(res: dict, trades: list[dict] | None) -> list[dict]:
    """Per symbol: its own best (``per_symbol_results``, when asked) and its
    trades in the best portfolio point."""
    own = res.get("per_symbol_results") or {}
    names = list(dict.fromkeys([*own, *(t.get("symbol") or t.get("caller") for t in trades or [])]))
    rows = []
    for name in sorted((n for n in names if n is not None), key=str.encode):
        r = own.get(name) or {}
        mine = [t for t in trades or [] if (t.get("symbol") or t.get("caller")) == name]
        pnl = [float(t.get("pnl") or 0.0) for t in mine]
        rows.append({
            "symbol": name, "signals": r.get("calls"),
            "own_best_params": fmt_flat(r.get("best_params")) if r else None,
            "own_best_final_capital": r.get("best_final_capital"),
            "own_best_total_return": r.get("best_total_return"),
            "best_point_trades": len(mine),
            "best_point_longs": sum(1 for t in mine if t.get("direction") == "long"),
            "best_point_shorts": sum(1 for t in mine if t.get("direction") == "short"),
            "best_point_pnl": float(sum(pnl)) if mine else 0.0,
            "best_point_win_rate": (sum(1 for x in pnl if x > 0) / len(pnl)) if pnl else None,
        })
    return rows


def best_trades(cfg: Any, bars: Any, best: dict | None) -> tuple[list[dict] | None, str]:
    """The best point's trades, simulated again (``simulate_strategy``);
    (None, why) when there is no best point or the engine cannot."""
    if not best:
        return None, "no feasible point"
    from .._core.strategy_search import simulate_strategy

    params = {k: v for k, v in best.items() if k != "timeframe"}
    out = simulate_strategy(bars, strategy=cfg.strategy, timeframe=best["timeframe"],
                            params=params, config=cfg.simulator_config, mode=cfg.mode,
                            symbols=cfg.symbols, include_trades=True)
    trades = msgspec.to_builtins(out).get("completed_trades") or []
    return [dict(t) for t in trades], f"{len(trades):,} trades"


# ------------------------------------------------------------------ heatmaps

def _axes(cfg: Any, points: list[dict]) -> list[tuple[str, str]]:
    if cfg.report.heatmaps is not None:
        return [tuple(p) for p in cfg.report.heatmaps if "timeframe" not in p]
    varied = [k for k, v in (cfg.strategy_grid or {}).items() if len(v) > 1]
    varied += [k for k, v in cfg.exit_grid().items() if len(v) > 1]
    return [tuple(varied[:2])] if len(varied) >= 2 else []


def _key(v: Any) -> str:
    return "off" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def strategy_heatmaps(run_dir: Path, points: list[dict], objective: str, minimize: bool,
                      cfg: Any) -> list[Path]:
    """Per timeframe and pair (x, y): the best feasible objective of the
    points at each (x, y), over every other dimension; hatched: none."""
    plots = run_dir / "plots"
    for old in plots.glob("heatmap_*.png"):
        old.unlink(missing_ok=True)
    written = []
    for x, y in _axes(cfg, points):
        for tf in cfg.timeframes:
            mine = [p for p in points if (p.get("params") or {}).get("timeframe") == tf]
            if not mine:
                continue
            xs = list(dict.fromkeys(_key(p["params"].get(x)) for p in mine))
            ys = list(dict.fromkeys(_key(p["params"].get(y)) for p in mine))
            cells = np.full((len(ys), len(xs)), np.nan)
            for p in mine:
                value = (p.get("metrics") or {}).get(objective)
                if not p.get("feasible") or value is None or not math.isfinite(value):
                    continue
                i, j = ys.index(_key(p["params"].get(y))), xs.index(_key(p["params"].get(x)))
                old = cells[i, j]
                if math.isnan(old) or (value < old if minimize else value > old):
                    cells[i, j] = value
            written.append(_draw(cells, xs, ys, x, y, tf, objective, minimize,
                                 plots / f"heatmap_{tf}_{x}_x_{y}.png"))
    return written


def _draw(cells, xs, ys, x, y, tf, objective, minimize, path) -> Path:
    fig = Figure(figsize=(1.2 + 0.7 * max(len(xs), 4), 1.4 + 0.5 * max(len(ys), 4)),
                 layout="constrained")
    ax = fig.add_subplot()
    cmap = colormaps["RdYlGn_r" if minimize else "RdYlGn"].copy()
    cmap.set_bad("#e6e6e6")
    image = ax.imshow(np.ma.masked_invalid(cells), origin="lower", aspect="auto", cmap=cmap)
    ax.set_xticks(range(len(xs)), xs)
    ax.set_yticks(range(len(ys)), ys)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{tf}: best {objective} over the other parameters", fontsize=10)
    fig.colorbar(image, ax=ax, label=objective)
    if len(xs) <= _ANNOTATE_MAX and len(ys) <= _ANNOTATE_MAX:
        for (i, j), v in np.ndenumerate(cells):
            ax.text(j, i, "-" if math.isnan(v) else fmt_metric(objective, float(v)),
                    ha="center", va="center", fontsize=7)
    return save_png(fig, path)


# ------------------------------------------------------------------ summary.md

def fmt_flat(p: dict | None) -> str:
    if not p:
        return "none"
    return ", ".join(f"{k} {_key(v)}" for k, v in p.items())


def summary_markdown(meta: dict, res: dict, symbols: list[dict], trades: list | None) -> str:
    qualified = (f" of the evaluated points (incomplete run: {meta['chunks_failed']} chunks "
                 "failed)" if meta["incomplete"] else "")
    lines = []
    if meta["incomplete"]:
        lines += [f"> **Incomplete run**: {meta['chunks_failed']} of {meta['chunks_total']} "
                  "chunks failed; run the same command again to compute them.", ""]
    sets = meta["signal_sets"]
    lines += [f"# Strategy run: {meta['strategy']}", "",
              f"- timeframes: {', '.join(meta['timeframes'])}; symbols: "
              f"{', '.join(meta['symbols'])}",
              f"- signal sets: {sets.get('evaluated', 0):,} evaluated, "
              f"{sets.get('rejected', 0):,} rejected; grid points: {meta['params_evaluated']:,}",
              f"- mode {meta['mode']}, objective {meta['objective']}"
              f"{' (minimized)' if meta['minimize'] else ''}; started {meta['started']}, "
              f"finished {meta['finished']}", ""]
    best, metrics = res.get("best_params"), res.get("best_metrics") or {}
    lines += [f"## Best point{qualified}", "", fmt_flat(best), ""]
    if metrics:
        shown = [k for k in _SUMMARY_METRICS if k in metrics]
        lines += md_table(shown, [[fmt_metric(k, metrics[k]) for k in shown]], "r" * len(shown))
    top = res.get("top") or []
    if top:
        names = list(dict.fromkeys(k for p in top for k in p["params"]))
        shown = [k for k in _SUMMARY_METRICS if k in (top[0].get("metrics") or {})][:4]
        lines += [f"## Top {len(top)}{qualified}", ""]
        lines += md_table(["rank", *names, *shown],
                          [[str(p["rank"]), *(_key(p["params"].get(k)) for k in names),
                            *(fmt_metric(k, p["metrics"].get(k)) for k in shown)] for p in top],
                          "r" * (1 + len(names) + len(shown)))
    signals = res.get("signals")
    if signals:
        per_tf: dict[str, list[int]] = {}
        for x in signals:
            n = per_tf.setdefault(x.get("timeframe"), [0, 0, 0])
            n[0], n[1], n[2] = n[0] + 1, n[1] + int(x.get("long") or 0), n[2] + int(x.get("short") or 0)
        lines += ["## Signals", "", "Per timeframe, summed over its signal sets (each set's "
                  "counts: result.json `signals`).", ""]
        lines += md_table(["timeframe", "signal sets", "long", "short"],
                          [[tf, f"{a:,}", f"{b:,}", f"{c:,}"] for tf, (a, b, c) in per_tf.items()],
                          "lrrr")
    if symbols:
        lines += ["## Per symbol", ""]
        head = ["symbol", "own best", "own best return", "trades (best point)", "long / short",
                "pnl (best point)"]
        lines += md_table(head, [[r["symbol"], r["own_best_params"] or "-",
                                  fmt_metric("total_return", r["own_best_total_return"]),
                                  f"{r['best_point_trades']:,}",
                                  f"{r['best_point_longs']:,} / {r['best_point_shorts']:,}",
                                  f"{r['best_point_pnl']:,.2f}"] for r in symbols], "lllrrr")
    lines += ["## Files", "",
              "results.csv / results.parquet (every point), per_symbol.csv, trades.csv and "
              "best_trades.json (the best point's trades: "
              f"{meta['trades_note']}), plots/equity_best.png, "
              "plots/heatmap_<timeframe>_<x>_x_<y>.png.", ""]
    return "\n".join(lines)
