"""``summary.md`` of a run directory (docs/run-directory.md), computed from
the results table, ``run.json`` (``meta``) and ``result.json`` (``result``)
alone, so ``optimizer-worker analyze`` rewrites it byte for byte from the
files of a finished run. Deterministic: no clock, no paths.

An incomplete run (``meta["incomplete"]``, or any failed chunk or row: the
batch CLI isolates failed chunks) opens with a warning before anything
else, the title included, and never calls a point "best" without saying it
is the best of the evaluated points.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from .robust_summary import stress_section, walk_forward_section
from .text import (
    CORR_METRICS,
    FLAGS,
    KEY_METRICS,
    METRICS,
    OFF_WHEN_NULL,
    TOP_N,
    fmt_dim,
    fmt_metric,
    fmt_params,
    md_cell,
    md_table,
    param_columns,
    param_value,
)

__all__ = ["summary_markdown", "table_columns", "point_means", "pearson"]


def _builtins(value: Any) -> Any:
    """Structs (in the worker) and decoded JSON (in ``analyze``) alike."""
    return None if value is None else msgspec.to_builtins(value)


def table_columns(table: pa.Table) -> dict[str, np.ndarray]:
    """Columns as numpy arrays, nulls as NaN (``caller``: an object array)."""
    return {name: (np.array(table.column(name).to_pylist(), object) if name == "caller"
                   else table.column(name).to_numpy())
            for name in table.column_names}


def summary_markdown(table: pa.Table, meta: dict, result: Any) -> str:
    """The text of summary.md; deterministic (no clock, no paths).

    A walk-forward run: its title, then the robustness section (the verdict
    first), then its full-data optimize as an optimize run's summary. An
    optimize run with stress or plateau adds their section after the top 10.
    """
    result = _builtins(result) or {}
    walk = meta.get("kind") == "walk_forward"
    run = _Run(table_columns(table), meta, (result.get("full") or {}) if walk else result)
    lines: list[str] = _warning(run)
    head = _header(run)
    if walk:
        lines += head[:2] + walk_forward_section(result, meta)
        lines += ["## Full-data optimization", "", *head[2:]]
    else:
        lines += head
    for part in (_top, _stress, _marginal, _correlations, _per_caller, _grouped, _failures):
        lines += part(run)
    return "\n".join(lines).rstrip("\n") + "\n"


def _stress(run: _Run) -> list[str]:
    if run.per_caller:
        return []
    return stress_section(run.cols, run.result, run.meta, run.feasible, run.of_evaluated())


class _Run:
    """The figures every section needs, computed once."""

    def __init__(self, cols: dict[str, np.ndarray], meta: dict, result: dict) -> None:
        self.cols, self.meta, self.result = cols, meta, result
        self.mode = meta.get("mode") or "capital"
        self.objective = meta.get("objective") or result.get("objective")
        self.minimize = bool(meta.get("minimize", False))
        self.per_caller = "caller" in cols
        # tp, sl, hold and the SPEC 11 dimensions the run's grid has.
        self.params = param_columns(cols)
        self.failed = cols["failed"].astype(bool)
        self.feasible = cols["feasible"].astype(bool) & ~self.failed
        self.obj = cols[self.objective].astype(np.float64)
        # Points that count for "mean / best objective": feasible, with a figure.
        self.usable = self.feasible & np.isfinite(self.obj)
        chunks = meta.get("failed_chunks") or []
        self.chunks_failed = max(int(meta.get("chunks_failed") or 0), len(chunks))
        self.incomplete = (bool(meta.get("incomplete")) or self.chunks_failed > 0
                           or bool(self.failed.any()))

    @property
    def incomplete_note(self) -> str:
        """"incomplete run: N chunks failed", for every place that says best."""
        n = self.chunks_failed
        return (f"incomplete run: {n:,} chunk{'' if n == 1 else 's'} failed" if n
                else "incomplete run")

    def of_evaluated(self) -> str:
        """What qualifies "best" and "top": nothing in a complete run."""
        return f" of the evaluated points ({self.incomplete_note})" if self.incomplete else ""

    def best(self, values: np.ndarray) -> float:
        return float(values.min() if self.minimize else values.max())

    def fmt_obj(self, value: Any) -> str:
        return fmt_metric(self.objective, value)


def _warning(run: _Run) -> list[str]:
    """First thing in an incomplete run's summary, before the title."""
    if not run.incomplete:
        return []
    rows, n_failed = run.failed.size, int(run.failed.sum())
    total, n = run.meta.get("chunks_total"), run.chunks_failed
    of = f" (of {int(total):,})" if total else ""
    what = f"{n:,} chunk{'' if n == 1 else 's'} failed{of}" if n else "chunks failed"
    return [f"> **Warning: incomplete run**: {what}, so "
            f"{n_failed:,} of the {rows:,} result rows have no figures (see Failures below).",
            "> Everything below, \"best\" included, is about the evaluated points only: the "
            "true best may be among the missing ones.",
            "> To compute the missing chunks, run the same config again (`optimizer-worker run "
            "CONFIG.yaml`): the journal keeps every finished chunk, so only the failed ones "
            "are computed.", ""]


def _header(run: _Run) -> list[str]:
    kind, m = run.meta.get("kind") or "optimize", run.meta
    title = {"per_caller": "Per-caller optimization", "grouped": "Grouped evaluation",
             "walk_forward": "Walk-forward optimization"}
    direction = "minimized" if run.minimize else "maximized"
    n_points = m.get("params_evaluated") or int(np.unique(run.cols["index"]).size)
    rows, n_feasible = run.failed.size, int(run.feasible.sum())
    if run.per_caller:
        n_callers = int(np.unique(run.cols["caller"]).size)
        text = (f"A **{kind}** run in **{run.mode}** mode: the calls of each of {n_callers:,} "
                f"callers optimized alone over {n_points:,} grid points ({rows:,} runs), "
                f"objective `{run.objective}` {direction}. {n_feasible:,} of the {rows:,} runs "
                "are feasible")
    elif kind == "walk_forward":
        text = (f"Every call at once (the grid chosen with hindsight, for contrast with the "
                f"folds): {n_points:,} grid points in **{run.mode}** mode, objective "
                f"`{run.objective}` {direction}. {n_feasible:,} of them are feasible")
    else:
        text = (f"An **{kind}** run in **{run.mode}** mode over {n_points:,} grid points, "
                f"objective `{run.objective}` {direction}. {n_feasible:,} of them are feasible")
    n_failed = int(run.failed.sum())
    text += f"; {n_failed:,} failed (see Failures below)." if n_failed else "."
    if run.mode == "capital" and m.get("initial_capital") is not None:
        text += f" Initial capital {fmt_metric('final_capital', m['initial_capital'])}."
    if kind in ("optimize", "walk_forward"):
        best = run.result.get("best_params")
        bm = run.result.get("best_metrics") or {}
        label = f"Best{run.of_evaluated()}:"
        text += (f" {label} {fmt_params(best)} -> {run.objective} "
                 f"{run.fmt_obj(bm.get(run.objective))}." if best
                 else f" No feasible grid point{run.of_evaluated()}.")
    text += (f" Started {m.get('started', 'n/a')}, finished {m.get('finished', 'n/a')}; "
             f"fingerprint `{m.get('fingerprint', 'n/a')}`.")
    return [f"# {title.get(kind, 'Optimization')}: {run.mode} mode, objective "
            f"`{run.objective}`", "", text, "", *_best_counts(run)]


def _best_counts(run: _Run) -> list[str]:
    """How the best point's trades ended and why calls were skipped, every
    reason of the table (SPEC 11's ``trailing_stop``, ``breakeven`` and
    ``no_fill`` included), so an exit rule's effect shows at a glance."""
    if run.per_caller:
        return []
    rows = np.flatnonzero(run.feasible & (run.cols["rank"] == 1))
    if rows.size == 0:
        return []
    r = int(rows[0])
    groups = [(what, ", ".join(f"{name[len(prefix):]} {int(run.cols[name][r]):,}"
                              for name in run.cols if name.startswith(prefix)))
              for what, prefix in (("exits", "exits_"), ("skipped", "skipped_"))]
    return [f"At the best point{run.of_evaluated()}: "
            + "; ".join(f"{what}: {counts or 'none'}" for what, counts in groups) + ".", ""]


def _params_at(run: _Run, row: int) -> list[str]:
    return [fmt_dim(p, float(run.cols[p][row])) for p in run.params]


def _top(run: _Run) -> list[str]:
    if run.per_caller:
        return _top_across_callers(run)
    rows = np.flatnonzero(run.feasible)
    rows = rows[np.argsort(run.cols["rank"][rows], kind="stable")][:TOP_N]
    others = [k for k in KEY_METRICS[run.mode] if k != run.objective]
    out = [f"## Top {TOP_N}{run.of_evaluated()}", ""]
    rank_by = run.meta.get("rank_by") or "objective"
    if rank_by != "objective":
        out += [f"Ranked by `{rank_by}` (its values: the next section).", ""]
    if rows.size == 0:
        return out + ["No feasible grid point.", ""]
    body = [[str(int(run.cols["rank"][r])), *_params_at(run, r), run.fmt_obj(run.obj[r]),
             *(fmt_metric(k, run.cols[k][r]) for k in others)] for r in rows]
    return out + md_table(["rank", *run.params, run.objective, *others], body,
                          "r" * (len(run.params) + 2 + len(others)))


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
    out = [f"## Top {TOP_N}{run.of_evaluated()}", "",
           f"Grid points by their mean `{run.objective}` over the callers for which they are "
           "feasible; *best for* counts the callers whose best point it is.", ""]
    if points.size == 0:
        return out + ["No feasible grid point for any caller.", ""]
    body = [[str(k + 1), *_params_at(run, int(np.argmax(idx == p))), run.fmt_obj(mean[p]),
             f"{counts[p]:,}", f"{wins[p]:,}"] for k, p in enumerate(points.tolist())]
    return out + md_table(["rank", *run.params, f"mean {run.objective}", "feasible callers",
                           "best for"], body, "r" * (len(run.params) + 4))


def _marginal(run: _Run) -> list[str]:
    scope = "(caller, grid point) runs" if run.per_caller else "grid points"
    out = ["## Marginal effects", "",
           f"`{run.objective}` over the feasible {scope} at each value of one parameter "
           "(the other parameters vary)" + ("; *off*: that exit switched off." if any(
               p in OFF_WHEN_NULL for p in run.params) else "."), ""]
    for name in run.params:
        col = run.cols[name].astype(np.float64)
        body = []
        for v, at in _levels(col):
            sel = run.obj[at & run.usable]
            body.append([fmt_dim(name, v), run.fmt_obj(sel.mean() if sel.size else None),
                         run.fmt_obj(run.best(sel) if sel.size else None),
                         f"{int((at & run.feasible).sum()):,} / {int(at.sum()):,}"])
        out += [f"### {name}", ""]
        out += md_table([name, f"mean {run.objective}", f"best {run.objective}",
                         "feasible"], body, "rrrr")
    return out


def _levels(col: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """Each value of a parameter column and where it is: "off" (NaN, a
    trail or breakeven switched off) first, its own level, then the values."""
    off = np.isnan(col)
    levels = [(math.nan, off)] if off.any() else []
    return levels + [(v, col == v) for v in np.unique(col[~off]).tolist()]


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
    for p in run.params:
        # pearson drops non-finite pairs: an "off" point (NaN) is left out.
        cells = [pearson(run.cols[p][valid], run.cols[k][valid]) for k in names]
        body.append([p, *("n/a" if r is None else f"{r:+.2f}".replace("-0.00", "+0.00")
                          for r in cells)])
    off = [f"`{p}`" for p in run.params if p in OFF_WHEN_NULL]
    note = (f" The rows of {', '.join(off)} are over the runs where that exit is on (its "
            "value); runs with it off are left out (Marginal effects compares off with on)."
            if off else "")
    return ["## Correlations", "",
            f"Pearson correlation between each parameter and each metric over the "
            f"{int(valid.sum()):,} evaluated runs (failed ones left out; n/a where a column "
            f"is constant).{note}", ""] + md_table(["parameter", *names], body,
                                                    "l" + "r" * len(names))


def _per_caller(run: _Run) -> list[str]:
    per = run.result.get("per_caller_results")
    if per is None:
        return []
    # The best objective is shown once, not again as capital or return.
    extra = [(k, label) for k, label in (("final_capital", "final capital"),
                                         ("total_return", "total return"))
             if k != run.objective and k in METRICS[run.mode]]
    body = []
    for name, r in per.items():
        bm = r.get("best_metrics") or {}
        best = r.get("best_params")
        body.append([name, f"{r.get('calls', 0):,}",
                     *(fmt_dim(p, param_value(best, p)) if best else "n/a" for p in run.params),
                     run.fmt_obj(bm.get(run.objective)),
                     *(fmt_metric(k, bm.get(k)) for k, _ in extra),
                     *(("no", "yes")[bool(r.get(k))] for k in FLAGS)])
    head = ["caller", "calls", *run.params, f"best {run.objective}", *(label for _, label in extra),
            *FLAGS]
    return (["## Per caller", "", f"Each caller's best point{run.of_evaluated()} (n/a: no "
             "feasible point).", ""]
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
