"""The run directory's report (docs/run-directory.md): ``results.parquet`` /
``results.csv`` (one row per caller group and grid point) and ``summary.md``.

Everything in ``summary.md`` is computed from the results table, ``run.json``
(``meta``) and ``result.json`` (``result``) alone, so ``optimizer-worker
analyze`` can rewrite it byte for byte from the files of a finished run.
Nothing here prints: the daemon's stdout is its protocol channel.
"""

from __future__ import annotations

import io
import math
import os
import threading
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from protocol import Params

from ._kernels import CAPITAL_METRICS, EXIT_REASONS, PER_TRADE_METRICS, SKIP_REASONS

METRICS = {"capital": CAPITAL_METRICS, "per_trade": PER_TRADE_METRICS}
PARAMS = ("tp_mult", "sl_mult", "max_hold_hrs")
COUNTS = frozenset({"trades_executed", "wins", "losses", "trades_skipped", "trades"})
PERCENT = frozenset({"total_return", "win_rate", "max_drawdown", "avg_return", "median_return"})
SIGNED = frozenset({"total_return", "avg_return", "median_return"})
MONEY = frozenset({"final_capital", "fees_paid"})
# The figures a reader looks at first, per mode: Top 10 columns; with the
# hold time, the correlation columns.
KEY_METRICS = {
    "capital": ("final_capital", "total_return", "trades_executed", "win_rate",
                "max_drawdown", "profit_factor"),
    "per_trade": ("avg_return", "median_return", "total_return", "trades", "win_rate",
                  "profit_factor", "avg_r"),
}
CORR_METRICS = {mode: (*names, "avg_hold_min") for mode, names in KEY_METRICS.items()}
TOP_N = 10
FLAGS = ("collapsed_capital", "requires_extreme_params")


def skip_reasons(mode: str) -> tuple[str, ...]:
    """Per-trade mode has no account, so ``no_entry`` is its only skip (SPEC 3)."""
    return ("no_entry",) if mode == "per_trade" else SKIP_REASONS


# --------------------------------------------------------------- results table

def results_table(*, mode: str, params: list[Params], metrics: np.ndarray, exits: np.ndarray,
                  skipped: np.ndarray, feasible: np.ndarray, rank: np.ndarray,
                  failed: np.ndarray, callers: list[str] | None = None) -> pa.Table:
    """One row per (caller group ``g``, grid point ``p``), row ``g * P + p``.

    A failed row (its chunk failed) has null metrics and counts, and is never
    feasible, whatever ``feasible`` says: its figures are unknown.
    """
    n_points = len(params)
    n_rows = n_points * (1 if callers is None else len(callers))
    failed = np.asarray(failed, bool).reshape(n_rows)
    metrics = np.asarray(metrics, np.float64).reshape(n_rows, len(METRICS[mode]))
    exits = np.asarray(exits).reshape(n_rows, len(EXIT_REASONS))
    skipped = np.asarray(skipped).reshape(n_rows, len(SKIP_REASONS))
    reps = n_rows // n_points if n_points else 0
    cols: dict[str, pa.Array] = {}
    if callers is not None:
        cols["caller"] = pa.array([c for c in callers for _ in range(n_points)], pa.string())
    cols["index"] = pa.array(np.tile(np.arange(n_points, dtype=np.int64), reps))
    for name in PARAMS:
        values = np.array([getattr(p, name) for p in params], np.float64)  # None -> NaN
        cols[name] = _floats(np.tile(values, reps), np.zeros(n_rows, bool))
    for j, name in enumerate(METRICS[mode]):
        cols[name] = (_ints(metrics[:, j], failed) if name in COUNTS
                      else _floats(metrics[:, j], failed))
    for j, reason in enumerate(EXIT_REASONS):
        cols[f"exits_{reason}"] = _ints(exits[:, j], failed)
    for reason in skip_reasons(mode):
        cols[f"skipped_{reason}"] = _ints(skipped[:, SKIP_REASONS.index(reason)], failed)
    cols["feasible"] = pa.array(np.asarray(feasible, bool).reshape(n_rows) & ~failed)
    cols["rank"] = pa.array(np.asarray(rank, np.int64).reshape(n_rows))
    cols["failed"] = pa.array(failed)
    return pa.table(cols)


def _floats(values: np.ndarray, null: np.ndarray) -> pa.Array:
    """NaN (profit_factor without a losing trade) becomes null, as in result.json."""
    values = np.asarray(values, np.float64)
    return pa.array(values, pa.float64(), mask=null | np.isnan(values))


def _ints(values: np.ndarray, null: np.ndarray) -> pa.Array:
    values = np.asarray(values, np.float64)
    null = null | ~np.isfinite(values)
    # Zero the null slots first: casting NaN to int64 is undefined (and warns).
    return pa.array(np.where(null, 0, values).astype(np.int64), pa.int64(), mask=null)


# --------------------------------------------------------------------- writing

def write_atomic(path: Path, data: bytes) -> Path:
    """Write a sibling temporary file, then rename: a reader never sees half a
    file. ``open`` (not mkstemp) so the file gets the usual umask permissions;
    the name is unique per process and thread."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_report(run_dir: Path, *, table: pa.Table, meta: dict, result: Any,
                 best_trades: list | None) -> list[Path]:
    """results.parquet, results.csv, summary.md and plots; the paths written."""
    run_dir = Path(run_dir)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    paths = [write_atomic(run_dir / "results.parquet", buf.getvalue())]
    return paths + write_derived(run_dir, table=table, meta=meta, result=result,
                                 best_trades=best_trades)


def write_derived(run_dir: Path, *, table: pa.Table, meta: dict, result: Any,
                  best_trades: list | None) -> list[Path]:
    """Everything computed from the table: results.csv, summary.md, plots."""
    from . import _plots  # matplotlib is loaded only when a report is written

    run_dir = Path(run_dir)
    result = _builtins(result) or {}
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    paths = [write_atomic(run_dir / "results.csv", buf.getvalue()),
             write_atomic(run_dir / "summary.md", summary_markdown(table, meta, result).encode())]
    return paths + _plots.write_plots(run_dir, table=table, meta=meta, result=result,
                                      best_trades=_builtins(best_trades))


def _builtins(value: Any) -> Any:
    """Structs (in the worker) and decoded JSON (in ``analyze``) alike."""
    return None if value is None else msgspec.to_builtins(value)


# ------------------------------------------------------------------ formatting

def fmt_metric(name: str, value: Any) -> str:
    """A metric for a reader: percents, money with separators, counts."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if name in COUNTS:
        return f"{int(value):,}"
    if name in PERCENT:
        return f"{value:+.2%}" if name in SIGNED else f"{value:.2%}"
    if name in MONEY:
        return f"{value:,.2f}"
    if name == "avg_hold_min":
        return f"{value:,.1f}"
    return f"{value:,.3f}"


def fmt_param(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.6g}"


def fmt_params(p: dict | None) -> str:
    if not p:
        return "none"
    return ", ".join(f"{k} {fmt_param(p.get(k))}" for k in PARAMS)


def md_cell(text: Any) -> str:
    """Pipes would end a table cell and newlines the row."""
    return " ".join(str(text).split()).replace("|", "\\|")


def md_table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """``align``: one letter per column, ``l`` or ``r``."""
    sep = ["---:" if a == "r" else ":---" for a in align]
    return ["| " + " | ".join(md_cell(c) for c in line) + " |"
            for line in [header, sep, *rows]] + [""]


# --------------------------------------------------------------------- summary

def table_columns(table: pa.Table) -> dict[str, np.ndarray]:
    """Columns as numpy arrays, nulls as NaN (``caller``: an object array)."""
    return {name: (np.array(table.column(name).to_pylist(), object) if name == "caller"
                   else table.column(name).to_numpy())
            for name in table.column_names}


def summary_markdown(table: pa.Table, meta: dict, result: Any) -> str:
    """The text of summary.md; deterministic (no clock, no paths)."""
    run = _Run(table_columns(table), meta, _builtins(result) or {})
    lines: list[str] = []
    for part in (_header, _top, _marginal, _correlations, _per_caller, _grouped, _failures):
        lines += part(run)
    return "\n".join(lines).rstrip("\n") + "\n"


class _Run:
    """The figures every section needs, computed once."""

    def __init__(self, cols: dict[str, np.ndarray], meta: dict, result: dict) -> None:
        self.cols, self.meta, self.result = cols, meta, result
        self.mode = meta.get("mode") or "capital"
        self.objective = meta.get("objective") or result.get("objective")
        self.minimize = bool(meta.get("minimize", False))
        self.per_caller = "caller" in cols
        self.failed = cols["failed"].astype(bool)
        self.feasible = cols["feasible"].astype(bool) & ~self.failed
        self.obj = cols[self.objective].astype(np.float64)
        # Points that count for "mean / best objective": feasible, with a figure.
        self.usable = self.feasible & np.isfinite(self.obj)

    def best(self, values: np.ndarray) -> float:
        return float(values.min() if self.minimize else values.max())

    def fmt_obj(self, value: Any) -> str:
        return fmt_metric(self.objective, value)


def _header(run: _Run) -> list[str]:
    kind, m = run.meta.get("kind") or "optimize", run.meta
    title = {"per_caller": "Per-caller optimization", "grouped": "Grouped evaluation"}
    direction = "minimized" if run.minimize else "maximized"
    n_points = m.get("params_evaluated") or int(np.unique(run.cols["index"]).size)
    rows, n_feasible = run.failed.size, int(run.feasible.sum())
    if run.per_caller:
        n_callers = int(np.unique(run.cols["caller"]).size)
        text = (f"A **{kind}** run in **{run.mode}** mode: the calls of each of {n_callers:,} "
                f"callers optimized alone over {n_points:,} grid points ({rows:,} runs), "
                f"objective `{run.objective}` {direction}. {n_feasible:,} of the {rows:,} runs "
                "are feasible")
    else:
        text = (f"An **{kind}** run in **{run.mode}** mode over {n_points:,} grid points, "
                f"objective `{run.objective}` {direction}. {n_feasible:,} of them are feasible")
    n_failed = int(run.failed.sum())
    text += f"; {n_failed:,} failed (see Failures below)." if n_failed else "."
    if run.mode == "capital" and m.get("initial_capital") is not None:
        text += f" Initial capital {fmt_metric('final_capital', m['initial_capital'])}."
    if kind == "optimize":
        best = run.result.get("best_params")
        bm = run.result.get("best_metrics") or {}
        text += (f" Best: {fmt_params(best)} -> {run.objective} "
                 f"{run.fmt_obj(bm.get(run.objective))}." if best else " No feasible grid point.")
    text += (f" Started {m.get('started', 'n/a')}, finished {m.get('finished', 'n/a')}; "
             f"fingerprint `{m.get('fingerprint', 'n/a')}`.")
    return [f"# {title.get(kind, 'Optimization')}: {run.mode} mode, objective "
            f"`{run.objective}`", "", text, ""]


def _params_at(run: _Run, row: int) -> list[str]:
    return [fmt_param(float(run.cols[p][row])) for p in PARAMS]


def _top(run: _Run) -> list[str]:
    if run.per_caller:
        return _top_across_callers(run)
    rows = np.flatnonzero(run.feasible)
    rows = rows[np.argsort(run.cols["rank"][rows], kind="stable")][:TOP_N]
    others = [k for k in KEY_METRICS[run.mode] if k != run.objective]
    out = [f"## Top {TOP_N}", ""]
    if rows.size == 0:
        return out + ["No feasible grid point.", ""]
    body = [[str(int(run.cols["rank"][r])), *_params_at(run, r), run.fmt_obj(run.obj[r]),
             *(fmt_metric(k, run.cols[k][r]) for k in others)] for r in rows]
    return out + md_table(["rank", *PARAMS, run.objective, *others], body,
                          "r" * (len(PARAMS) + 2 + len(others)))


def point_means(cols: dict[str, np.ndarray], objective: str) -> tuple[np.ndarray, np.ndarray]:
    """Per grid index: the mean objective over the (caller) rows where the point
    is feasible and has a figure, and how many such rows (0: mean NaN)."""
    idx = cols["index"].astype(np.int64)
    obj = cols[objective].astype(np.float64)
    ok = cols["feasible"].astype(bool) & ~cols["failed"].astype(bool) & np.isfinite(obj)
    n_points = int(idx.max()) + 1 if idx.size else 0
    counts = np.bincount(idx[ok], minlength=n_points)
    sums = np.bincount(idx[ok], weights=obj[ok], minlength=n_points)
    return np.divide(sums, counts, out=np.full(n_points, np.nan), where=counts > 0), counts


def _top_across_callers(run: _Run) -> list[str]:
    """Callers have their own ranks; across callers, grid points are ranked by
    their mean objective over the callers for which they are feasible."""
    mean, counts = point_means(run.cols, run.objective)
    idx = run.cols["index"].astype(np.int64)
    wins = np.bincount(idx[run.feasible & (run.cols["rank"] == 1)], minlength=mean.size)
    points = np.flatnonzero(counts > 0)
    key = mean[points] if run.minimize else -mean[points]
    points = points[np.lexsort((points, key))][:TOP_N]
    out = [f"## Top {TOP_N}", "",
           f"Grid points by their mean `{run.objective}` over the callers for which they are "
           "feasible; *best for* counts the callers whose best point it is.", ""]
    if points.size == 0:
        return out + ["No feasible grid point for any caller.", ""]
    body = [[str(k + 1), *_params_at(run, int(np.argmax(idx == p))), run.fmt_obj(mean[p]),
             f"{counts[p]:,}", f"{wins[p]:,}"] for k, p in enumerate(points.tolist())]
    return out + md_table(["rank", *PARAMS, f"mean {run.objective}", "feasible callers",
                           "best for"], body, "r" * (len(PARAMS) + 4))


def _marginal(run: _Run) -> list[str]:
    scope = "(caller, grid point) runs" if run.per_caller else "grid points"
    out = ["## Marginal effects", "",
           f"`{run.objective}` over the feasible {scope} at each value of one parameter "
           "(the other parameters vary).", ""]
    for name in PARAMS:
        col = run.cols[name].astype(np.float64)
        body = []
        for v in np.unique(col[np.isfinite(col)]).tolist():
            at = col == v
            sel = run.obj[at & run.usable]
            body.append([fmt_param(v), run.fmt_obj(sel.mean() if sel.size else None),
                         run.fmt_obj(run.best(sel) if sel.size else None),
                         f"{int((at & run.feasible).sum()):,} / {int(at.sum()):,}"])
        out += [f"### {name}", ""]
        out += md_table([name, f"mean {run.objective}", f"best {run.objective}",
                         "feasible"], body, "rrrr")
    return out


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """None when fewer than two pairs are finite or either side is constant."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m = np.isfinite(x) & np.isfinite(y)
    if m.sum() < 2:
        return None
    x, y = x[m] - x[m].mean(), y[m] - y[m].mean()
    denom = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
    # ptp, not denom: a constant column's deviations from its rounded mean are
    # tiny but not zero, and would make a spurious correlation.
    if denom == 0 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(np.clip((x * y).sum() / denom, -1.0, 1.0))


def _correlations(run: _Run) -> list[str]:
    names = list(CORR_METRICS[run.mode])
    if run.objective not in names:
        names.insert(0, run.objective)
    valid = ~run.failed
    body = []
    for p in PARAMS:
        cells = [pearson(run.cols[p][valid], run.cols[k][valid]) for k in names]
        body.append([p, *("n/a" if r is None else f"{r:+.2f}".replace("-0.00", "+0.00")
                          for r in cells)])
    return ["## Correlations", "",
            f"Pearson correlation between each parameter and each metric over the "
            f"{int(valid.sum()):,} evaluated runs (failed ones left out; n/a where a column "
            "is constant).", ""] + md_table(["parameter", *names], body, "l" + "r" * len(names))


def _per_caller(run: _Run) -> list[str]:
    per = run.result.get("per_caller_results")
    if per is None:
        return []
    # The best objective is shown once, not again as capital or return.
    extra = [(k, label) for k, label in (("final_capital", "final capital"),
                                         ("total_return", "total return"))
             if k != run.objective and not (k == "final_capital" and run.mode != "capital")]
    body = []
    for name, r in per.items():
        bm = r.get("best_metrics") or {}
        body.append([name, f"{r.get('calls', 0):,}",
                     *(fmt_param((r.get("best_params") or {}).get(p)) for p in PARAMS),
                     run.fmt_obj(bm.get(run.objective)),
                     *(fmt_metric(k, bm.get(k)) for k, _ in extra),
                     *(("no", "yes")[bool(r.get(k))] for k in FLAGS)])
    head = ["caller", "calls", *PARAMS, f"best {run.objective}", *(label for _, label in extra),
            *FLAGS]
    return (["## Per caller", "", "Each caller's best point (n/a: no feasible point).", ""]
            + md_table(head, body, "lr" + "r" * (len(head) - 4) + "ll"))


def _grouped(run: _Run) -> list[str]:
    if run.meta.get("kind") != "grouped" and "selected_callers" not in run.result:
        return []
    selected = run.result.get("selected_callers") or []
    out = ["## Grouped result", ""]
    out.append(f"Selected callers ({len(selected)}): " + ", ".join(md_cell(c) for c in selected)
               + "." if selected else "No caller selected.")
    out += ["", f"Grouped parameters: {fmt_params(run.result.get('grouped_params'))}.", ""]
    metrics = run.result.get("grouped_result")
    if not metrics:
        return out + ["No grouped run.", ""]
    body = [[k, fmt_metric(k, metrics.get(k))] for k in METRICS[run.mode]]
    for group in ("exits", "skipped"):
        counts = metrics.get(group) or {}
        body.append([group, ", ".join(f"{k} {v:,}" for k, v in counts.items()) or "none"])
    return out + md_table(["metric", "value"], body, "lr")


def _failures(run: _Run) -> list[str]:
    out = ["## Failures and dropped data", ""]
    chunks = [c if isinstance(c, dict) else {"id": str(c)}
              for c in run.meta.get("failed_chunks") or []]
    if chunks:
        body = [[str(c.get("id", "?")), "-".join(str(x) for x in c.get("span") or []) or "n/a",
                 str(c.get("error", ""))] for c in chunks]
        out += [f"Failed chunks ({len(chunks)}); {int(run.failed.sum()):,} result rows have "
                "null metrics because of them:", ""]
        out += md_table(["chunk", "items", "error"], body, "lrl")
    else:
        out += ["Failed chunks: none.", ""]
    dropped = run.meta.get("dropped") or {}
    count, keys = int(dropped.get("count") or 0), list(dropped.get("keys") or [])
    if count:
        shown = ", ".join(f"`{k}`" if "`" not in str(k) else md_cell(k) for k in keys)
        out.append(f"Dropped series: {count:,} (bad data)" + (f"; first keys: {shown}." if keys
                                                              else "."))
    else:
        out.append("Dropped series: none.")
    return out + [""]
