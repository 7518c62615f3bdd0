"""What every plot of the run directory shares: rendering a figure to a PNG
file headlessly, and tick labels that stay distinct at any range.

Matplotlib's object-oriented API only (``Figure`` + ``FigureCanvasAgg``, no
pyplot): no global backend switch, no figure registry, so plots can be drawn
from any thread of the daemon without touching anyone else's state.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .report import write_atomic

DPI = 110


def save_png(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)  # attaches itself to the figure: render with Agg, no backend lookup
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return write_atomic(path, buf.getvalue())


def tick_format(span: float, *, scale: float = 1.0, suffix: str = "") -> FuncFormatter:
    """Thousands separators, and as many decimals as the range needs for
    neighbouring ticks to differ (a tiny range would otherwise repeat a label)."""
    span *= scale
    digits = min(6, max(0, 1 - math.floor(math.log10(span)))) if span > 0 else 0
    return FuncFormatter(lambda v, _: f"{v * scale:,.{digits}f}{suffix}")
