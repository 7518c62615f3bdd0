"""Compare the worker's results with the reference's, to SPEC's 1e-9."""

from __future__ import annotations

import math

import msgspec
import numpy as np

from worker._data.loaders import dataset_from_columnar


def build(calls: list[dict], series: dict, series_key: str):
    """The worker's Dataset for the reference's (calls, series) input."""
    keys, ts, o, h, lo, c = [], [], [], [], [], []
    for key, rows in series.items():
        for t, *px in rows:
            keys.append(key)
            ts.append(t)
            o.append(px[0]), h.append(px[1]), lo.append(px[2]), c.append(px[3])
    columnar = {"key": keys, "ts_ms": np.array(ts, np.int64), "open": o, "high": h,
                "low": lo, "close": c}
    return dataset_from_columnar(calls, columnar, series_key=series_key)


def plain(obj):
    """A result as builtins, without the ``mode`` tag the reference lacks."""
    out = msgspec.to_builtins(obj) if isinstance(obj, msgspec.Struct) else obj
    if isinstance(out, dict):
        return {k: plain(v) for k, v in out.items() if k != "mode"}
    if isinstance(out, (list, tuple)):  # a tuple (an equity point) reads as a JSON array
        return [plain(v) for v in out]
    return out


def assert_close(ours, ref, path: str = "$") -> None:
    """Equal structure; floats within rel 1e-9 (abs 1e-9 near zero)."""
    if isinstance(ref, dict):
        assert isinstance(ours, dict), f"{path}: {ours!r} is not a dict"
        assert set(ours) == set(ref), f"{path}: keys {sorted(ours)} != {sorted(ref)}"
        for k in ref:
            assert_close(ours[k], ref[k], f"{path}.{k}")
    elif isinstance(ref, list):
        assert isinstance(ours, list) and len(ours) == len(ref), \
            f"{path}: length {len(ours) if isinstance(ours, list) else ours!r} != {len(ref)}"
        for i, (a, b) in enumerate(zip(ours, ref)):
            assert_close(a, b, f"{path}[{i}]")
    elif isinstance(ref, float) or isinstance(ours, float):
        assert ours is not None and ref is not None, f"{path}: {ours!r} != {ref!r}"
        assert math.isclose(ours, ref, rel_tol=1e-9, abs_tol=1e-9), f"{path}: {ours!r} != {ref!r}"
    else:
        assert ours == ref, f"{path}: {ours!r} != {ref!r}"


def metrics_only(m: dict) -> dict:
    return {k: v for k, v in m.items() if k not in ("trades_list",)}
