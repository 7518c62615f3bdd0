"""Shared fixtures. Async tests run on anyio's own pytest plugin (the PyPI
package named pytest-anyio is an empty stub), on the asyncio backend: the
daemon runs on asyncio."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    """A dataset big enough for seconds of pool work (2,000 calls x 600
    candles), as Parquet files: ``loadDataset`` params for the daemon tests."""
    from worker._data.files import write_dataset_files
    from worker._data.synthetic import synthetic_dataset

    d = tmp_path_factory.mktemp("data")
    ds = synthetic_dataset(n_calls=2_000, n_candles=600, n_callers=8, seed=11)
    calls, candles = str(d / "calls.parquet"), str(d / "candles.parquet")
    write_dataset_files(ds, calls, candles)
    return {"calls_path": calls, "candles_path": candles}
