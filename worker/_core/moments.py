"""SPEC 12's per-run return statistics, computed by the sweeps at the end of
every run: the ``sharpe`` metric and the central moments of the trade
returns (``layouts.MOMENTS``) that the deflated Sharpe ratio of whichever
point turns out best needs, so no point is ever run twice for it.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .layouts import M_RET_M2, M_RET_M3, M_RET_M4

# Numba's on-disk cache keys a kernel on its own file's content only, not on
# the constants it takes from layouts.py. This digest of them is part of this
# file, so when they change, this file changes and its kernels recompile
# (tests/test_layouts.py keeps it equal).
DEPENDS_ON_DIGEST = "befa693f456898b9"


@nb.njit(cache=True, nogil=True)
def sharpe_nb(rets, count, total, metrics, column):
    """SPEC 12's ``sharpe`` of the first ``count`` returns (entry order) into
    ``metrics[column]``: ``mean = total / count`` (``total``: their
    left-to-right sum, kept by the run as it goes) over the sample std; NaN
    (null) below 2 trades or when the std is at most ``1e-12 * max(1,
    |mean|)``. Also the central moments ``M_RET_*`` (the deflated Sharpe
    ratio's, of whichever point turns out best)."""
    metrics[column] = np.nan
    metrics[M_RET_M2] = metrics[M_RET_M3] = metrics[M_RET_M4] = np.nan
    if count < 2:
        return
    mean = total / count
    s2, s3, s4 = _central_sums_nb(rets, count, mean)
    metrics[M_RET_M2], metrics[M_RET_M3], metrics[M_RET_M4] = s2 / count, s3 / count, s4 / count
    std = np.sqrt(s2 / (count - 1))
    if not std <= 1e-12 * max(1.0, abs(mean)):
        metrics[column] = mean / std


# SPEC 12 fixes the mean's summation order (left to right), not the order of
# the sums of powers of the deviations: reassociation lets them vectorize (a
# chain of dependent adds cost ~10 % of a SPEC 2 sweep on data set A).
# Returns are finite (prices are validated), so "no NaN" holds.
@nb.njit(cache=True, nogil=True, fastmath={"nnan", "nsz", "reassoc", "arcp", "contract"})
def _central_sums_nb(rets, count, mean):
    s2 = 0.0
    s3 = 0.0
    s4 = 0.0
    for k in range(count):
        d = rets[k] - mean
        d2 = d * d
        s2 += d2
        s3 += d2 * d
        s4 += d2 * d2
    return s2, s3, s4
