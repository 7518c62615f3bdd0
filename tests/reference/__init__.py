"""Reference implementation of SPEC sections 2-6 and 11 (slow, obvious, for tests)."""

from .optimizer import grouped_eval, optimize, optimize_per_caller
from .simulator import simulate_capital, simulate_per_trade

__all__ = [
    "simulate_capital",
    "simulate_per_trade",
    "optimize",
    "optimize_per_caller",
    "grouped_eval",
]
