"""Compile (or load from Numba's on-disk cache) every kernel specialization.

Run once at image build time and at daemon start, so that no user request
pays for compilation: every public operation runs once, in both modes, on a
tiny dataset built by the same loaders real data goes through (the kernels
specialize on read-only arrays, so the warm-up data must be a real Dataset).
"""

from __future__ import annotations

import time

from .._core.optimize import simulate
from .._data.synthetic import synthetic_dataset
from .library import grouped_eval, optimize, optimize_per_caller


def warm_kernels() -> float:
    """Run every kernel once; returns the seconds it took."""
    t = time.perf_counter()
    ds = synthetic_dataset(n_calls=40, n_candles=120, n_callers=3, seed=0)
    for mode in ("capital", "per_trade"):
        optimize(ds, mode=mode)
        simulate(ds, {"tp_mult": 2.0, "sl_mult": 0.9}, mode=mode)
        optimize_per_caller(ds, mode=mode)
        grouped_eval(ds, mode=mode, grouped_params="optimize")
    return time.perf_counter() - t
