"""Seeded synthetic datasets of memecoin-like calls: volatile random walks,
some pumps, some rugs, callers of different skill, bursts of calls in the
same millisecond. Used by ``optimizer-worker demo``, ``bench/`` and tests.
"""

from __future__ import annotations

import numpy as np

from .._core.dataset import CandleColumns, Dataset, KeyColumn, build_dataset

_MINUTE = 60_000
_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def synthetic_columns(n_calls: int = 2_000, n_candles: int = 2_880, n_callers: int = 25,
                      seed: int = 7, span_days: float = 30.0) -> dict:
    """Raw columns: calls (one series per call, keyed by call id) and candles."""
    rng = np.random.default_rng(seed)
    skill = rng.normal(-1e-4, 2e-4, n_callers)        # per-minute drift by caller
    caller = rng.integers(0, n_callers, n_calls)
    ts = _START_MS + np.sort(rng.integers(0, int(span_days * 86_400_000), n_calls))
    burst = rng.random(n_calls) < 0.05                 # some calls share a millisecond
    ts[1:][burst[1:]] = ts[:-1][burst[1:]]
    ts = np.maximum.accumulate(ts)
    vol = rng.uniform(0.003, 0.015, n_calls)[:, None]
    steps = rng.standard_normal((n_calls, n_candles)) * vol + skill[caller][:, None]
    _add_pumps_and_rugs(rng, steps)
    log_close = np.cumsum(steps, axis=1)
    close = np.exp(log_close - log_close[:, :1])        # the alert candle closes at 1.0
    open_ = np.empty_like(close)
    open_[:, 0] = close[:, 0] * np.exp(-steps[:, 0])
    open_[:, 1:] = close[:, :-1]
    wick = np.abs(rng.standard_normal((2, n_calls, n_candles))) * vol * 0.7
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    price_scale = 10.0 ** rng.uniform(-6, -2, n_calls)[:, None]  # memecoin prices
    # The series starts on the minute of the alert, so the alert's own candle
    # is the entry when the alert is on the minute, the next one otherwise.
    first = (ts // _MINUTE) * _MINUTE
    candle_ts = first[:, None] + np.arange(n_candles, dtype=np.int64)[None, :] * _MINUTE
    ids = [f"call-{i:06d}" for i in range(n_calls)]
    return {
        "ids": ids,
        "callers": [f"caller-{c:03d}" for c in caller.tolist()],
        "mints": [f"mint-{i:06d}" for i in range(n_calls)],
        "ts_ms": ts.astype(np.int64),
        "keys": np.repeat(np.arange(n_calls), n_candles),
        "key_names": ids,
        "candle_ts": candle_ts.ravel(),
        "open": (open_ * price_scale).ravel(),
        "high": (high * price_scale).ravel(),
        "low": (low * price_scale).ravel(),
        "close": (close * price_scale).ravel(),
        "volume": rng.exponential(1_000.0, n_calls * n_candles),
    }


def _add_pumps_and_rugs(rng: np.random.Generator, steps: np.ndarray) -> None:
    """In place: ~15% of calls pump 1.5-4x over half an hour, ~25% rug 70-95%."""
    n_calls, n_candles = steps.shape
    pump = np.flatnonzero(rng.random(n_calls) < 0.15)
    at = rng.integers(1, max(2, n_candles // 3), pump.size)
    size = np.log(rng.uniform(1.5, 4.0, pump.size)) / 30
    for i, a, s in zip(pump.tolist(), at.tolist(), size.tolist()):
        steps[i, a:a + 30] += s
        steps[i, a + 30:a + 330] -= s * 30 / 300 * rng.uniform(0.3, 1.0)  # fade
    rug = np.flatnonzero(rng.random(n_calls) < 0.25)
    at = rng.integers(1, n_candles, rug.size)
    steps[rug, at] += np.log(rng.uniform(0.05, 0.3, rug.size))


def synthetic_dataset(n_calls: int = 2_000, n_candles: int = 2_880, n_callers: int = 25,
                      seed: int = 7) -> Dataset:
    c = synthetic_columns(n_calls, n_candles, n_callers, seed)
    return from_synthetic_columns(c)


def from_synthetic_columns(c: dict) -> Dataset:
    keys = KeyColumn(names=c["key_names"], chunks=[(c["keys"], None)])
    candles = CandleColumns(keys=keys, ts_ms=c["candle_ts"], open=c["open"], high=c["high"],
                            low=c["low"], close=c["close"], volume=c["volume"])
    return build_dataset(call_ids=c["ids"], call_callers=c["callers"], call_mints=c["mints"],
                         call_ts_ms=c["ts_ms"], candles=candles, series_key="call_id",
                         on_bad_series="error", candles_sorted=True)
