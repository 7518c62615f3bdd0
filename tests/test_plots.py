"""The equity curve's pixels show its trades: the line climbs when the trades
win and falls when they lose, and a drawdown is painted where there is one
(not only a PNG of the right size)."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from worker._report.plots import equity_curve

T0 = 1_700_000_000_000
HOUR = 3_600_000
EQUITY_BLUE = (31, 119, 180)     # "#1f77b4", the equity line


def trades(pnls):
    return [{"entry_ts_ms": T0 + i * HOUR, "exit_ts_ms": T0 + (i + 1) * HOUR, "pnl": pnl}
            for i, pnl in enumerate(pnls)]


def render(tmp_path, pnls, mode="capital"):
    path = equity_curve(trades(pnls), 10_000.0, tmp_path, mode)
    return (matplotlib.image.imread(path)[..., :3] * 255).round().astype(int)


def near(rgb, colour, tol=12):
    return np.abs(rgb - np.array(colour)).max(axis=-1) <= tol


def drawdown_pixels(rgb):
    """Pixels of the drawdown fills: "#d62728" at alpha 0.25 and 0.4 over white
    (pink, much more red than green or blue, green about equal to blue)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return int(((r - g > 40) & (np.abs(g - b) < 12)).sum())


def rise(rgb):
    """How far the equity line climbs, in pixel rows, from its left end to its
    right end (image rows grow downwards). The line is the blue of the widest
    span of columns; the legend's short sample of it barely moves the means."""
    rows, cols = np.nonzero(near(rgb, EQUITY_BLUE))
    left, right = np.percentile(cols, [10, 90])
    return rows[cols <= left].mean() - rows[cols >= right].mean()


@pytest.mark.parametrize("mode", ["capital", "per_trade"])
def test_the_line_climbs_with_winners_and_falls_with_losers(tmp_path, mode):
    up = rise(render(tmp_path, [100.0] * 40, mode))
    down = rise(render(tmp_path, [-100.0] * 40, mode))
    assert up > 100 and down < -100  # most of the plot's height, each way


def test_a_drawdown_is_painted_only_where_there_is_one(tmp_path):
    # Up 2,000, then down 3,000 (a 25 % drawdown from the peak), then up again.
    dipped = render(tmp_path, [200.0] * 10 + [-300.0] * 10 + [200.0] * 10)
    steady = render(tmp_path, [100.0] * 30)
    assert drawdown_pixels(dipped) > 50_000
    # A curve that never falls: only the legend's swatch and a hairline at 0 %.
    assert drawdown_pixels(steady) < 5_000


def test_different_trades_give_different_pictures(tmp_path):
    a = render(tmp_path, [100.0, -50.0, 80.0] * 10)
    b = render(tmp_path, [100.0, -50.0, 80.0] * 10)
    c = render(tmp_path, [-50.0, 100.0, 80.0] * 10)
    assert np.array_equal(a, b)                       # drawn the same way every time
    assert a.shape == c.shape and not np.array_equal(a, c)
