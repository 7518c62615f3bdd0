"""The optimizer worker: exact, fast TP/SL/hold grid search over trading calls.

Public surface: load a dataset, then simulate, optimize, optimize per caller
or evaluate a group. The daemon and the CLI are built on these.
"""

from ._core.dataset import Dataset
from ._core.optimize import simulate
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
from ._run.library import grouped_eval, optimize, optimize_per_caller, walk_forward

__version__ = "0.1.0"

__all__ = [
    "CheckpointMismatch", "Dataset", "InvalidDataset", "InvalidParams", "RequestCancelled",
    "ResourceLimit", "UnknownDataset", "WorkerError", "dataset_from_columnar",
    "dataset_from_files", "dataset_from_rows", "grouped_eval", "optimize",
    "optimize_per_caller", "simulate", "synthetic_dataset", "walk_forward",
]
