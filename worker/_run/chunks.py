"""Chunks and fingerprints of checkpointed runs (docs/run-directory.md): how
a job's items are cut into the journal's chunks (a function of the job
alone, so a resumed run cuts them the same way), their ids, and the
fingerprint that ties a journal to one dataset and request.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import fields
from typing import Any

import msgspec
import numpy as np

from .._core.dataset import Dataset
from .._core.jobs import GridJob
from .._core.tunables import ITEM_OVERHEAD

__all__ = ["JOURNAL_VERSION", "CHUNK_EVALUATIONS", "CHUNK_ITEMS", "chunk_items", "chunk_spans",
           "chunk_id", "fingerprint"]

JOURNAL_VERSION = 1        # the line format; also part of every fingerprint

# Chunk sizing (part of every fingerprint: changing it changes chunk ids, so
# a journal written with other values is refused, never mixed). A chunk is
# about CHUNK_EVALUATIONS call x grid-point evaluations, ~1.2 s of one core
# at ~27 M evaluations/s; at most CHUNK_ITEMS items (a journal line is ~192
# bytes per item, so at most ~3 MB). The environment variables are for tests
# that need many chunks from a small run in a subprocess.
CHUNK_EVALUATIONS = int(os.environ.get("OPTIMIZER_WORKER_CHUNK_EVALUATIONS", 32_000_000))
CHUNK_ITEMS = int(os.environ.get("OPTIMIZER_WORKER_CHUNK_ITEMS", 16_384))


# ------------------------------------------------------------------ chunks

def chunk_items(job: GridJob) -> int:
    """Items per chunk of ``job``: ~CHUNK_EVALUATIONS evaluations, where an
    item costs the average number of calls of a group (+ a fixed overhead);
    between 1 and CHUNK_ITEMS. A function of the job alone."""
    groups = max(1, job.n_groups)
    per_item = math.ceil(int(job.positions.size) / groups) + ITEM_OVERHEAD
    return max(1, min(CHUNK_ITEMS, CHUNK_EVALUATIONS // per_item))


def chunk_spans(job: GridJob) -> list[tuple[int, int]]:
    """``job``'s items cut into contiguous chunks ``[a, b)`` of nearly equal
    size (they differ by at most one item), covering every item once."""
    n = job.n_items
    if n == 0:
        return []
    count = math.ceil(n / chunk_items(job))
    bounds = [n * i // count for i in range(count + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(count)]


def chunk_id(job: int, span: tuple[int, int]) -> str:
    return f"j{job}:{span[0]}-{span[1]}"


# ------------------------------------------------------------------ fingerprint

_VOLATILE = frozenset({"progress_token", "run_id", "checkpoint_dir", "restart"})


def _stable(value: Any) -> Any:
    """``value`` without the volatile keys, at any depth."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _frame(h: Any, data: bytes) -> None:
    h.update(len(data).to_bytes(8, "little"))
    h.update(data)


def fingerprint(ds: Dataset, request: Any) -> str:
    """sha256 (hex) of what a run computes: every array of ``ds`` (name,
    dtype, shape, bytes; hashed in place, no copies), its strings (caller
    names decide which calls ``caller_groups`` picks), the canonical JSON of
    ``request`` (sorted keys; no ``progress_token``, ``run_id``,
    ``checkpoint_dir``, ``restart``), the journal version and chunk rule,
    and the worker's version (a new kernel may give other numbers)."""
    from .. import __version__

    h = hashlib.sha256()
    _frame(h, (f"optimizer-worker journal v{JOURNAL_VERSION}; chunks {CHUNK_EVALUATIONS} "
               f"evaluations, <= {CHUNK_ITEMS} items, overhead {ITEM_OVERHEAD}; "
               f"worker {__version__}").encode())
    for f in fields(ds):
        value = getattr(ds, f.name)
        if isinstance(value, np.ndarray):
            _frame(h, f"{f.name} {value.dtype.str} {list(value.shape)}".encode())
            data = value if value.flags.c_contiguous else np.ascontiguousarray(value)
            h.update(data.nbytes.to_bytes(8, "little"))
            h.update(memoryview(data).cast("B") if data.ndim else data.tobytes())
        else:
            _frame(h, f.name.encode())
            _frame(h, msgspec.json.encode(value))
    _frame(h, msgspec.json.encode(_stable(msgspec.to_builtins(request)), order="sorted"))
    return h.hexdigest()
