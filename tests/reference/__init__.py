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

# SPEC 12 (robust optimization)
from .robust import (  # noqa: E402
    base_interval_ms,
    fold_plan,
    pbo_matrix,
    robust_optimize,
    simulate_capital_each,
    walk_forward,
)
from .robust_stats import (  # noqa: E402
    average_ranks,
    deflated_sharpe,
    pbo_stats,
    plateau_values,
    sharpe,
    spearman,
)

__all__ += [
    "base_interval_ms", "fold_plan", "pbo_matrix", "robust_optimize",
    "simulate_capital_each", "walk_forward", "average_ranks", "deflated_sharpe",
    "pbo_stats", "plateau_values", "sharpe", "spearman",
]

# SPEC 13 (strategies on bars)
from .strategy import (  # noqa: E402
    base_interval,
    optimize_strategy,
    parse_timeframe,
    rejected,
    resample,
    signals,
    simulate_strategy,
    strategy_calls,
)

__all__ += [
    "base_interval", "optimize_strategy", "parse_timeframe", "rejected",
    "resample", "signals", "simulate_strategy", "strategy_calls",
]
