"""Hand-computed SPEC 13 trades through the worker (the strategies' own
golden cases are in ``test_strategies.py``; the reference has its own in
``test_strategy_reference.py``). One symbol of 1-minute bars, one signal
from a plug-in at bar 0: its call is at ``ts[0] + 1m``, entered at the close
of bar 1 (100), so the exits are decided by bar 2. Costs: fee 30 + slippage
10 bps a side (0.8 % of the size); size = min(200 / (risk / 100), 4 % of
10,000, 10,000) = 400 whenever risk >= 0.5."""

from __future__ import annotations

import numpy as np
import pytest

import worker
from worker._core.bars import build_bars

MIN = 60_000


def one_signal(bars, params):
    """A plug-in: one signal at bar 0, ``dir`` +1/-1, ``stop`` (0: none)."""
    out = {"index": np.array([0]), "direction": np.array([params["dir"]])}
    if params["stop"]:
        out["stop"] = np.array([float(params["stop"])])
    return out


def _bars(bar2):
    """Bars 0, 1 (close 100) and ``bar2`` = (open, high, low, close), then a
    quiet bar."""
    rows = [(100.0, 100.5, 99.5, 100.0), (100.0, 100.5, 99.5, 100.0), bar2,
            (bar2[3], bar2[3], bar2[3], bar2[3])]
    o, h, lo, c = (np.array(x) for x in zip(*rows))
    return build_bars(("X",), np.array([0, 4]), np.arange(4, dtype=np.int64) * MIN, o, h, lo, c,
                      np.ones(4))


def _run(bar2, *, d, stop=0, mode="capital", **exits):
    params = {"timeframe": "1m", "dir": d, "stop": stop, "sl_pct": 0.02, "tp_r": 2.0,
              "max_hold_hrs": 48, **exits}
    return worker.simulate_strategy(_bars(bar2), strategy="tests.test_strategy_golden:one_signal",
                                    params=params, mode=mode)


def test_short_take_profit():
    # risk = 100 * 0.02 = 2; tp = 100 - 2 * 2 = 96; low 95.5 reaches it (open 99 does not).
    # pnl = 400 * -1 * (96 / 100 - 1) - 400 * 0.008 = 16 - 3.2 = 12.8
    m = _run((99.0, 101.0, 95.5, 97.0), d=-1)
    (t,) = m.completed_trades
    assert (t.direction, t.exit_reason, t.exit_px) == ("short", "take_profit", 96.0)
    assert (t.call_id, t.symbol, t.entry_px, t.size) == ("X:1m:0", "X", 100.0, 400.0)
    assert t.pnl == pytest.approx(12.8, rel=1e-12)
    assert m.final_capital == pytest.approx(10_012.8, rel=1e-12)


def test_short_stopped_by_a_gap_fills_at_the_open():
    # sl = 100 + 2 = 102; bar 2 opens at 103, above it: gap_fill "open" (the
    # strategies' default) exits there. pnl = 400 * -1 * 0.03 - 3.2 = -15.2
    (t,) = _run((103.0, 104.0, 101.0, 103.5), d=-1).completed_trades
    assert (t.exit_reason, t.exit_px) == ("stop_loss", 103.0)
    assert t.pnl == pytest.approx(-15.2, rel=1e-12)


def test_short_with_a_structural_stop():
    # stop 101 above the entry: risk = 1, size = min(200 / 0.01, 400, ..) = 400,
    # tp = 100 - 2 * 1 = 98, reached by low 97.9. pnl = 400 * 0.02 - 3.2 = 4.8
    (t,) = _run((99.5, 100.2, 97.9, 98.5), d=-1, stop=101).completed_trades
    assert (t.exit_reason, t.exit_px) == ("take_profit", 98.0)
    assert t.pnl == pytest.approx(4.8, rel=1e-12)


def test_a_stop_on_the_wrong_side_is_bad_stop():
    # A short's stop at 99 is below its entry (100): no trade.
    m = _run((99.5, 100.2, 97.9, 98.5), d=-1, stop=99)
    assert m.trades_executed == 0 and m.completed_trades == []
    assert m.skipped["bad_stop"] == 1 and m.trades_skipped == 1


def test_long_trailing_stop_in_r():
    # Long, risk 2, trail_r 0.5: the trail is peak - 1. Bar 2 is tested
    # against the peak before it (the entry, 100): trail 99; its low 99.2
    # does not reach it, its high 103 raises the peak. Bar 3 (all 101.5) is
    # tested against 103 - 1 = 102: it opens below, so (gap "open") it exits
    # at 101.5. pnl = 400 * 0.015 - 3.2 = 2.8
    (t,) = _run((100.0, 103.0, 99.2, 101.5), d=1, tp_r=10.0, trail_r=0.5).completed_trades
    assert (t.direction, t.exit_reason, t.exit_px) == ("long", "trailing_stop", 101.5)
    assert t.pnl == pytest.approx(2.8, rel=1e-12)


def test_per_trade_r_of_a_short():
    # ret = -1 * (96 / 100 - 1) - 0.008 = 0.032; r = ret / (2 / 100) = 1.6
    m = _run((99.0, 101.0, 95.5, 97.0), d=-1, mode="per_trade")
    assert m.total_return == pytest.approx(0.032, rel=1e-12)
    assert m.avg_r == pytest.approx(1.6, rel=1e-12)
