"""A Ray cluster as an evaluator (SPEC 14, docs/cluster.md): where spans run,
never what they compute.

- ``connect``: the one Ray connection of this process (``ray.init(address=)``
  once, checked reachable first so an unreachable cluster fails fast, with
  its address).
- ``tasks``: what runs on the cluster's worker processes: a span of a job,
  with the request's dataset and the job taken by reference from the object
  store and kept per worker process (its candle scan made once per job).
- ``evaluator``: ``RayEvaluator``, the ``worker._run.evaluators.Evaluator``.
- ``select``: the daemon's and the batch run's choice of it
  (``RayExecutor``).

``ray`` is an optional dependency (``pip install 'optimizer-worker[ray]'``):
nothing here imports it at module level, so importing this package without
it is fine; using it raises ``InternalError`` saying how to install it.
"""

from __future__ import annotations

from .evaluator import RayEvaluator
from .select import RayExecutor

__all__ = ["RayEvaluator", "RayExecutor"]
