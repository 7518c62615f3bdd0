"""Which evaluator a request gets when the work goes to a Ray cluster.

The daemon (``optimizer-worker serve --executor ray --ray-address ADDRESS``)
and a batch run (``executor: {kind: ray, address: ...}``) say so with a
``RayExecutor``. The daemon's CLI registers it for the process (``use``);
``Worker._evaluator`` asks ``current()`` for large work, where it would
otherwise pick the process pool; small work stays in the daemon, as without
a cluster. Nothing here imports ray.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._core.dataset import Dataset
from .._run.evaluators import Evaluator

__all__ = ["RayExecutor", "current", "use"]


@dataclass(frozen=True)
class RayExecutor:
    """A Ray cluster to run spans on: its ``address`` (``host:port`` of the
    head's GCS, ``ray://host:port`` of a Ray Client server, or ``auto``)."""

    address: str
    max_retries: int = 3

    def evaluator(self, ds: Dataset) -> Evaluator:
        """A ``RayEvaluator`` for one request (or run) on ``ds``."""
        from .evaluator import RayEvaluator

        return RayEvaluator(ds, self.address, max_retries=self.max_retries)


_current: RayExecutor | None = None


def use(executor: RayExecutor | None) -> None:
    """Large work of this process's daemon goes to ``executor`` (None: the pool)."""
    global _current
    _current = executor


def current() -> RayExecutor | None:
    """The executor ``use`` registered, or None (the local pool)."""
    return _current
