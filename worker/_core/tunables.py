"""The cost model's constants, stated once: the pool cuts its spans with them,
the checkpoint journal its chunks, and ``optimizer-worker run --dry-run``
estimates a run's time with them. Rough by design: they size work, they never
change an answer.
"""

from __future__ import annotations

__all__ = ["EVALS_PER_SECOND", "ITEM_OVERHEAD"]

# Call x grid-point evaluations per second of one process on one thread.
EVALS_PER_SECOND = 20_000_000

# The fixed cost of one work item (a grid point of one group), in
# evaluations' worth: an item of n calls costs about n + ITEM_OVERHEAD.
ITEM_OVERHEAD = 16
