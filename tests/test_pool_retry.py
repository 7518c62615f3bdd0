"""A span whose pool process is lost while serving it (killed, crashed, or
stopped and caught by the stall watchdog) is retried once on another
process, so the call still answers exactly what in-process evaluation gives;
lost twice, the call fails naming the span, the processes and the signal.

Pools have 2 processes (CI machines have 2 cores). Processes are killed or
stopped from the ``on_span_start`` hook, right after a span was sent to
them: they are serving it. No sleeps synchronize anything; the only waits
are the pool's own stall timeout and generous bounds on failure.
"""

from __future__ import annotations

import os
import re
import signal

import anyio
import pytest

# The same dataset and shared file fixtures as the pool's own tests.
from tests.test_pool import BIG_GRID, alive, assert_same, ds, job_of, kill_first_server, shared  # noqa: F401
from worker import optimize
from worker._core.jobs import evaluate
from worker._core.optimize import optimize_flow
from worker._errors import InternalError
from worker._pool.evaluator import PoolEvaluator
from worker._pool.pool import WorkerPool
from worker._run.drive import drive

BOUND = 120.0   # seconds: a bound on failure (a hang fails the test), not a sleep




@pytest.mark.anyio
async def test_span_of_a_killed_process_is_retried_and_the_answer_is_exact(ds, shared):
    job = job_of(ds, grid=BIG_GRID)      # many spans: still running when killed
    killed: list[int] = []
    seen: set[int] = set()
    async with WorkerPool(2, target_span_evaluations=20_000) as pool:
        seen.update(pool.all_pids)

        pool.on_span_start = kill_first_server(job, killed)
        with anyio.fail_after(BOUND):
            got = await pool.evaluate(shared, "ds", job)
        assert killed and not alive(killed[0])          # reaped before the answer
        assert_same(got, evaluate(ds, job))
        assert pool.restarts == 1 and pool.stats()["span_retries"] == 1
        seen.update(killed)

        # A whole flow (the non-checkpointed daemon path) with a kill: the library's answer.
        killed.clear()
        flow_job: list = []

        def kill_in_flow(pid, j):
            if flow_job and j is flow_job[0] and not killed:
                killed.append(pid)
                os.kill(pid, signal.SIGKILL)

        pool.on_span_start = kill_in_flow
        with anyio.fail_after(BOUND):
            result = await drive(optimize_flow(shared.dataset, BIG_GRID),
                                 PoolEvaluator(pool, shared), on_job=flow_job.append)
        assert killed and pool.restarts == 2
        assert result == optimize(ds, BIG_GRID)
        pool.on_span_start = None
        seen.update(killed)
        with anyio.fail_after(BOUND):
            await pool.wait_ready()
        seen.update(pool.all_pids)
    assert not any(alive(pid) for pid in seen)


@pytest.mark.anyio
async def test_span_killed_on_every_attempt_fails_naming_span_pids_and_signal(ds, shared):
    job = job_of(ds, grid=BIG_GRID)
    killed: list[int] = []
    seen: set[int] = set()
    async with WorkerPool(2, target_span_evaluations=20_000) as pool:
        seen.update(pool.all_pids)

        def kill_every_attempt(pid, j):
            if j is job:
                killed.append(pid)
                os.kill(pid, signal.SIGKILL)

        pool.on_span_start = kill_every_attempt
        with anyio.fail_after(BOUND), pytest.raises(InternalError) as info:
            await pool.evaluate(shared, "ds", job)
        pool.on_span_start = None
        err = info.value
        assert err.code == -32603
        span = re.search(r"span \[(\d+), (\d+)\)", err.message)
        assert span is not None, err.message
        assert 0 <= int(span[1]) < int(span[2]) <= job.n_items
        named = [int(p) for p in re.findall(r"pool process (\d+)", err.message)]
        assert len(named) == 2 and len(set(named)) == 2 and set(named) <= set(killed)
        assert err.message.count("signal 9, SIGKILL") == 2
        # The pool carries on, every dead process replaced, exact again.
        small = job_of(ds, per_caller=True)
        with anyio.fail_after(BOUND):
            assert_same(await pool.evaluate(shared, "ds", small), evaluate(ds, small))
            await pool.wait_ready()
        assert pool.alive == 2 and not set(killed) & set(pool.pids)
        seen.update(pool.all_pids)
        seen.update(killed)
    assert not any(alive(pid) for pid in seen)


@pytest.mark.anyio
async def test_stopped_process_is_replaced_and_its_span_retried(ds, shared):
    job = job_of(ds, grid=BIG_GRID)
    stopped: list[int] = []
    seen: set[int] = set()
    # A short stall timeout: 25 ms spans, so 5 s is far beyond any slow machine.
    async with WorkerPool(2, target_span_evaluations=20_000, stall_timeout_min_s=5.0,
                          stall_factor=10.0) as pool:
        seen.update(pool.all_pids)
        assert pool.stats()["stalled"] == 0

        def stop_once(pid, j):
            if j is job and not stopped:
                stopped.append(pid)
                os.kill(pid, signal.SIGSTOP)

        pool.on_span_start = stop_once
        try:
            with anyio.fail_after(BOUND):
                got = await pool.evaluate(shared, "ds", job)
        finally:
            pool.on_span_start = None
            if stopped and alive(stopped[0]):  # before the fix: let close end it
                os.kill(stopped[0], signal.SIGCONT)
        assert_same(got, evaluate(ds, job))
        stats = pool.stats()
        assert stats["stalled"] == 1 and stats["span_retries"] == 1 and pool.restarts == 1
        assert not alive(stopped[0]) and stopped[0] not in pool.all_pids  # killed and reaped
        with anyio.fail_after(BOUND):
            await pool.wait_ready()
        seen.update(pool.all_pids)
    assert len(seen) == 3 and not any(alive(pid) for pid in seen)


@pytest.mark.anyio
async def test_checkpointed_run_fails_whole_when_a_span_is_lost_twice_then_resumes(
        ds, shared, tmp_path, monkeypatch):
    """The daemon's checkpointed path (``isolate_failures=False``) on the pool:
    a chunk whose span is killed on every attempt fails the run with -32603
    naming the chunk, the span, the processes and the signal; the journal
    keeps the chunks that finished, and a resume completes to the library's answer."""
    import json

    import worker._run.chunks as J
    from worker._run.checkpoint import CheckpointingEvaluator
    from worker._run.journal import Journal, fingerprint

    monkeypatch.setattr(J, "CHUNK_EVALUATIONS", 5_000)   # ~15 items per chunk: many chunks
    want = optimize(ds, BIG_GRID)
    path = tmp_path / "journal.jsonl"
    finished: list[tuple[int, int]] = []
    killed: list[int] = []
    seen: set[int] = set()
    async with WorkerPool(2) as pool:
        seen.update(pool.all_pids)

        class Recording(PoolEvaluator):
            async def evaluate(self, job, span, **kw):
                arrays = await super().evaluate(job, span, **kw)
                finished.append(span)
                return arrays

        def kill_after_three_chunks(pid, job):
            if len(finished) >= 3:
                killed.append(pid)
                os.kill(pid, signal.SIGKILL)

        pool.on_span_start = kill_after_three_chunks
        with Journal.open(path, fingerprint(ds, {"grid": BIG_GRID})) as j:
            with anyio.fail_after(BOUND), pytest.raises(InternalError) as info:
                await drive(optimize_flow(shared.dataset, BIG_GRID), CheckpointingEvaluator(
                    Recording(pool, shared), j, isolate_failures=False))
        pool.on_span_start = None
        err = info.value
        assert err.code == -32603
        assert re.search(r"chunk j0:\d+-\d+ \(items \[\d+, \d+\) of grid job 0\) failed: "
                         r"pool process \d+ died \(signal 9, SIGKILL\) while serving span "
                         r"\[\d+, \d+\)", err.message), err.message
        named = {int(p) for p in re.findall(r"pool process (\d+)", err.message)}
        assert len(named) == 2 and named <= set(killed)
        rows = [json.loads(line) for line in path.read_text().splitlines()[1:]]
        kept = sorted(tuple(r["span"]) for r in rows if r["type"] == "chunk")
        assert kept == sorted(finished) and len(kept) >= 3   # every finished chunk, kept
        seen.update(killed)

        with anyio.fail_after(BOUND):
            await pool.wait_ready()
        seen.update(pool.all_pids)
        finished.clear()
        with Journal.open(path, fingerprint(ds, {"grid": BIG_GRID})) as j:
            with anyio.fail_after(BOUND):
                run = CheckpointingEvaluator(Recording(pool, shared), j, isolate_failures=False)
                assert run.concurrency == 2  # the pool's size
                result = await drive(optimize_flow(shared.dataset, BIG_GRID), run)
                st = run.stats
        assert result == want
        assert st.chunks_reused == len(kept) and st.chunks_computed == st.chunks_total - len(kept)
        assert not set(finished) & set(kept)                  # nothing computed twice
    assert not any(alive(pid) for pid in seen)


def test_stall_timeout_follows_the_span_estimate():
    from worker._pool.spans import EVALS_PER_SECOND, ITEM_OVERHEAD, span_seconds, stall_timeout

    # items 0..9 are group 0 (100 calls each), 10..19 group 1 (300 calls each)
    g0, g1 = 100 + ITEM_OVERHEAD, 300 + ITEM_OVERHEAD
    got = span_seconds([100, 300], 10, [(5, 12), (0, 20), (19, 20)])
    want = [5 * g0 + 2 * g1, 10 * g0 + 10 * g1, g1]
    assert got == pytest.approx([w / EVALS_PER_SECOND for w in want])
    assert span_seconds([100], 10, []) == []
    assert stall_timeout(0.01, min_seconds=30, factor=10) == 30
    assert stall_timeout(5.0, min_seconds=30, factor=10) == 50
