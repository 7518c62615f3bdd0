"""Plug-ins for tests/test_strategies.py, importable as
``tests.plugin_strategies:<name>``.

The first four are plain-loop readings of SPEC 13's built-ins, written from
its text and not from the kernels (lists and Python floats, every value
recomputed from its definition): the property tests run each built-in
against its reading here, through the plug-in path. The rest break one
output rule each.
"""

from __future__ import annotations

import numpy as np

NOT_CALLABLE = 42


def _out(signals, direction, with_stop):
    """Signals as a plug-in's output, keeping those ``direction`` allows."""
    keep = [s for s in signals if direction == "both" or s[1] == (1 if direction == "long" else -1)]
    out = {"index": np.array([s[0] for s in keep], dtype=np.int64),
           "direction": np.array([s[1] for s in keep], dtype=np.int64)}
    if with_stop:
        out["stop"] = np.array([s[2] for s in keep], dtype=np.float64)
    return out


def _sma(close, n, i):
    if i - n + 1 < 0:
        return None
    total = 0.0
    for j in range(i - n + 1, i + 1):
        total += float(close[j])
    return total / n


def sma_cross(bars, params):
    close, fast, slow = bars.close, params["fast"], params["slow"]
    signals = []
    for i in range(1, len(close)):
        vals = [_sma(close, fast, i - 1), _sma(close, slow, i - 1),
                _sma(close, fast, i), _sma(close, slow, i)]
        if None in vals:
            continue  # a signal needs every value it uses to be defined
        f0, s0, f1, s1 = vals
        above0, above1 = f0 - s0 > 1e-12 * s0, f1 - s1 > 1e-12 * s1
        below0, below1 = f0 - s0 < -1e-12 * s0, f1 - s1 < -1e-12 * s1
        if not above0 and above1:
            signals.append((i, 1, None))
        elif not below0 and below1:
            signals.append((i, -1, None))
    return _out(signals, params.get("direction", "both"), False)


def donchian_breakout(bars, params):
    n = params["lookback"]
    signals = []
    for i in range(n, len(bars.close)):
        hi, lo = max(bars.high[i - n:i]), min(bars.low[i - n:i])
        if bars.close[i] > hi:
            signals.append((i, 1, lo))
        elif bars.close[i] < lo:
            signals.append((i, -1, hi))
    return _out(signals, params.get("direction", "both"), True)


def rsi_values(close, period):
    """Wilder's RSI per SPEC 13; None where undefined (before bar ``period``)."""
    rsi = [None] * len(close)
    changes = [float(close[k]) - float(close[k - 1]) for k in range(1, len(close))]
    if len(changes) < period:
        return rsi
    gain = sum([max(c, 0.0) for c in changes[:period]], 0.0) / period
    loss = sum([max(-c, 0.0) for c in changes[:period]], 0.0) / period
    for i in range(period, len(close)):
        if i > period:
            c = changes[i - 1]  # close[i] - close[i - 1]
            gain = (gain * (period - 1) + max(c, 0.0)) / period
            loss = (loss * (period - 1) + max(-c, 0.0)) / period
        if gain == 0 and loss == 0:
            rsi[i] = 50.0
        elif loss == 0:
            rsi[i] = 100.0
        else:
            rsi[i] = 100 - 100 / (1 + gain / loss)
    return rsi


def rsi_reversion(bars, params):
    rsi = rsi_values(bars.close, params["period"])
    lower, upper = params["lower"], params["upper"]
    signals = []
    for i in range(1, len(rsi)):
        if rsi[i - 1] is None or rsi[i] is None:
            continue
        if rsi[i - 1] < lower <= rsi[i]:
            signals.append((i, 1, None))
        elif rsi[i - 1] > upper >= rsi[i]:
            signals.append((i, -1, None))
    return _out(signals, params.get("direction", "both"), False)


def _swings(x, swing, sign):
    """Indices p whose x[p] is (sign=+1) strictly above each of the swing
    values before and at least each of the swing after; mirrored for -1."""
    out = []
    for p in range(swing, len(x) - swing):
        before = all(sign * x[p] > sign * x[j] for j in range(p - swing, p))
        after = all(sign * x[p] >= sign * x[j] for j in range(p + 1, p + swing + 1))
        if before and after:
            out.append(p)
    return out


def _latest_known(swings, x, swing, i):
    known = [p for p in swings if p + swing + 1 <= i]
    return x[known[-1]] if known else None


def sweep_bos(bars, params):
    high, low, close = list(bars.high), list(bars.low), list(bars.close)
    swing, window = params["swing"], params["window"]
    lows, highs = _swings(low, swing, -1), _swings(high, swing, 1)
    pending = {1: None, -1: None}
    signals = []
    for i in range(len(close)):
        L = _latest_known(lows, low, swing, i)
        H = _latest_known(highs, high, swing, i)
        fired = {}
        s = pending[1]
        if s is not None and s < i <= s + window and H is not None and close[i] > H:
            fired[1] = (i, 1, min(low[s:i + 1]))
        s = pending[-1]
        if s is not None and s < i <= s + window and L is not None and close[i] < L:
            fired[-1] = (i, -1, max(high[s:i + 1]))
        if len(fired) == 2:
            pending = {1: None, -1: None}
        else:
            for d, sig in fired.items():
                signals.append(sig)
                pending[d] = None
        if L is not None and low[i] < L and close[i] > L:
            pending[1] = i
        if H is not None and high[i] > H and close[i] < H:
            pending[-1] = i
    return _out(signals, params.get("direction", "both"), True)


# --- plug-ins breaking one rule each -------------------------------------


def echo(bars, params):
    """Signals at the bars listed in params (a test's way to pick them)."""
    params["touched"] = True  # must not reach the caller's dict
    out = {"index": np.array(params["index"]), "direction": np.array(params["direction"])}
    if "stop" in params:
        out["stop"] = np.array(params["stop"], dtype=float)
    return out


def raw(bars, params):
    """Whatever ``params["out"]`` is, as the output."""
    return params["out"]


def raises(bars, params):
    raise RuntimeError("boom")


def writes(bars, params):
    bars.close[0] = 0.0  # must fail: the bars are read-only
    return {"index": [], "direction": []}
