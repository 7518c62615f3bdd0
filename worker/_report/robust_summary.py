"""SPEC 12's sections of ``summary.md``: a walk-forward run's robustness
section (the verdict first: is the edge real, how much survives, which
region is robust, then the folds) and an optimize run's stress / plateau
section. From ``result.json`` (and the results table's SPEC 12 columns)
alone, like the rest of the summary; deterministic.

The verdict's thresholds (decisions; SPEC 12 reports the statistics, not a
verdict): PBO below ``PBO_OVERFIT`` (0.5: the in-sample best lands in the
out-of-sample bottom half at most as often as a coin flip would put it
there), a deflated Sharpe ratio of at least ``DSR_SIGNIFICANT`` (0.95),
at least ``PROFITABLE_MIN`` (half) of the folds profitable out of sample,
and a stitched out-of-sample total return above 0.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from .text import TOP_N, fmt_metric, fmt_params, iso, md_table

PBO_OVERFIT = 0.5
DSR_SIGNIFICANT = 0.95
PROFITABLE_MIN = 0.5
MAX_FOLD_ROWS = 30       # folds listed in summary.md (all of them are in folds.csv)


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{value:+.1%}"


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(values)) if values else None


def _profitable(folds: list[dict]) -> int:
    """Folds whose choice made money on its test calls (SPEC 12's profitable folds)."""
    return sum(1 for f in folds if ((f.get("test_metrics") or {}).get("total_return") or 0) > 0)


def verdict(result: dict) -> str:
    """The section's first line: a headline and the figures behind it."""
    folds = result.get("folds") or []
    valid = [f for f in folds if f.get("chosen_params") is not None]
    agg = result.get("aggregate") or {}
    pbo = (result.get("pbo") or {}).get("pbo")
    dsr = (result.get("full") or {}).get("deflated_sharpe")
    share = agg.get("profitable_folds")
    stitched = ((result.get("stitched") or {}).get("metrics") or {}).get("total_return")
    full_return = (result.get("full") or {}).get("best_total_return")
    if not valid:
        return ("**Verdict: no verdict: no fold chose a point** (every fold had no train or "
                "test calls, or no feasible point on its train calls).")
    profitable = _profitable(valid)
    loses = (stitched is not None and stitched <= 0) or (share is not None and
                                                          share < PROFITABLE_MIN)
    if pbo is not None and pbo >= PBO_OVERFIT:
        head = "likely overfit"
    elif loses:
        head = "no edge out of sample"
    elif pbo is not None and dsr is not None and dsr >= DSR_SIGNIFICANT:
        head = "the edge looks real"
    else:
        head = "promising, not proven"
    why = [f"PBO {_num(pbo)}" if pbo is not None else "PBO not computed (give pbo)",
           f"deflated Sharpe {_num(dsr, 3)}",
           f"{profitable:,} of {len(valid):,} folds profitable out of sample"]
    if stitched is not None:
        why.append(f"stitched out-of-sample return {fmt_metric('total_return', stitched)} vs "
                   f"{fmt_metric('total_return', full_return)} for the full-data best")
    return f"**Verdict: {head}.** " + "; ".join(why) + "."


def walk_forward_section(result: dict, meta: dict) -> list[str]:
    """``## Robustness`` of a walk-forward run, its verdict the first line."""
    line = verdict(result)
    if meta.get("incomplete") or meta.get("chunks_failed"):
        line += (" Incomplete run: some folds, blocks or points have no figures, so these "
                 "statistics are of the evaluated ones only (see the warning above).")
    out = ["## Robustness", "", line, "",
           f"Thresholds: PBO < {PBO_OVERFIT}, deflated Sharpe >= {DSR_SIGNIFICANT}, at least "
           f"{PROFITABLE_MIN:.0%} of the folds and the stitched run profitable.", ""]
    return out + _edge(result) + _survival(result) + _region(result, meta) + _folds(result)


def _edge(result: dict) -> list[str]:
    p = result.get("pbo")
    full = result.get("full") or {}
    valid = [f for f in result.get("folds") or [] if f.get("chosen_params") is not None]
    share = (result.get("aggregate") or {}).get("profitable_folds")
    rows = []
    if p:
        q = p.get("logit_quartiles") or []
        rows += [["PBO", _num(p.get("pbo")), "share of the CSCV splits whose in-sample best "
                  "ranks in the out-of-sample bottom half (0 good, >= 0.5 overfit)"],
                 ["P(out-of-sample loss)", _num(p.get("prob_oos_loss")),
                  "share of the splits whose in-sample best loses money out of sample"],
                 ["logit quartiles", " / ".join(_num(v) for v in q) or "n/a",
                  "the in-sample best's out-of-sample rank as a logit (> 0: top half)"],
                 ["slope", _num(p.get("slope")), "out-of-sample on in-sample return of the "
                  "in-sample best (< 0: what wins in sample loses after)"]]
    else:
        rows.append(["PBO", "n/a", "not asked (give pbo: {blocks: 16})"])
    best_sharpe = (full.get("best_metrics") or {}).get("sharpe")
    rows += [["deflated Sharpe", _num(full.get("deflated_sharpe"), 3),
              f"probability that the full-data best's Sharpe ratio per trade "
              f"({_num(best_sharpe, 3)}) beats the best of {full.get('feasible_count', 0):,} "
              "tries by luck alone"],
             ["profitable folds", f"{_num(share)}" if share is not None else "n/a",
              f"{_profitable(valid):,} of {len(valid):,} folds with a choice made money on "
              "their test calls"]]
    return ["### Is the edge real?", ""] + md_table(["statistic", "value", "reading"], rows,
                                                    "lrl")


def _survival(result: dict) -> list[str]:
    objective = result.get("objective")
    agg = result.get("aggregate") or {}
    folds = [f for f in result.get("folds") or [] if f.get("chosen_params") is not None]
    train = _median([(f["train_metrics"] or {}).get(objective) for f in folds])
    f_obj = lambda v: fmt_metric(objective, v)  # noqa: E731
    rows = [["median train objective (chosen points)", f_obj(train)],
            ["median test objective", f_obj(agg.get("median_test_objective"))],
            ["worst test objective", f_obj(agg.get("worst_test_objective"))],
            ["degradation (median test vs train)", _pct(agg.get("degradation"))],
            ["efficiency (test vs train return per day)", _num(agg.get("efficiency"))],
            ["median test rank percentile of the choice",
             _num(_median([f.get("test_rank_pct") for f in folds]))],
            ["median train/test rank correlation",
             _num(_median([f.get("spearman") for f in folds]))]]
    st = result.get("stitched")
    full = result.get("full") or {}
    bm = full.get("best_metrics") or {}
    if st:
        m = st.get("metrics") or {}
        rows += [["stitched out-of-sample: total return", fmt_metric("total_return",
                                                                    m.get("total_return"))],
                 ["stitched: final capital, max drawdown, trades",
                  f"{fmt_metric('final_capital', m.get('final_capital'))}, "
                  f"{fmt_metric('max_drawdown', m.get('max_drawdown'))}, "
                  f"{fmt_metric('trades_executed', m.get('trades_executed'))}"]]
    else:
        rows.append(["stitched out-of-sample run", "none (cpcv folds, overlapping test "
                     "windows, or no fold chose a point)"])
    rows.append(["full-data best (hindsight): total return, max drawdown",
                 f"{fmt_metric('total_return', full.get('best_total_return'))}, "
                 f"{fmt_metric('max_drawdown', bm.get('max_drawdown'))}"])
    return ["### How much survives?", ""] + md_table(["figure", "value"], rows, "lr")


def _region(result: dict, meta: dict) -> list[str]:
    folds = [f for f in result.get("folds") or [] if f.get("chosen_params") is not None]
    full = result.get("full") or {}
    counts = Counter(fmt_params(f["chosen_params"]) for f in folds)
    out = ["### Which region is robust?", ""]
    rank_by = meta.get("rank_by") or "objective"
    out.append(f"Each fold chose by `{rank_by}` on its train calls"
               + (" (its neighbourhood's mean or worst, not a lone spike)."
                  if rank_by == "plateau" else "."))
    if counts:
        best = fmt_params(full.get("best_params")) if full.get("best_params") else None
        body = [[p, f"{n:,} of {len(folds):,}", "yes" if p == best else ""]
                for p, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_N]]
        out += ["", "Points chosen by the folds (most often first; the same point in most "
                "folds is a stable region):", ""]
        out += md_table(["chosen point", "folds", "full-data best"], body, "lrl")
    top = (full.get("top") or [None])[0]
    if top is not None and top.get("plateau") is not None:
        name = result.get("objective")
        out += [f"Full-data best: {fmt_params(top['params'])}: objective "
                f"{fmt_metric(name, top['metrics'].get(name))}, plateau "
                f"{fmt_metric(name, top['plateau'])}.", ""]
    return out


def _folds(result: dict) -> list[str]:
    objective = result.get("objective")
    folds = result.get("folds") or []
    body = []
    for f in folds[:MAX_FOLD_ROWS]:
        tm, sm = f.get("train_metrics") or {}, f.get("test_metrics") or {}
        body.append([str(f["index"]), _span(f["train_windows"]), _span(f["test_windows"]),
                     f"{f['n_train']:,} / {f['n_test']:,} ({f['n_purged']:,})",
                     fmt_params(f.get("chosen_params")) if f.get("chosen_params") else "none",
                     fmt_metric(objective, tm.get(objective)),
                     fmt_metric(objective, sm.get(objective)),
                     fmt_metric("total_return", sm.get("total_return")),
                     _num(f.get("test_rank_pct")), _num(f.get("spearman"))])
    more = (f" The first {MAX_FOLD_ROWS} of {len(folds):,}; all of them are in folds.csv."
            if len(folds) > MAX_FOLD_ROWS else " Also in folds.csv.")
    return (["### Folds", "", "Train / test calls (purged train calls in parentheses); the "
             "objective of the fold's choice on its train and test calls." + more, ""]
            + md_table(["fold", "train", "test", "calls", "chosen", f"train {objective}",
                        f"test {objective}", "test return", "test rank pct", "spearman"],
                       body, "rllrlrrrrr"))


def _span(windows: list) -> str:
    """Windows to the minute (UTC), several joined with +."""
    return " + ".join(f"{iso(a)[:16].replace('T', ' ')} .. {iso(b)[:16].replace('T', ' ')}"
                      for a, b in windows)


def stress_section(cols: dict[str, np.ndarray], result: dict, meta: dict,
                   feasible: np.ndarray, of_evaluated: str = "") -> list[str]:
    """``## Stress lanes`` / ``## Plateau`` of a run with stress or plateau
    values: the top points under every lane, their worst lane and plateau."""
    from .robust import LANE_PREFIX, lane_names

    lanes = lane_names(cols)
    plateau = "plateau" in cols
    if not lanes and not plateau:
        return []
    objective = meta.get("objective") or result.get("objective")
    rank_by = meta.get("rank_by") or "objective"
    f_obj = lambda v: fmt_metric(objective, v)  # noqa: E731
    title = ("Stress lanes and plateau" if lanes and plateau
             else "Stress lanes" if lanes else "Plateau")
    out = [f"## {title}", ""]
    rows = np.flatnonzero(feasible)
    rows = rows[np.argsort(cols["rank"][rows], kind="stable")][:TOP_N]
    lines = [f"Points ranked by `{rank_by}`; deflated Sharpe of the best{of_evaluated}: "
             f"{_num(result.get('deflated_sharpe'), 3)}."]
    if rows.size and lanes:
        r = int(rows[0])
        worst = cols["worst_lane"][r]
        base = cols[objective][r]
        lines.append(f"The best point's `{objective}` is {f_obj(base)} on the request's "
                     f"costs and {f_obj(cols['maximin'][r])} under its worst lane "
                     f"(`{worst}`). {_holding(cols, rows, objective)}")
    out += [" ".join(lines), ""]
    if rows.size == 0:
        return out + ["No feasible grid point.", ""]
    head = ["rank", "point", objective, *(f"lane {n}" for n in lanes),
            *(["worst lane", "maximin"] if lanes else []), *(["plateau"] if plateau else [])]
    body = []
    for r in rows.tolist():
        point = (result.get("all_results") or [])
        params = next((p["params"] for p in point if p["index"] == int(cols["index"][r])), None)
        body.append([str(int(cols["rank"][r])), fmt_params(params), f_obj(cols[objective][r]),
                     *(f_obj(cols[LANE_PREFIX + n][r]) for n in lanes),
                     *([str(cols["worst_lane"][r]), f_obj(cols["maximin"][r])] if lanes else []),
                     *([f_obj(cols["plateau"][r])] if plateau else [])])
    return out + md_table(head, body, "rl" + "r" * (len(head) - 2))


def _holding(cols: dict, rows: np.ndarray, objective: str) -> str:
    """How many top points keep a positive worst lane (return-like objectives)."""
    if objective not in ("total_return", "avg_return", "median_return", "avg_r", "sharpe"):
        return ""
    m = cols["maximin"][rows].astype(np.float64)
    return (f"{int((m > 0).sum()):,} of the top {rows.size:,} stay above 0 under every "
            "lane.")
