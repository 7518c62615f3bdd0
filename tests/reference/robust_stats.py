"""Reference statistics of SPEC section 12 (pure functions, plain Python).

Ranks, Spearman, medians and quantiles, CSCV's probability of backtest
overfitting, the Sharpe ratio and the deflated Sharpe ratio, plateaus, stress
lanes and the worst lane, the base interval and the fold windows.  Slow and
obvious on purpose: every formula is written the way SPEC 12 writes it.

Objective values may be ``None`` (SPEC 12, "Null objectives"): a ``None``
ranks below every number in either direction, ties among ``None``s by grid
order; aggregates skip ``None``s and are ``None`` when every value is.
"""

import itertools
import math
import statistics

EULER_GAMMA = 0.5772156649  # SPEC 12 writes g = 0.5772156649
DAY_MS = 86_400_000

LANE_KEYS = ("taker_fee_bps", "slippage_bps", "entry_delay_candles", "gap_fill")
_BASIC = [{"name": "baseline"},
          {"name": "worse", "taker_fee_bps": 50, "slippage_bps": 50}]
_FULL = _BASIC + [{"name": "ugly", "slippage_bps": 150},
                  {"name": "latency_1", "entry_delay_candles": 1},
                  {"name": "gaps", "gap_fill": "open"}]
_ADVERSARIAL = _FULL + [{"name": "latency_3", "entry_delay_candles": 3},
                        {"name": "fee_spike", "taker_fee_bps": 150},
                        {"name": "all", "taker_fee_bps": 75, "slippage_bps": 150,
                         "entry_delay_candles": 2, "gap_fill": "open"}]
STRESS_PRESETS = {"basic": _BASIC, "full": _FULL, "adversarial": _ADVERSARIAL}


# --------------------------------------------------------------------------
# Ranks
# --------------------------------------------------------------------------

def average_ranks(keys):
    """Rank 1 for the smallest key; equal keys share the average of the ranks
    they span (1-based)."""
    order = sorted(range(len(keys)), key=lambda i: keys[i])
    ranks = [0.0] * len(keys)
    start = 0
    while start < len(order):
        stop = start
        while stop + 1 < len(order) and keys[order[stop + 1]] == keys[order[start]]:
            stop += 1
        shared = (start + 1 + stop + 1) / 2
        for position in range(start, stop + 1):
            ranks[order[position]] = shared
        start = stop + 1
    return ranks


def best_first_keys(values, minimize):
    """Sort keys putting the best value first: numbers by value (descending
    when maximizing), then every ``None``, each its own key in list order
    (grid order), so ``None``s never tie with each other."""
    keys = []
    for i, v in enumerate(values):
        if v is None:
            keys.append((1, 0.0, i))
        else:
            keys.append((0, v if minimize else -v, 0))
    return keys


def objective_ranks(values, minimize):
    """Average ranks with r = 1 the best (SPEC 12, per fold)."""
    return average_ranks(best_first_keys(values, minimize))


def rank_pct(rank, n):
    """test_rank_pct = (N - r) / (N - 1), 1 when N is 1."""
    if n == 1:
        return 1.0
    return (n - rank) / (n - 1)


def pearson(xs, ys):
    n = len(xs)
    mx = sum(xs) / n
    my = sum(ys) / n
    sxy = 0.0
    sxx = 0.0
    syy = 0.0
    for x, y in zip(xs, ys):
        sxy += (x - mx) * (y - my)
        sxx += (x - mx) ** 2
        syy += (y - my) ** 2
    return sxy / math.sqrt(sxx * syy)


def spearman(train_values, test_values, usable, minimize):
    """Pearson correlation of average ranks over the usable points.

    Decisions (SPEC silent): the ranks are taken among the usable points only
    (the textbook Spearman of that subset), and a point whose train or test
    objective is None is not usable (aggregates skip nulls).  None below 3
    points or when either side is constant.
    """
    idx = [i for i in range(len(train_values))
           if usable[i] and train_values[i] is not None and test_values[i] is not None]
    if len(idx) < 3:
        return None
    a = [train_values[i] for i in idx]
    b = [test_values[i] for i in idx]
    if len(set(a)) == 1 or len(set(b)) == 1:
        return None
    return pearson(objective_ranks(a, minimize), objective_ranks(b, minimize))


# --------------------------------------------------------------------------
# Medians and quantiles
# --------------------------------------------------------------------------

def median_skip_null(values):
    numbers = [v for v in values if v is not None]
    if not numbers:
        return None
    return statistics.median(numbers)  # even count: mean of the middle two


def mean_skip_null(values):
    numbers = [v for v in values if v is not None]
    if not numbers:
        return None
    total = 0.0
    for v in numbers:  # left to right
        total += v
    return total / len(numbers)


def quantile_linear(values, q):
    """numpy.quantile's default ("linear"): position q * (n - 1) in the
    sorted values, linear between the two order statistics around it."""
    a = sorted(values)
    pos = q * (len(a) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(a) - 1)
    frac = pos - lo
    return a[lo] + (a[hi] - a[lo]) * frac


# --------------------------------------------------------------------------
# Probability of backtest overfitting (CSCV)
# --------------------------------------------------------------------------

def _mean_over(row_of_block, blocks):
    total = 0.0
    for b in blocks:  # increasing block order, left to right
        total += row_of_block[b]
    return total / len(blocks)


def pbo_stats(R):
    """R[b][p]: total_return of grid point p (grid order) on block b alone.

    Returns {pbo, prob_oos_loss, logit_quartiles, slope}.
    """
    S = len(R)
    N = len(R[0])
    if S < 2 or S % 2:
        raise ValueError("pbo needs an even number of blocks >= 2")
    columns = [[R[b][p] for b in range(S)] for p in range(N)]
    logits, ins, outs = [], [], []
    for chosen in itertools.combinations(range(S), S // 2):  # lexicographic
        in_blocks = list(chosen)
        out_blocks = [b for b in range(S) if b not in chosen]
        in_means = [_mean_over(columns[p], in_blocks) for p in range(N)]
        out_means = [_mean_over(columns[p], out_blocks) for p in range(N)]
        best = 0
        for p in range(1, N):  # strictly higher wins: ties by grid order
            if in_means[p] > in_means[best]:
                best = p
        rank = average_ranks(out_means)[best]  # rank 1 the worst
        w = rank / (N + 1)
        logits.append(math.log(w / (1 - w)))
        ins.append(in_means[best])
        outs.append(out_means[best])
    n = len(logits)
    return {
        "pbo": sum(1 for x in logits if x <= 0) / n,
        "prob_oos_loss": sum(1 for y in outs if y < 0) / n,
        "logit_quartiles": [quantile_linear(logits, q) for q in (0.25, 0.5, 0.75)],
        "slope": ols_slope(ins, outs),
    }


def ols_slope(xs, ys):
    """Least-squares slope with intercept; None when the xs do not vary."""
    if len(set(xs)) <= 1:
        return None
    n = len(xs)
    mx = sum(xs) / n
    my = sum(ys) / n
    sxy = 0.0
    sxx = 0.0
    for x, y in zip(xs, ys):
        sxy += (x - mx) * (y - my)
        sxx += (x - mx) ** 2
    return sxy / sxx


# --------------------------------------------------------------------------
# Sharpe and deflated Sharpe
# --------------------------------------------------------------------------

def sharpe(returns):
    """mean / std (ddof 1) of per-trade returns; None when T < 2 or
    std <= 1e-12 * max(1, |mean|)."""
    T = len(returns)
    if T < 2:
        return None
    total = 0.0
    for r in returns:
        total += r
    mean = total / T
    ss = 0.0
    for r in returns:
        ss += (r - mean) ** 2
    std = math.sqrt(ss / (T - 1))
    if std <= 1e-12 * max(1.0, abs(mean)):
        return None
    return mean / std


def central_moment(returns, k):
    T = len(returns)
    mean = sum(returns) / T
    total = 0.0
    for r in returns:
        total += (r - mean) ** k
    return total / T


def deflated_sharpe(best_returns, feasible_sharpes):
    """SPEC 12's deflated Sharpe of the best point.

    best_returns: the best point's per-trade returns (entry order), or None
    when there is no best point; feasible_sharpes: the ``sharpe`` of every
    feasible point (None entries are skipped: N counts those with one).
    """
    if best_returns is None:
        return None
    sharpes = [s for s in feasible_sharpes if s is not None]
    N = len(sharpes)
    T = len(best_returns)
    if N < 2 or T < 3:
        return None
    sr = sharpe(best_returns)
    if sr is None:
        return None
    V = statistics.variance(sharpes)  # ddof = 1
    g = EULER_GAMMA
    Z = statistics.NormalDist().inv_cdf
    sr0 = math.sqrt(V) * ((1 - g) * Z(1 - 1 / N) + g * Z(1 - 1 / (N * math.e)))
    m2 = central_moment(best_returns, 2)
    g3 = central_moment(best_returns, 3) / m2 ** 1.5
    g4 = central_moment(best_returns, 4) / m2 ** 2
    arg = 1 - g3 * sr + (g4 - 1) / 4 * sr ** 2
    if not arg > 0:
        return None
    x = (sr - sr0) * math.sqrt(T - 1) / math.sqrt(arg)
    return math.erfc(-x / math.sqrt(2)) / 2


# --------------------------------------------------------------------------
# Plateaus and stress lanes
# --------------------------------------------------------------------------

def plateau_values(indices, values, feasible, radius=1, stat="mean", minimize=False):
    """indices[p]: point p's index along every grid dimension (a tuple).

    A feasible point's plateau is its objective aggregated over the feasible
    points within ``radius`` along every dimension (itself included), nulls
    skipped; ``min`` is the worst (the largest when minimizing).  Infeasible
    points: None.  The mean sums in grid order, left to right.
    """
    if stat not in ("mean", "min"):
        raise ValueError("plateau stat must be 'mean' or 'min'")
    out = []
    for p, own in enumerate(indices):
        if not feasible[p]:
            out.append(None)
            continue
        near = [values[q] for q, other in enumerate(indices)
                if feasible[q] and values[q] is not None
                and all(abs(a - b) <= radius for a, b in zip(own, other))]
        if not near:
            out.append(None)
        elif stat == "mean":
            out.append(mean_skip_null(near))
        else:
            out.append(max(near) if minimize else min(near))
    return out


def worst_lane(lanes, minimize):
    """(name, objective) of the worst lane: the lowest value when maximizing,
    the highest when minimizing; None is the worst; ties: the earlier lane.
    ``lanes`` is a list of (name, objective) in lane order."""
    worst_name, worst_value = lanes[0]
    for name, value in lanes[1:]:
        if worst_value is None:
            break  # nothing is worse than a null, and ties keep the earlier
        if value is None or (value > worst_value if minimize else value < worst_value):
            worst_name, worst_value = name, value
    return worst_name, worst_value


def stress_lanes(stress):
    if stress is None:
        return None
    if isinstance(stress, str):
        if stress not in STRESS_PRESETS:
            raise ValueError("unknown stress preset %r" % stress)
        return [dict(lane) for lane in STRESS_PRESETS[stress]]
    names = set()
    for lane in stress:
        if not lane.get("name") or lane["name"] in names:
            raise ValueError("every stress lane needs a unique name")
        names.add(lane["name"])
        for key in lane:
            if key != "name" and key not in LANE_KEYS:
                raise ValueError("unknown stress lane key %r" % key)
    return [dict(lane) for lane in stress]


def lane_setup(params, config, lane):
    """A lane's delay adds to the point's own; fees, slippage, gap_fill replace."""
    p = dict(params)
    c = dict(config or {})
    if lane.get("entry_delay_candles") is not None:
        p["entry_delay_candles"] = p.get("entry_delay_candles", 0) + lane["entry_delay_candles"]
    for key in ("taker_fee_bps", "slippage_bps", "gap_fill"):
        if lane.get(key) is not None:
            c[key] = lane[key]
    return p, c


# --------------------------------------------------------------------------
# Time: the base interval and fold windows
# --------------------------------------------------------------------------

def base_interval_ms(series):
    """The most common gap between consecutive candles over every series,
    the smallest on a tie.  Decision: 0 when no series has two candles."""
    counts = {}
    for candles in series.values():
        for a, b in zip(candles, candles[1:]):
            gap = b[0] - a[0]
            counts[gap] = counts.get(gap, 0) + 1
    if not counts:
        return 0
    top = max(counts.values())
    return min(gap for gap, n in counts.items() if n == top)


def _merge(windows):
    """Adjacent [start, end) windows joined (cpcv groups next to each other).
    Decision: a fold's windows are reported merged; purge is the same."""
    out = []
    for start, end in sorted(windows):
        if out and out[-1][1] == start:
            out[-1][1] = end
        else:
            out.append([start, end])
    return out


def _span(t0, t1, n):
    return [t0 + (g * (t1 - t0)) // n for g in range(n + 1)]


def window_sets(t0, t1, folds):
    """[(train_windows, test_windows)] per fold, as SPEC 12 defines them."""
    scheme = folds.get("scheme")
    if scheme in ("rolling", "anchored"):
        train = int(folds["train_days"] * DAY_MS)
        test = int(folds["test_days"] * DAY_MS)
        step_days = folds.get("step_days")
        step = int((folds["test_days"] if step_days is None else step_days) * DAY_MS)
        if train <= 0 or test <= 0 or step <= 0:
            raise ValueError("train_days, test_days and step_days must be > 0")
        out = []
        k = 0
        while t0 + k * step + train + test <= t1:
            start = t0 + k * step
            train_start = t0 if scheme == "anchored" else start
            out.append(([[train_start, start + train]],
                        [[start + train, start + train + test]]))
            k += 1
        return out
    if scheme == "cpcv":
        n = folds.get("n_groups", 6)
        k = folds.get("n_test_groups", 2)
        if not 1 <= k < n:
            raise ValueError("cpcv needs 1 <= n_test_groups < n_groups")
        b = _span(t0, t1, n)
        out = []
        for chosen in itertools.combinations(range(n), k):
            test = [[b[g], b[g + 1]] for g in chosen]
            train = [[b[g], b[g + 1]] for g in range(n) if g not in chosen]
            out.append((_merge(train), _merge(test)))
        return out
    raise ValueError("folds.scheme must be 'rolling', 'anchored' or 'cpcv'")
