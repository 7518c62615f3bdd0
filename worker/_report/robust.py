"""SPEC 12's per-point figures in the results table: ``plateau``, each
stress lane's objective (``lane_<name>``), ``worst_lane`` and ``maximin``,
taken from the answer's ``all_results`` (an optimize run's, or a
walk-forward run's ``full``), and the ranks ``rank_by`` gives."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

LANE_PREFIX = "lane_"


def _points(result: Any) -> list[dict]:
    if result is None:
        return []
    r = result if isinstance(result, dict) else msgspec.to_builtins(result)
    return list(r.get("all_results") or [])


def result_ranks(result: Any, rank: np.ndarray) -> np.ndarray:
    """``rank`` with every evaluated point's rank as the answer gives it
    (under ``rank_by``); points the answer leaves out (their chunk failed)
    keep theirs from ``rank``."""
    rank = np.array(rank, np.int64)
    for p in _points(result):
        rank[int(p["index"])] = int(p["rank"])
    return rank


def robust_columns(result: Any, n_points: int) -> dict[str, pa.Array]:
    """``plateau`` (with ``plateau``), ``lane_<name>`` per lane in the
    request's order, ``worst_lane`` and ``maximin`` (with ``stress``); none
    when the run asked for neither. A point the answer leaves out (failed)
    or without a figure is null."""
    points = _points(result)
    out: dict[str, pa.Array] = {}
    if any("plateau" in p for p in points):
        out["plateau"] = _floats({p["index"]: p.get("plateau") for p in points}, n_points)
    lanes = next((list(p["lanes"]) for p in points if "lanes" in p), None)
    if lanes is not None:
        for name in lanes:
            out[LANE_PREFIX + name] = _floats(
                {p["index"]: (p.get("lanes") or {}).get(name) for p in points}, n_points)
        worst = {p["index"]: p.get("worst_lane") for p in points}
        out["worst_lane"] = pa.array([worst.get(i) for i in range(n_points)], pa.string())
        out["maximin"] = _floats({p["index"]: p.get("maximin") for p in points}, n_points)
    return out


def _floats(values: dict[int, float | None], n: int) -> pa.Array:
    return pa.array([values.get(i) for i in range(n)], pa.float64())


def lane_names(names) -> list[str]:
    """The stress lanes of a table, from its ``lane_<name>`` columns, in order."""
    return [c[len(LANE_PREFIX):] for c in names if c.startswith(LANE_PREFIX)]
