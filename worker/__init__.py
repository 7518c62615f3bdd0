"""The optimizer worker: exact, fast TP/SL/hold grid search over trading calls.

Public surface: load a dataset, then simulate, optimize, optimize per caller
or evaluate a group; load bars and search a strategy (SPEC 13). The daemon
and the CLI are built on these.
"""

from ._core.dataset import Dataset
from ._core.bars import BarSet
from ._core.optimize import simulate
from ._core.strategy_search import simulate_strategy
from ._data.bars import load_bars
from ._data.files import dataset_from_files
from ._data.loaders import dataset_from_columnar, dataset_from_rows
from ._data.synthetic import synthetic_dataset
from ._errors import (
    CheckpointMismatch,
    InvalidDataset,
    InvalidParams,
    RequestCancelled,
    ResourceLimit,
    UnknownDataset,
    WorkerError,
)
from ._run.library import (
    grouped_eval,
    optimize,
    optimize_per_caller,
    optimize_strategy,
    walk_forward,
)

__version__ = "0.1.0"

__all__ = [
    "BarSet", "CheckpointMismatch", "Dataset", "InvalidDataset", "InvalidParams", "RequestCancelled",
    "ResourceLimit", "UnknownDataset", "WorkerError", "dataset_from_columnar",
    "dataset_from_files", "dataset_from_rows", "grouped_eval", "optimize",
    "load_bars", "optimize_per_caller", "optimize_strategy", "simulate", "simulate_strategy",
    "synthetic_dataset", "walk_forward",
]
