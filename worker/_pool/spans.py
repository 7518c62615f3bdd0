"""What a ``GridJob`` becomes on the process pool (``worker._pool.pool``): the
spec each pool process gets once per job, the job cut into spans of about
equal cost, and a span's estimated time and stall timeout.

Pure functions of their arguments: no processes, no event loop.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np

from .._core.jobs import GridJob
from .._core.tunables import EVALS_PER_SECOND, ITEM_OVERHEAD
from .codec import pack_array
from .shm import SharedDataset

__all__ = ["EVALS_PER_SECOND", "SPAN_SECONDS", "ITEM_OVERHEAD", "cut_spans", "group_sizes",
           "job_spec", "span_seconds", "stall_timeout"]

SPAN_SECONDS = 0.025              # target duration of one span


def cut_spans(group_sizes: np.ndarray, n_points: int, n_workers: int,
              target: float = EVALS_PER_SECOND * SPAN_SECONDS,
              span: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """Contiguous spans ``[a, b)`` covering items ``0 .. G * n_points`` once, of
    about equal cost. Item ``g * n_points + p`` costs ``group_sizes[g]`` call
    evaluations (+ a fixed overhead). Spans are ~``target`` evaluations; when
    there is more than one span of work there is at least one per worker.
    ``span``: cut only the items ``[a, b)`` (the same way), not all of them."""
    sizes = np.asarray(group_sizes, np.float64).reshape(-1)
    n_items = sizes.size * n_points
    lo, hi = (0, n_items) if span is None else (int(span[0]), int(span[1]))
    if not 0 <= lo <= hi <= n_items:
        raise ValueError(f"span {span} is not within the job's {n_items} items")
    if hi == lo:
        return []
    per_item = sizes + ITEM_OVERHEAD
    group_cost = per_item * n_points
    starts = np.concatenate(([0.0], np.cumsum(group_cost)))
    if span is None:
        base, total = 0.0, float(group_cost.sum())
    else:
        base = _cost_before(starts, per_item, n_points, lo)
        total = _cost_before(starts, per_item, n_points, hi) - base
    n_spans = math.ceil(total / target)
    if n_spans > 1:  # a multiple of the workers: no lone span at the end
        n_spans = math.ceil(n_spans / n_workers) * n_workers
    n_spans = max(1, min(n_spans, hi - lo))
    if n_spans == 1:
        return [(lo, hi)]
    cuts = base + np.arange(1, n_spans, dtype=np.float64) * (total / n_spans)
    g = np.clip(np.searchsorted(starts, cuts, side="right") - 1, 0, sizes.size - 1)
    within = np.clip(np.ceil((cuts - starts[g]) / per_item[g]), 0, n_points)
    inner = np.clip(g * n_points + within.astype(np.int64), lo, hi)
    bounds = np.unique(np.concatenate(([lo], inner, [hi])).astype(np.int64))
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _cost_before(starts: np.ndarray, per_item: np.ndarray, n_points: int, item: int) -> float:
    """Cost of items ``0 .. item`` (exclusive)."""
    g = min(item // n_points, per_item.size - 1)
    return float(starts[g] + (item - g * n_points) * per_item[g])


def span_seconds(group_sizes: np.ndarray, n_points: int,
                 spans: list[tuple[int, int]]) -> list[float]:
    """Estimated time of each span ``[a, b)`` on one pool process with one
    thread: ``cut_spans``' cost model over ``EVALS_PER_SECOND``. Not counted:
    the candle scan a process makes with the first span of a job it sees."""
    if not spans:
        return []
    per_item = np.asarray(group_sizes, np.float64).reshape(-1) + ITEM_OVERHEAD
    starts = np.concatenate(([0.0], np.cumsum(per_item * n_points)))
    bounds = np.asarray(spans, np.int64).reshape(-1)
    g = np.minimum(bounds // n_points, per_item.size - 1)
    before = (starts[g] + (bounds - g * n_points) * per_item[g]).reshape(-1, 2)
    return ((before[:, 1] - before[:, 0]) / EVALS_PER_SECOND).tolist()


def stall_timeout(estimate_s: float, *, min_seconds: float, factor: float) -> float:
    """How long a span may go without a reply before its process counts as
    stalled: ``factor`` times its estimate, at least ``min_seconds``."""
    return max(float(min_seconds), float(factor) * float(estimate_s))


def job_spec(shared: SharedDataset, key: str, job: GridJob) -> dict:
    """``job`` as a pool process receives it with its first span of the job."""
    lv = job.levels
    return {
        "key": key,
        "shared": shared.descriptor,
        "levels": {name: pack_array(a) for name, a in lv.arrays().items()},
        "gap_open": lv.gap_open,
        "levels_kind": lv.kind,
        "positions": pack_array(np.asarray(job.positions, np.int64)),
        "group_codes": None if job.group_codes is None else pack_array(job.group_codes),
        "groups": None if job.groups is None else [pack_array(g) for g in job.groups],
        "config": msgspec.to_builtins(job.config),
        "mode": job.mode,
    }


def group_sizes(shared: SharedDataset, job: GridJob) -> np.ndarray:
    """Calls in each of ``job``'s groups: the cost of one of its items."""
    if job.groups is not None:
        return np.array([g.size for g in job.groups], np.int64)
    if job.group_codes is None:
        return np.array([job.positions.size], np.int64)
    caller = shared.dataset.call_caller[job.positions]
    counts = np.bincount(caller, minlength=int(job.group_codes.max(initial=0)) + 1)
    return counts[job.group_codes]
