"""Seeded synthetic price bars for SPEC 13's strategies: one-minute OHLCV
of a few symbols, alternating trending and ranging regimes, so that longs
pay somewhere, shorts somewhere else and mean reversion in between.

Each symbol's log price is the sum of

- a random walk whose drift and volatility switch by regime: ``up`` and
  ``down`` trends (a steady drift several times the noise over the
  regime's length) and ``range`` stretches (no drift, a quarter of the
  noise);
- an AR(1) (Ornstein-Uhlenbeck) component fed only in ``range``
  stretches, so prices there swing around a level and come back;

times an intraday volatility cycle. Regime lengths are exponential (mean
about a day and a half, at least 6 hours); a trend's direction leans
against the drift so far, so 90 days stay within a few multiples of the
starting price. Bars are continuous: each opens near the previous close
(a small gap), high and low wrap open and close, volume grows with the
bar's move. Symbols are generated independently (seed ``[seed, i]``), so
symbol ``i`` is the same whatever ``symbols`` is.

Used by ``optimizer-worker demo --bars DIR``, ``examples/strategy.yaml``
and ``bench/bench_spec13.py``. Everything is vectorized numpy except
loops over regimes (dozens) and AR(1) blocks (hundreds).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

_MINUTE = 60_000
_DAY_MIN = 1_440
_START_MS = 1_767_225_600_000          # 2026-01-01T00:00:00Z, as worker._data.synthetic
_NAMES = ("ALPHA", "BRAVO", "CHARLIE", "DELTA", "ECHO", "FOXTROT", "GOLF", "HOTEL")
COLUMNS = ("ts_ms", "open", "high", "low", "close", "volume")

_UP, _DOWN, _RANGE = 0, 1, 2
_REGIME_MEAN_MIN = 2_160               # mean regime length: 1.5 days
_REGIME_MIN_MIN = 360                  # at least 6 hours
_AR_BLOCK = 512                        # AR(1) evaluated in blocks (phi**-512 stays finite)


def symbol_names(n: int) -> list[str]:
    """The demo's symbol names, in byte order."""
    names = list(_NAMES[:n]) + [f"SYM{i:03d}" for i in range(len(_NAMES), n)]
    return sorted(names, key=str.encode)


def demo_bars(symbols: int = 4, days: float = 90, seed: int = 7) -> dict[str, dict[str, np.ndarray]]:
    """``{symbol: {ts_ms, open, high, low, close, volume}}`` of one-minute
    bars, ``days * 1440`` each, in byte order of the symbol names."""
    if symbols < 1:
        raise ValueError(f"symbols must be >= 1, got {symbols}")
    n = int(round(days * _DAY_MIN))
    if n < 1:
        raise ValueError(f"days must give at least one bar, got {days}")
    names = list(_NAMES[:symbols]) + [f"SYM{i:03d}" for i in range(len(_NAMES), symbols)]
    out = {name: _symbol_bars(np.random.default_rng([seed, i]), n) for i, name in enumerate(names)}
    return {name: out[name] for name in sorted(out, key=str.encode)}


def _regimes(rng: np.random.Generator, n: int, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bar: regime kind, drift per minute, volatility multiplier."""
    count = n // _REGIME_MIN_MIN + 2            # enough segments to cover n bars
    lengths = np.maximum(rng.exponential(_REGIME_MEAN_MIN, count).astype(np.int64),
                         _REGIME_MIN_MIN)
    cut = int(np.searchsorted(np.cumsum(lengths), n)) + 1
    lengths = lengths[:cut]
    kinds = rng.choice(3, size=cut, p=[0.3, 0.3, 0.4])
    strength = rng.uniform(0.03, 0.08, cut)     # drift in units of the minute's noise
    lean = rng.random(cut)
    drift = np.zeros(cut)
    level = 0.0
    for k in range(cut):                        # dozens of regimes: a plain loop
        if kinds[k] == _RANGE:
            continue
        # A trend leans against the way the price has gone so far (p = 0.65).
        sign = -np.sign(level) if level != 0 and lean[k] < 0.65 else (1.0 if kinds[k] == _UP else -1.0)
        kinds[k] = _UP if sign > 0 else _DOWN
        drift[k] = sign * strength[k] * sigma
        level += drift[k] * lengths[k]
    vol = np.where(kinds == _RANGE, rng.uniform(0.5, 1.0, cut), rng.uniform(0.8, 1.6, cut))
    per_bar = (np.repeat(a, lengths)[:n] for a in (kinds, drift, vol))
    return tuple(per_bar)  # type: ignore[return-value]


def _ar1(shocks: np.ndarray, phi: float) -> np.ndarray:
    """``y[t] = phi * y[t-1] + shocks[t]`` (y[-1] = 0), in blocks: within a
    block ``y = phi**t * cumsum(shocks * phi**-t)`` plus the carried state."""
    n = shocks.size
    out = np.empty(n)
    powers = phi ** np.arange(_AR_BLOCK, dtype=np.float64)
    inverse = 1.0 / powers
    state = 0.0
    for start in range(0, n, _AR_BLOCK):
        s = shocks[start:start + _AR_BLOCK]
        m = s.size
        y = powers[:m] * (np.cumsum(s * inverse[:m]) + state * phi)
        out[start:start + m] = y
        state = y[-1]
    return out


def _symbol_bars(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    sigma = rng.uniform(4e-4, 1.2e-3)           # per-minute volatility
    price0 = 10.0 ** rng.uniform(0.5, 4.5)
    kinds, drift, vol_mult = _regimes(rng, n, sigma)
    minute = np.arange(n, dtype=np.int64)
    intraday = 1.0 + 0.3 * np.sin(2 * np.pi * (minute % _DAY_MIN) / _DAY_MIN + rng.uniform(0, 6.3))
    vol = sigma * vol_mult * intraday
    ranging = kinds == _RANGE
    walk_scale = np.where(ranging, 0.25, 1.0)
    steps = drift + vol * walk_scale * rng.standard_normal(n)
    tau = rng.uniform(60, 240)                  # mean-reversion time, minutes
    swing = _ar1(np.where(ranging, vol * 1.5 * rng.standard_normal(n), 0.0), 1.0 - 1.0 / tau)
    log_close = np.cumsum(steps) + swing
    close = price0 * np.exp(log_close - log_close[0])
    open_ = np.empty(n)
    open_[0] = price0 * np.exp(-steps[0])
    open_[1:] = close[:-1] * np.exp(0.1 * vol[1:] * rng.standard_normal(n - 1))
    wick = np.abs(rng.standard_normal((2, n))) * vol * 0.6
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    move = np.abs(np.log(close / open_)) / vol
    volume = rng.lognormal(np.log(50.0), 0.5, n) * (1.0 + move) * (1.0 + 0.5 * ~ranging)
    return {"ts_ms": _START_MS + minute * _MINUTE, "open": open_, "high": high, "low": low,
            "close": close, "volume": volume}


def write_demo_bars(directory: str | os.PathLike, *, symbols: int = 4, days: float = 90,
                    seed: int = 7) -> list[tuple[Path, int]]:
    """One ``<SYMBOL>.parquet`` per symbol in ``directory`` (created if
    missing) with columns ts_ms (int64), open, high, low, close, volume
    (float64), written with pyarrow's defaults. Returns (path, bars) of each."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, cols in demo_bars(symbols, days, seed).items():
        path = directory / f"{name}.parquet"
        pq.write_table(pa.table({c: cols[c] for c in COLUMNS}), path)
        written.append((path, int(cols["ts_ms"].size)))
    return written
