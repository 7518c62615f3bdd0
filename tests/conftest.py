"""Shared fixtures. Async tests run on anyio's own pytest plugin (the PyPI
package named pytest-anyio is an empty stub), on the asyncio backend: the
daemon runs on asyncio."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def anyio_backend():
    return "asyncio"
