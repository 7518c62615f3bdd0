"""The checkpoint journal (``worker._run.journal``) and checkpointed flows
(``worker._run.checkpoint``): arrays round-trip bit for bit, a torn last line is
cut, a different run is refused (-32004), chunk ids are deterministic, an
interrupted run resumes to exactly the library's result computing exactly
the missing chunks, a failing chunk is isolated (when asked: the batch CLI)
and retried on resume, or fails the run (the daemon) keeping what finished.

Chunks are made small (``CHUNK_EVALUATIONS``) so small grids have many.
No sleeps; nothing is timed.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os

import anyio
import anyio.lowlevel
import msgspec
import numpy as np
import pytest

import worker._run.chunks as chunks
import worker._run.journal as J
from protocol import _messages as m
from worker import synthetic_dataset
from worker._core.callers import grouped_eval_flow, optimize_per_caller_flow
from worker._core.engine import prepare
from worker._core.jobs import evaluate
from worker._core.layouts import N_EXITS, N_METRICS, N_SKIPS
from worker._core.optimize import optimize_flow
from worker._errors import CheckpointMismatch, InternalError
from worker._run.checkpoint import CheckpointingEvaluator
from worker._run.drive import drive, drive_sync
from worker._run.evaluators import Evaluator, InProcessEvaluator, ThreadEvaluator
from worker._run.journal import (
    ChunkEntry,
    FailedEntry,
    Journal,
    chunk_id,
    chunk_items,
    chunk_spans,
    fingerprint,
)

GRID = {"tp_mults": [1.2 + 0.25 * i for i in range(8)],
        "sl_mults": [0.5 + 0.05 * i for i in range(6)],
        "max_hold_hrs": [1.0, 4.0, 48.0]}                  # 144 points
KINDS = ("optimize", "per_caller", "grouped")



@pytest.fixture(scope="module")
def ds():
    return synthetic_dataset(n_calls=300, n_candles=600, seed=3)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    # ~15 items per chunk of a 300-call job, ~180 per chunk of a per-caller job.
    monkeypatch.setattr(chunks, "CHUNK_EVALUATIONS", 5_000)


def make_flow(kind, ds, **kw):
    if kind == "optimize":
        return optimize_flow(ds, GRID, **{"include_all": True, **kw})
    if kind == "per_caller":
        return optimize_per_caller_flow(ds, GRID, **kw)
    return grouped_eval_flow(ds, GRID, grouped_params="optimize", filter_collapsed=False,
                             filter_extreme=False, **kw)


def enc(value) -> bytes:
    return msgspec.json.encode(value)


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def chunk_ids(path) -> list[str]:
    return [d["id"] for d in lines(path) if d["type"] == "chunk"]


def run_sync(ds, flow):
    """The library's way: in this thread."""
    return drive_sync(flow, InProcessEvaluator(ds))


async def run_checkpointed(flow, journal, evaluator, **options):
    """``flow`` driven through a ``CheckpointingEvaluator`` around ``evaluator``
    (an ``Evaluator``, or ``async (job, span) -> arrays``): (result, stats)."""
    if not isinstance(evaluator, Evaluator):
        evaluator = Spans(evaluator)
    run = CheckpointingEvaluator(evaluator, journal, **options)
    return await drive(flow, run), run.stats


def run_checkpointed_sync(ds, flow, journal, **options):
    """A checkpointed run in this thread, under ``anyio.run`` (``drive_sync``)."""
    run = CheckpointingEvaluator(InProcessEvaluator(ds), journal, **options)
    return drive_sync(flow, run), run.stats


class Spans(Evaluator):
    """An evaluator of ``async fn(job, span) -> arrays``."""

    def __init__(self, fn):
        self.fn = fn

    async def evaluate(self, job, span, **_):
        return await self.fn(job, span)


class CountingEvaluator(Evaluator):
    """Spans in this process, counting calls; ``fail`` (chunk ids) raise
    ValueError; ``interrupt(n)`` is called before the (n+1)-th call."""

    def __init__(self, ds, *, fail=(), interrupt=None):
        self.ds, self.fail, self.interrupt = ds, set(fail), interrupt
        self.calls: list[tuple[int, int]] = []
        self.jobs: list = []
        self._sweep = None

    async def __call__(self, job, span):
        return await self.evaluate(job, span)

    async def evaluate(self, job, span, **_):
        if self.interrupt is not None:
            await self.interrupt(len(self.calls))
        if not self.jobs or self.jobs[-1] is not job:
            self.jobs.append(job)
            self._sweep = prepare(self.ds, job.levels, job.positions)
        self.calls.append(span)
        if chunk_id(len(self.jobs) - 1, span) in self.fail:
            raise ValueError("boom")
        await anyio.lowlevel.checkpoint()
        return evaluate(self.ds, job, span, sweep=self._sweep)


def fresh_journal(tmp_path, ds, name="journal.jsonl", request=None, **kw) -> Journal:
    return Journal.open(tmp_path / name, fingerprint(ds, request or {"grid": GRID}), **kw)


def random_arrays(rows, seed):
    rng = np.random.default_rng(seed)
    mt = rng.standard_normal((rows, N_METRICS))
    mt[0, :4] = [np.nan, np.inf, -np.inf, -0.0]
    ex = rng.integers(-2**63, 2**63 - 1, (rows, N_EXITS), dtype=np.int64)
    sk = rng.integers(0, 1000, (rows, N_SKIPS), dtype=np.int64)
    return mt, ex, sk


def assert_bits_equal(got, want):
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        assert g.tobytes() == np.ascontiguousarray(w).tobytes()


# ------------------------------------------------------------------ the journal file

def test_round_trip_of_arrays_and_the_line_format(tmp_path, ds):
    path = tmp_path / "journal.jsonl"
    fp = fingerprint(ds, {"grid": GRID})
    a0, a1, a2 = random_arrays(5, 1), random_arrays(7, 2), random_arrays(3, 3)
    with Journal.open(path, fp) as j:
        assert j.done(0) == {} and j.failed() == [] and j.items_done == 0
        j.append([ChunkEntry(0, (0, 5), a0), FailedEntry(0, (5, 12), "ValueError: boom"),
                  ChunkEntry(1, (0, 7), a1)])
        j.append([ChunkEntry(0, (12, 15), a2)])
    rows = lines(path)
    assert rows[0]["type"] == "header" and rows[0]["version"] == 1 and rows[0]["fingerprint"] == fp
    assert [r["type"] for r in rows] == ["header", "chunk", "failed", "chunk", "chunk"]
    assert rows[1] | {"m": "", "e": "", "s": ""} == {
        "type": "chunk", "id": "j0:0-5", "job": 0, "span": [0, 5], "m": "", "e": "", "s": ""}
    assert rows[2] == {"type": "failed", "id": "j0:5-12", "job": 0, "span": [5, 12],
                       "error": "ValueError: boom"}
    # The contract: base64 of little-endian float64 [b-a, N_METRICS] / int64
    # [b-a, N_EXITS], [b-a, N_SKIPS] (docs/run-directory.md).
    raw = np.frombuffer(base64.b64decode(rows[1]["m"]), "<f8").reshape(5, N_METRICS)
    assert raw.tobytes() == a0[0].astype("<f8").tobytes()
    assert np.frombuffer(base64.b64decode(rows[4]["s"]), "<i8").tolist() == a2[2].ravel().tolist()

    with Journal.open(path, fp) as j:
        done0 = j.done(0)
        assert sorted(done0) == [(0, 5), (12, 15)] and list(j.done(1)) == [(0, 7)]
        assert j.done(2) == {}
        assert_bits_equal(done0[(0, 5)], a0)          # NaN, inf, -0.0, int64 extremes
        assert_bits_equal(done0[(12, 15)], a2)
        assert_bits_equal(j.done(1)[(0, 7)], a1)
        assert j.failed() == [
            {"id": "j0:5-12", "job": 0, "span": [5, 12], "error": "ValueError: boom"}]
        assert j.items_done == 15 and j.chunks_done == 3 and j.cut_bytes == 0
        # A later chunk supersedes the failure (a retried chunk).
        j.append([ChunkEntry(0, (5, 12), random_arrays(7, 4))])
        assert j.failed() == []
    with Journal.open(path, fp) as j:
        assert j.failed() == [] and sorted(j.done(0)) == [(0, 5), (5, 12), (12, 15)]
    with pytest.raises(ValueError):
        j.append([ChunkEntry(0, (15, 16), random_arrays(1, 5))])  # closed
    with Journal.open(path, fp) as j, pytest.raises(ValueError):
        j.append([ChunkEntry(0, (15, 17), random_arrays(1, 5))])  # wrong row count
    assert len(lines(path)) == 6  # the bad batch wrote nothing


def test_one_journal_per_file(tmp_path, ds):
    j = fresh_journal(tmp_path, ds)
    try:
        with pytest.raises(CheckpointMismatch) as err:
            fresh_journal(tmp_path, ds)
        assert err.value.code == -32004 and err.value.data["reason"] == "in_use"
    finally:
        j.close()
    fresh_journal(tmp_path, ds).close()  # released by close()


def _journal_with_chunks(tmp_path, ds, n=3):
    path = tmp_path / "journal.jsonl"
    with fresh_journal(tmp_path, ds) as j:
        j.append([ChunkEntry(0, (i * 4, i * 4 + 4), random_arrays(4, i)) for i in range(n)])
    return path


@pytest.mark.parametrize("tail", [
    "half",                                            # a crash in the middle of a line
    b"\x00\x00\x00\x00",                               # zeros after a crash (no newline)
    b'{"type":"chunk","id":"j0:12-16","job":0}\n',     # a complete line that does not parse
    b"garbage\n",
])
def test_torn_last_line_is_cut_and_the_rest_kept(tmp_path, ds, tail):
    path = _journal_with_chunks(tmp_path, ds)
    good = path.read_bytes()
    if tail == "half":
        line = J._encode(ChunkEntry(0, (12, 16), random_arrays(4, 9)))
        tail = line[: len(line) // 2]
    with open(path, "ab") as f:
        f.write(tail)
    with fresh_journal(tmp_path, ds) as j:
        assert j.cut_bytes == len(tail)
        assert sorted(j.done(0)) == [(0, 4), (4, 8), (8, 12)]
        assert_bits_equal(j.done(0)[(8, 12)], random_arrays(4, 2))
        assert path.read_bytes() == good     # cut, durably, before anything is appended
        j.append([ChunkEntry(0, (12, 16), random_arrays(4, 3))])
    with fresh_journal(tmp_path, ds) as j:
        assert sorted(j.done(0)) == [(0, 4), (4, 8), (8, 12), (12, 16)] and j.cut_bytes == 0


def test_torn_header_starts_fresh_and_corrupt_middle_line_is_refused(tmp_path, ds):
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"type":"header","vers')
    fp = fingerprint(ds, {"grid": GRID})
    with Journal.open(path, fp) as j:
        assert j.done(0) == {}
    assert lines(path) == [{"type": "header", "version": 1, "fingerprint": fp,
                            "created": j.created}]
    path = _journal_with_chunks(tmp_path, ds)
    text = path.read_bytes().split(b"\n")
    text[2] = text[2][:50]  # damage a line that is not the last one
    path.write_bytes(b"\n".join(text))
    with pytest.raises(CheckpointMismatch) as err:
        fresh_journal(tmp_path, ds)
    assert err.value.code == -32004 and err.value.data == {
        "path": str(path), "line": 3, "reason": "corrupt"}
    with fresh_journal(tmp_path, ds, restart=True) as j:
        assert j.done(0) == {}


def test_a_different_run_is_refused_unless_restart(tmp_path, ds):
    path = _journal_with_chunks(tmp_path, ds)
    before = path.read_bytes()
    other = {"grid": {**GRID, "tp_mults": [2.0]}}
    with pytest.raises(CheckpointMismatch) as err:
        fresh_journal(tmp_path, ds, request=other)
    e = err.value
    assert e.code == -32004
    assert f"run directory {tmp_path} holds a different run" in e.message
    assert "to start over, pass restart: true (CLI: --restart)" in e.message
    assert e.data["expected"] == fingerprint(ds, other)
    assert e.data["found"] == fingerprint(ds, {"grid": GRID})
    assert path.read_bytes() == before  # refused: untouched
    with fresh_journal(tmp_path, ds, request=other, restart=True) as j:
        assert j.done(0) == {} and j.fingerprint == fingerprint(ds, other)
    assert [r["type"] for r in lines(path)] == ["header"]
    with pytest.raises(CheckpointMismatch):
        fresh_journal(tmp_path, ds)  # now the first run is the different one
    path.write_text('{"type":"chunk","id":"j0:0-1","job":0,"span":[0,1],"m":"","e":"","s":""}\n'
                    '{"type":"header","version":1,"fingerprint":"x","created":"y"}\n')
    with pytest.raises(CheckpointMismatch) as err:
        fresh_journal(tmp_path, ds)
    assert err.value.data["reason"] == "not_a_journal"


# ------------------------------------------------------------------ fingerprint and chunks

def test_fingerprint_covers_data_and_request_not_volatile_keys(ds):
    request = {"param_grid": GRID, "simulator_config": {"initial_capital": 1000.0},
               "mode": "capital", "top_k": 10, "progress_token": "t1", "run_id": "r1",
               "checkpoint_dir": "/tmp/a", "restart": False}
    fp = fingerprint(ds, request)
    assert len(fp) == 64 and fp == fingerprint(ds, request)
    # The same data built again; keys in another order; volatile keys changed.
    assert fingerprint(synthetic_dataset(n_calls=300, n_candles=600, seed=3), request) == fp
    assert fingerprint(ds, dict(reversed(list(request.items())))) == fp
    assert fingerprint(ds, {**request, "progress_token": 7, "run_id": "r2",
                            "checkpoint_dir": "/tmp/b", "restart": True}) == fp
    assert fingerprint(ds, {k: v for k, v in request.items() if k != "progress_token"}) == fp
    # One candle price, the grid, the config, the mode: all change it.
    close = ds.close.copy()
    close[123] *= 1.0000001
    assert fingerprint(dataclasses.replace(ds, close=close), request) != fp
    assert fingerprint(dataclasses.replace(ds, caller_names=ds.caller_names[::-1]),
                       request) != fp
    grid = {**GRID, "sl_mults": [*GRID["sl_mults"][:-1], 0.77]}
    assert fingerprint(ds, {**request, "param_grid": grid}) != fp
    assert fingerprint(ds, {**request, "simulator_config": {"initial_capital": 1001.0}}) != fp
    assert fingerprint(ds, {**request, "mode": "per_trade"}) != fp
    # Request structs work too, the same way.
    p = msgspec.convert(request, m.OptimizeParams)
    q = msgspec.structs.replace(p, progress_token="other", run_id="x", restart=True)
    assert fingerprint(ds, p) == fingerprint(ds, q) != fingerprint(
        ds, msgspec.structs.replace(p, top_k=3))


def test_fingerprint_covers_the_chunk_rule(ds, monkeypatch):
    fp = fingerprint(ds, {"grid": GRID})
    monkeypatch.setattr(chunks, "CHUNK_EVALUATIONS", 6_000)
    assert fingerprint(ds, {"grid": GRID}) != fp


def first_job(kind, ds):
    flow = make_flow(kind, ds)
    job = next(flow)
    flow.close()
    return job


@pytest.mark.parametrize("kind", ["optimize", "per_caller"])
def test_chunk_spans_are_deterministic(ds, kind, monkeypatch):
    job = first_job(kind, ds)
    spans = chunk_spans(job)
    assert spans == chunk_spans(first_job(kind, ds))  # the same request: the same chunks
    assert spans[0][0] == 0 and spans[-1][1] == job.n_items and len(spans) > 5
    assert all(a < b for a, b in spans)
    assert all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))
    sizes = {b - a for a, b in spans}
    assert max(sizes) - min(sizes) <= 1 and max(sizes) <= chunk_items(job)
    per_item = -(-job.positions.size // job.n_groups) + 16
    assert chunk_items(job) == 5_000 // per_item
    # The real rule: ~32 M evaluations, at most CHUNK_ITEMS items.
    monkeypatch.setattr(chunks, "CHUNK_EVALUATIONS", 32_000_000)
    assert chunk_items(job) == min(chunks.CHUNK_ITEMS, 32_000_000 // per_item)
    assert chunk_spans(job) == [(0, job.n_items)]


# ------------------------------------------------------------------ checkpointed runs

def test_sync_run_equals_run_sync_and_a_rerun_reuses_everything(tmp_path, ds):
    for kind in KINDS:
        want = enc(run_sync(ds, make_flow(kind, ds)))
        with fresh_journal(tmp_path, ds, f"{kind}.jsonl", restart=True) as j:
            result, st = run_checkpointed_sync(ds, make_flow(kind, ds), j)
        assert enc(result) == want
        assert st.chunks_total == st.chunks_computed > 5 and st.chunks_reused == 0
        assert st.jobs == (2 if kind == "grouped" else 1) and st.items_done_at_start == 0
        ids = chunk_ids(tmp_path / f"{kind}.jsonl")
        assert len(ids) == len(set(ids)) == st.chunks_total
        with fresh_journal(tmp_path, ds, f"{kind}.jsonl") as j:
            result, again = run_checkpointed_sync(ds, make_flow(kind, ds), j)
        assert enc(result) == want
        assert again.chunks_reused == again.chunks_total == st.chunks_total
        assert again.chunks_computed == 0 and again.flushes == 0
        assert again.items_done_at_start == again.items_reused == st.items_total
        assert chunk_ids(tmp_path / f"{kind}.jsonl") == ids  # nothing appended


class Crash(BaseException):
    """A simulated crash: not an Exception, so not isolated."""


@pytest.mark.anyio
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("how", ["cancel", "crash", "truncate"])
@pytest.mark.parametrize("when", ["early", "late"])
async def test_resume_computes_exactly_the_missing_chunks(tmp_path, ds, kind, how, when):
    want = enc(run_sync(ds, make_flow(kind, ds)))
    with fresh_journal(tmp_path, ds, "ref.jsonl") as j:
        ref = CountingEvaluator(ds)
        await run_checkpointed(make_flow(kind, ds), j, ref)
    all_ids = chunk_ids(tmp_path / "ref.jsonl")
    total = len(all_ids)
    n = 3 if when == "early" else total - 2
    path = tmp_path / "journal.jsonl"

    first = CountingEvaluator(ds)
    if how == "truncate":
        with fresh_journal(tmp_path, ds) as j:
            await run_checkpointed(make_flow(kind, ds), j, first, flush_seconds=0)
        kept = path.read_text().splitlines(keepends=True)[: 1 + n]
        path.write_text("".join(kept))
    else:
        with anyio.CancelScope() as scope:
            async def interrupt(calls):
                if calls == n:
                    if how == "crash":
                        raise Crash
                    scope.cancel()
                    await anyio.lowlevel.checkpoint()

            first.interrupt = interrupt
            with fresh_journal(tmp_path, ds) as j:
                # Nothing is flushed by time: the n chunks are written on the way out.
                if how == "crash":
                    with pytest.raises(Crash):
                        await run_checkpointed(make_flow(kind, ds), j, first,
                                               flush_seconds=1e9)
                else:
                    await run_checkpointed(make_flow(kind, ds), j, first, flush_seconds=1e9)
        assert how == "crash" or scope.cancelled_caught
        assert len(first.calls) == n
    partial = chunk_ids(path)
    partial_items = sum(b - a for a, b in (d["span"] for d in lines(path)[1:]))
    assert len(partial) == n and len(set(partial)) == n and set(partial) <= set(all_ids)

    resumed = CountingEvaluator(ds)
    progress, durable = [], []
    with fresh_journal(tmp_path, ds) as j:
        result, st = await run_checkpointed(
            make_flow(kind, ds), j, resumed, on_progress=lambda d, t: progress.append((d, t)),
            on_durable=lambda d, t: durable.append((d, t)))
    assert enc(result) == want
    assert len(resumed.calls) == total - n                 # exactly the missing chunks
    assert st.chunks_reused == n and st.chunks_computed == total - n and not st.failed
    ids = chunk_ids(path)
    assert sorted(ids) == sorted(all_ids) and len(ids) == len(set(ids))  # each exactly once
    assert ids[:n] == partial                             # earlier lines never rewritten
    # Progress counts the earlier attempt's work from the start.
    assert st.items_done_at_start == partial_items >= progress[0][0] > 0
    assert progress[-1] == (st.items_total, st.items_total)
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(progress, progress[1:]))
    assert durable[-1] == (st.items_total, st.items_total)


@pytest.mark.anyio
async def test_failing_chunk_is_isolated_then_retried_on_resume(tmp_path, ds):
    """The batch CLI's way (``isolate_failures=True``)."""
    want = run_sync(ds, make_flow("optimize", ds, include_all=False))
    ranked = run_sync(ds, make_flow("optimize", ds)).all_results
    job = first_job("optimize", ds)
    best = want.top[0].index
    bad = next(s for s in chunk_spans(job) if s[0] <= best < s[1])
    bad_id = chunk_id(0, bad)
    failing = CountingEvaluator(ds, fail={bad_id})
    with fresh_journal(tmp_path, ds) as j:
        result, st = await run_checkpointed(make_flow("optimize", ds, include_all=False), j,
                                            failing, isolate_failures=True)
        assert j.failed() == [{"id": bad_id, "job": 0, "span": list(bad),
                               "error": "ValueError: boom"}]
    assert st.failed == [{"id": bad_id, "job": 0, "span": list(bad), "error": "ValueError: boom"}]
    assert st.chunks_computed == st.chunks_total - 1 and len(failing.calls) == st.chunks_total
    rows = lines(tmp_path / "journal.jsonl")
    assert [r["id"] for r in rows if r["type"] == "failed"] == [bad_id]
    assert bad_id not in chunk_ids(tmp_path / "journal.jsonl")
    # Its points are infeasible, never best; every other point ranks as before.
    inside = lambda i: bad[0] <= i < bad[1]  # noqa: E731
    assert result.best_params is not None and result.best_params != want.best_params
    by_rank = sorted(ranked, key=lambda p: p.rank)
    expect = [p.index for p in by_rank if p.feasible and not inside(p.index)]
    assert [p.index for p in result.top] == expect[: len(result.top)] and result.top
    assert result.feasible_count == len(expect) < want.feasible_count

    retry = CountingEvaluator(ds)
    with fresh_journal(tmp_path, ds) as j:
        assert [f["id"] for f in j.failed()] == [bad_id]
        result, st = await run_checkpointed(make_flow("optimize", ds, include_all=False), j,
                                            retry)
        assert j.failed() == []
    assert retry.calls == [bad] and st.chunks_computed == 1 and not st.failed
    assert enc(result) == enc(want)
    ids = chunk_ids(tmp_path / "journal.jsonl")
    assert sorted(ids) == sorted(chunk_id(0, s) for s in chunk_spans(job))
    with fresh_journal(tmp_path, ds) as j:
        assert j.failed() == []  # the chunk line supersedes the failure


@pytest.mark.anyio
@pytest.mark.parametrize("concurrency", [1, 3])
async def test_a_failing_chunk_fails_the_run_when_not_isolated_and_a_resume_completes(
        tmp_path, ds, concurrency):
    """The daemon's way (``isolate_failures=False``): no answer from a subset
    of the grid. The run raises naming the chunk, the journal keeps every
    chunk that finished (flushed on the way out), and a resume completes."""
    want = enc(run_sync(ds, make_flow("optimize", ds)))
    spans = chunk_spans(first_job("optimize", ds))
    bad = spans[4]
    bad_id = chunk_id(0, bad)
    failing = CountingEvaluator(ds, fail={bad_id})
    finished: list[str] = []

    async def evaluate_span(job, span):
        arrays = await failing(job, span)
        finished.append(chunk_id(0, span))
        return arrays

    path = tmp_path / "journal.jsonl"
    with fresh_journal(tmp_path, ds) as j:
        with pytest.raises(InternalError) as info:
            await run_checkpointed(make_flow("optimize", ds), j, evaluate_span,
                                   isolate_failures=False, concurrency=concurrency,
                                   flush_seconds=1e9)
    err = info.value
    assert err.code == -32603 and bad_id in err.message and "ValueError: boom" in err.message
    assert finished and bad_id not in finished
    if concurrency == 1:
        assert finished == [chunk_id(0, s) for s in spans[:4]]
    kept = chunk_ids(path)
    assert sorted(kept) == sorted(finished)  # every finished chunk, once; nothing else
    assert [r["id"] for r in lines(path) if r["type"] == "failed"] == [bad_id]

    resumed = CountingEvaluator(ds)
    with fresh_journal(tmp_path, ds) as j:
        assert [f["id"] for f in j.failed()] == [bad_id]
        result, st = await run_checkpointed(make_flow("optimize", ds), j, resumed,
                                            isolate_failures=False, concurrency=concurrency)
        assert j.failed() == []
    assert enc(result) == want
    assert st.chunks_reused == len(finished) and not st.failed
    assert sorted(chunk_id(0, s) for s in resumed.calls) == sorted(
        chunk_id(0, s) for s in spans if chunk_id(0, s) not in finished)
    ids = chunk_ids(path)
    assert sorted(ids) == sorted(chunk_id(0, s) for s in spans) and len(ids) == len(set(ids))


@pytest.mark.anyio
@pytest.mark.parametrize("flush_seconds", [0, 1e9])
async def test_flushes_batch_chunks_and_report_durable_progress(tmp_path, ds, flush_seconds):
    durable, batches = [], []
    with fresh_journal(tmp_path, ds) as j:
        append = j.append
        j.append = lambda entries: (batches.append(len(entries)), append(entries))

        async def on_durable(done, total):  # awaited
            durable.append((done, total))

        result, st = await run_checkpointed(make_flow("grouped", ds), j, CountingEvaluator(ds),
                                            on_durable=on_durable, flush_seconds=flush_seconds)
    assert sum(batches) == st.chunks_total == len(chunk_ids(tmp_path / "journal.jsonl"))
    if flush_seconds == 0:
        assert batches == [1] * st.chunks_total       # one fsync per chunk
    else:
        assert len(batches) == st.jobs == 2           # one per job, at its end
    assert st.flushes == len(batches) == len(durable)
    assert all(a[0] < b[0] for a, b in zip(durable, durable[1:]))
    assert durable[-1] == (st.items_total, st.items_total)


@pytest.mark.anyio
async def test_concurrent_chunks_give_the_same_result(tmp_path, ds):
    in_flight, peak = [0], [0]

    async def evaluate_span(job, span):
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        try:
            await anyio.lowlevel.checkpoint()
            return evaluate(ds, job, span)
        finally:
            in_flight[0] -= 1

    with fresh_journal(tmp_path, ds) as j:
        result, st = await run_checkpointed(make_flow("per_caller", ds), j, evaluate_span,
                                            concurrency=3)
    assert enc(result) == enc(run_sync(ds, make_flow("per_caller", ds)))
    assert peak[0] == 3
    ids = chunk_ids(tmp_path / "journal.jsonl")
    assert len(ids) == len(set(ids)) == st.chunks_total


@pytest.mark.anyio
async def test_on_the_process_pool(tmp_path, ds):
    from worker._pool.evaluator import PoolEvaluator
    from worker._pool.pool import WorkerPool
    from worker._pool.shm import share_dataset

    shared = share_dataset(ds, str(tmp_path))
    try:
        sd = shared.dataset
        async with WorkerPool(2, target_span_evaluations=2_000) as pool:
            on_pool = PoolEvaluator(pool, shared)   # 2 chunks at once: the pool's size
            for kind in ("per_caller", "grouped"):
                path = tmp_path / f"{kind}.jsonl"
                with fresh_journal(tmp_path, ds, path.name) as j:
                    result, st = await run_checkpointed(make_flow(kind, sd), j, on_pool)
                assert enc(result) == enc(run_sync(ds, make_flow(kind, ds)))
                assert not st.failed and st.chunks_computed == st.chunks_total
                # The same chunk ids as in-process (they never depend on the pool).
                with fresh_journal(tmp_path, ds, f"sync-{kind}.jsonl") as j:
                    await anyio.to_thread.run_sync(run_checkpointed_sync, ds,
                                                   make_flow(kind, ds), j)
                assert sorted(chunk_ids(path)) == sorted(chunk_ids(tmp_path /
                                                                   f"sync-{kind}.jsonl"))
            # Resume on the pool from half a journal.
            kept = path.read_text().splitlines(keepends=True)
            half = (len(kept) - 1) // 2
            path.write_text("".join(kept[: 1 + half]))
            with fresh_journal(tmp_path, ds, path.name) as j:
                result, st = await run_checkpointed(make_flow("grouped", sd), j, on_pool,
                                                    concurrency=1)
            assert enc(result) == enc(run_sync(ds, make_flow("grouped", ds)))
            assert st.chunks_reused == half and st.chunks_computed == st.chunks_total - half
            assert sorted(chunk_ids(path)) == sorted(chunk_ids(tmp_path / "sync-grouped.jsonl"))
            assert pool.restarts == 0
    finally:
        shared.close()
    assert not os.path.exists(shared.path)


def test_optimize_with_a_failed_chunk_and_include_all_lists_only_evaluated_points():
    """A failed chunk's points are infeasible and left out of all_results."""
    from worker import synthetic_dataset
    from worker._core.jobs import evaluate as local_evaluate
    from worker._core.jobs import step
    from worker._core.optimize import optimize_flow

    ds = synthetic_dataset(n_calls=40, n_candles=200, seed=2)
    flow = optimize_flow(ds, {"tp_mults": [1.5, 2, 3], "sl_mults": [0.9]}, include_all=True)
    _, job = step(flow, None)
    metrics, exits, skipped = local_evaluate(ds, job)
    metrics[1] = np.nan  # the point whose chunk failed
    done, result = step(flow, (metrics, exits, skipped))
    assert done and [p.index for p in result.all_results] == [0, 2]
    assert result.best_params is not None and result.best_params.tp_mult != 2


def test_resumed_grouped_run_after_a_failed_chunk_equals_a_fresh_run(tmp_path, monkeypatch):
    """Job 1 of a grouped run (grouped_params: optimize) is built from job 0's
    results; after a job-0 chunk failed, job 1 must not be journaled, or a
    resume would reuse results computed over the wrong callers."""
    from worker import grouped_eval, synthetic_dataset
    from worker._core.callers import grouped_eval_flow
    from worker._core.jobs import recorded

    monkeypatch.setattr(chunks, "CHUNK_ITEMS", 30)
    ds = synthetic_dataset(n_calls=300, n_candles=300, seed=1, n_callers=6)
    kw = dict(filter_collapsed=False, filter_extreme=False, grouped_params="optimize")

    class Failing(ThreadEvaluator):
        async def evaluate(self, job, span, **kw):
            if job.group_codes is not None and span[0] == 30:
                raise RuntimeError("simulated crash")
            return await super().evaluate(job, span, **kw)

    results = []
    for evaluate_span in (Failing(ds), ThreadEvaluator(ds)):
        journal = J.Journal.open(tmp_path / "journal.jsonl", "fp")
        result, stats = anyio.run(lambda: run_checkpointed(
            recorded(grouped_eval_flow(ds, None, **kw), []), journal, evaluate_span,
            isolate_failures=True))
        journal.close()
        results.append((result, stats))
    (first, first_stats), (resumed, _) = results
    assert len(first_stats.failed) == 1
    assert msgspec.json.encode(resumed) == msgspec.json.encode(grouped_eval(ds, None, **kw))
