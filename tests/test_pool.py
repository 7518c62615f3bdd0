"""The daemon's process pool and shared datasets (``worker._pool.pool``, ``worker._pool.shm``).

Pool results must equal in-process evaluation exactly; a pool process killed
mid-request is replaced and its span retried elsewhere (more in
tests/test_pool_retry.py); cancellation drops queued work; closing
leaves no process behind. Pools have 2 processes (CI machines have 2 cores).
No sleeps synchronize anything and nothing is timed.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import anyio
import msgspec
import numba
import numpy as np
import pytest

from worker import grouped_eval, optimize, optimize_per_caller, synthetic_dataset
from worker._core.callers import grouped_eval_flow, optimize_per_caller_flow
from worker._core.engine import grid_levels
from worker._core.jobs import GridJob, evaluate
from worker._core.optimize import make_study, optimize_flow
from worker._errors import InternalError
from worker._pool.evaluator import PoolEvaluator
from worker._pool.pool import WorkerPool
from worker._pool.spans import cut_spans, group_sizes
from worker._run.drive import drive, drive_sync
from worker._run.evaluators import InProcessEvaluator
from worker._pool.shm import (
    SharedDescriptor,
    attach_dataset,
    default_directory,
    remove_stale_files,
    share_dataset,
)

ARRAYS = ("call_caller", "call_ts_ms", "call_series", "series_offsets", "ts_ms", "open",
          "high", "low", "close", "volume", "call_order", "entry_idx", "series_end")
BIG_GRID = {"tp_mults": [1.2 + 0.25 * i for i in range(16)],
            "sl_mults": [0.5 + 0.03 * i for i in range(16)],
            "max_hold_hrs": [1.0, 2.0, 4.0, 8.0, 48.0]}   # 1,280 points


@pytest.fixture(scope="module")
def ds():
    return synthetic_dataset(n_calls=300, n_candles=600, seed=3)


@pytest.fixture(scope="module")
def shared(ds, tmp_path_factory):
    sh = share_dataset(ds, str(tmp_path_factory.mktemp("shm")))
    yield sh
    sh.close()


@pytest.fixture(scope="module")
async def pool():
    # Small spans: every job here is cut into many, like a large job would be.
    async with WorkerPool(2, target_span_evaluations=2_000) as p:
        yield p


def job_of(ds, *, mode="capital", per_caller=False, grid=None):
    study = make_study(ds, mode=mode, grid=grid)
    codes = np.unique(ds.call_caller[study.positions]) if per_caller else None
    return GridJob(grid_levels(study.grid, study.config), study.positions, codes,
                   study.config, study.mode)


def assert_same(got, want):
    assert len(got) == len(want) == 3
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        assert np.array_equal(g, w, equal_nan=True)


class pidfd:
    """A pidfd: readable once the process has ended (even as a zombie)."""

    def __init__(self, pid: int) -> None:
        self.fd = os.pidfd_open(pid)

    def __enter__(self) -> int:
        return self.fd

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


def wait_readable(fds: list[int], timeout: float = 30.0) -> bool:
    """Every fd readable within ``timeout`` (a bound on failure, not a sleep)."""
    import select

    pending = set(fds)
    poll = select.poll()
    for fd in fds:
        poll.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for fd, _ in poll.poll(max(1, int((deadline - time.monotonic()) * 1000))):
            pending.discard(fd)
            poll.unregister(fd)
    return not pending



def kill_first_server(target, killed: list[int], sig: int = signal.SIGKILL):
    """An ``on_span_start`` hook that sends ``sig`` to the first process
    given a span of ``target``: called right after the span went to it, so
    it is serving that span. The pid goes into ``killed``."""
    def hook(pid, job):
        if job is target and not killed:
            killed.append(pid)
            os.kill(pid, sig)
    return hook

def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ------------------------------------------------------------ shared datasets

def test_shared_dataset_views_and_close(ds, tmp_path):
    sh = share_dataset(ds, str(tmp_path))
    assert os.path.basename(sh.path).startswith(f"optimizer-worker-{os.getpid()}-")
    assert os.path.getsize(sh.path) == sh.nbytes >= ds.nbytes
    for name in ARRAYS:
        a, b = getattr(ds, name), getattr(sh.dataset, name)
        assert type(b) is np.ndarray and not b.flags.writeable and b.flags.c_contiguous
        assert b.ctypes.data % 64 == 0
        assert numba.typeof(a) == numba.typeof(b)  # same kernel specialization
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert sh.dataset.call_ids == ds.call_ids and sh.dataset.caller_names == ds.caller_names
    # The descriptor is small and survives msgpack (it travels to pool processes).
    wire = msgspec.msgpack.encode(sh.descriptor)
    assert len(wire) < 2_000
    desc = msgspec.convert(msgspec.msgpack.decode(wire), SharedDescriptor)
    att = attach_dataset(desc)
    assert att.n_calls == ds.n_calls and att.series_key == ds.series_key
    for name in ARRAYS:
        assert np.array_equal(getattr(att, name), getattr(ds, name))
        assert numba.typeof(getattr(att, name)) == numba.typeof(getattr(ds, name))
    assert_same(evaluate(att, job_of(ds)), evaluate(ds, job_of(ds)))
    # close() unlinks, is idempotent, and mapped views stay valid.
    sh.close()
    sh.close()
    assert not os.path.exists(sh.path)
    assert np.array_equal(sh.dataset.close, ds.close)


def test_close_waits_for_holders(ds, tmp_path):
    sh = share_dataset(ds, str(tmp_path))
    with sh.hold():
        sh.close()
        assert os.path.exists(sh.path)  # a request still needs it
    assert not os.path.exists(sh.path)
    with pytest.raises(InternalError):
        with sh.hold():
            pass


def test_attach_in_another_process_sees_identical_arrays(ds, tmp_path):
    sh = share_dataset(ds, str(tmp_path))
    try:
        code = (
            "import sys, hashlib, msgspec\n"
            "from worker._pool.shm import SharedDescriptor, attach_dataset\n"
            "d = msgspec.json.decode(sys.stdin.buffer.read(), type=SharedDescriptor)\n"
            "a = attach_dataset(d)\n"
            f"for n in {ARRAYS!r}:\n"
            "    x = getattr(a, n)\n"
            "    print(n, x.dtype.str, x.shape, hashlib.sha256(x.tobytes()).hexdigest())\n")
        out = subprocess.run([sys.executable, "-c", code], input=msgspec.json.encode(
            sh.descriptor), capture_output=True, check=True).stdout.decode().splitlines()
        want = [f"{n} {getattr(ds, n).dtype.str} {getattr(ds, n).shape} "
                f"{hashlib.sha256(getattr(ds, n).tobytes()).hexdigest()}" for n in ARRAYS]
        assert out == want
    finally:
        sh.close()


def test_remove_stale_files(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that is certainly not alive (reaped)
    stale = tmp_path / f"optimizer-worker-{dead.pid}-abc.bin"
    stale.write_bytes(b"x")
    mine = tmp_path / f"optimizer-worker-{os.getpid()}-abc.bin"
    mine.write_bytes(b"x")
    other = tmp_path / "unrelated.bin"
    other.write_bytes(b"x")
    # A dead pid but a held lock: a live daemon in another pid namespace.
    locked = share_dataset(synthetic_dataset(n_calls=3, n_candles=5, seed=1), str(tmp_path))
    locked_as_dead = tmp_path / f"optimizer-worker-{dead.pid}-locked.bin"
    os.link(locked.path, locked_as_dead)
    try:
        assert remove_stale_files(str(tmp_path)) == [str(stale)]
        assert mine.exists() and other.exists() and locked_as_dead.exists()
    finally:
        locked.close()


def test_default_directory():
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        assert default_directory(1) == "/dev/shm"
    assert default_directory(1 << 60) != "/dev/shm"  # never room for an exabyte


# ------------------------------------------------------------ spans

@pytest.mark.parametrize("sizes,points,workers", [
    ([300], 30, 2), ([300], 1, 2), ([0], 5, 2), ([5, 0, 1000, 3, 7], 11, 2),
    (list(range(1, 60)), 13, 3), ([10_000], 4_000, 2), ([1], 1, 4),
])
def test_cut_spans_cover_every_item_once(sizes, points, workers):
    for target in (1, 500, 50_000, 10**12):
        spans = cut_spans(np.array(sizes), points, workers, target)
        n = len(sizes) * points
        assert spans[0][0] == 0 and spans[-1][1] == n
        assert all(a < b for a, b in spans)
        assert all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))
        if target == 10**12:
            assert spans == [(0, n)]  # little work: one span, no split overhead


def test_cut_spans_balance_work():
    sizes = np.array([1, 1, 1, 5_000, 1, 1])  # one big group among tiny ones
    spans = cut_spans(sizes, 100, 2, 50_000)
    assert len(spans) >= 2 and len(spans) % 2 == 0
    cost = [sum((sizes[i // 100] + 16) for i in range(a, b)) for a, b in spans]
    assert max(cost) <= 2 * sum(cost) / len(spans)


# ------------------------------------------------------------ pool results

@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["capital", "per_trade"])
@pytest.mark.parametrize("per_caller", [False, True])
async def test_pool_equals_in_process(pool, ds, shared, mode, per_caller):
    job = job_of(ds, mode=mode, per_caller=per_caller)
    progress = []
    got = await pool.evaluate(shared, "ds", job,
                              on_progress=lambda d, t: progress.append((d, t)))
    assert_same(got, evaluate(ds, job))
    # The job was cut in many spans; progress only grows and reaches every item.
    sizes = group_sizes(shared, job)
    assert len(cut_spans(sizes, job.levels.n_points, 2, pool.target_span_evaluations)) > 4
    assert progress and progress[-1] == (job.n_items, job.n_items)
    assert all(a[0] < b[0] for a, b in zip(progress, progress[1:]))


def test_cut_spans_of_a_range():
    sizes = np.array([5, 0, 1000, 3, 7])
    n = sizes.size * 11
    for target in (1, 500, 50_000, 10**12):
        assert cut_spans(sizes, 11, 2, target, (0, n)) == cut_spans(sizes, 11, 2, target)
        for lo, hi in [(0, 1), (3, 40), (11, 22), (20, n), (n - 1, n)]:
            spans = cut_spans(sizes, 11, 2, target, (lo, hi))
            assert spans[0][0] == lo and spans[-1][1] == hi and all(a < b for a, b in spans)
            assert all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))
    assert cut_spans(sizes, 11, 2, 500, (7, 7)) == []
    with pytest.raises(ValueError):
        cut_spans(sizes, 11, 2, 500, (0, n + 1))


@pytest.mark.anyio
@pytest.mark.parametrize("per_caller", [False, True])
async def test_pool_evaluates_a_span_of_a_job(pool, ds, shared, per_caller):
    job = job_of(ds, per_caller=per_caller)
    want = evaluate(ds, job)
    n = job.n_items
    sizes = group_sizes(shared, job)
    middle = (n // 3, 2 * n // 3 + 1)
    assert len(cut_spans(sizes, job.levels.n_points, 2, pool.target_span_evaluations,
                         middle)) >= 2  # cut into several spans, like a whole job
    for a, b in [(0, n), (0, 1), (n - 1, n), middle, (5, 5)]:
        progress = []
        got = await pool.evaluate(shared, "ds", job, span=(a, b),
                                  on_progress=lambda d, t: progress.append((d, t)))
        assert_same(got, tuple(w[a:b] for w in want))
        assert_same(got, evaluate(ds, job, (a, b)))
        if b > a:
            assert progress[-1] == (b - a, b - a)
    with pytest.raises(ValueError):
        await pool.evaluate(shared, "ds", job, span=(0, n + 1))
    assert pool.stats()["queued_spans"] == 0 and pool.restarts == 0


@pytest.mark.anyio
async def test_flows_on_pool_equal_the_library(pool, ds, shared):
    sd = shared.dataset
    on_pool = PoolEvaluator(pool, shared)
    for mode in ("capital", "per_trade"):
        got = await drive(optimize_flow(sd, mode=mode, include_all=True), on_pool)
        assert got == optimize(ds, mode=mode, include_all=True)
        got = await drive(grouped_eval_flow(
            sd, mode=mode, grouped_params="optimize", filter_collapsed=False), on_pool)
        assert got == grouped_eval(ds, mode=mode, grouped_params="optimize",
                                   filter_collapsed=False)
    want = optimize_per_caller(ds)
    assert await drive(optimize_per_caller_flow(sd), on_pool) == want
    assert drive_sync(optimize_per_caller_flow(sd), InProcessEvaluator(sd)) == want
    assert os.path.exists(shared.path)  # a dataset shared by its owner stays shared


@pytest.mark.anyio
async def test_pool_evaluator_shares_a_plain_dataset_for_its_run_alone(pool, ds, tmp_path):
    """An inline dataset: shared when the run starts, removed when it ends,
    also when it fails."""
    seen: list[str] = []
    evaluator = PoolEvaluator(pool, ds, shm_dir=str(tmp_path))

    def on_job(job):
        seen.append(evaluator.shared.path)
        assert os.path.exists(evaluator.shared.path)

    got = await drive(optimize_flow(ds, include_all=True), evaluator, on_job=on_job)
    assert got == optimize(ds, include_all=True)
    assert len(seen) == 1 and not os.path.exists(seen[0]) and evaluator.shared is None

    def boom(job):
        seen.append(evaluator.shared.path)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await drive(optimize_flow(ds), evaluator, on_job=boom)
    assert len(seen) == 2 and not os.path.exists(seen[1]) and not os.listdir(tmp_path)
    assert pool.restarts == 0


@pytest.mark.anyio
async def test_concurrent_calls_share_the_pool(pool, ds, shared):
    jobs = [job_of(ds), job_of(ds, mode="per_trade", per_caller=True),
            job_of(ds, per_caller=True)]
    results = [None] * len(jobs)

    async def run(i):
        results[i] = await pool.evaluate(shared, "ds", jobs[i])

    async with anyio.create_task_group() as tg:
        for i in range(len(jobs)):
            tg.start_soon(run, i)
    for job, got in zip(jobs, results):
        assert_same(got, evaluate(ds, job))


@pytest.mark.anyio
async def test_cancel_drops_queued_work_and_pool_keeps_working(pool, ds, shared):
    big = job_of(ds, grid=BIG_GRID)
    seen = []
    with anyio.CancelScope() as scope:
        def cancel_at_first_progress(done, total):
            seen.append(done)
            scope.cancel()
        await pool.evaluate(shared, "ds", big, on_progress=cancel_at_first_progress)
    # Spans of both processes may finish in the same loop iteration, before
    # the cancel is delivered: at most one per process, never the whole job.
    assert scope.cancelled_caught and 1 <= len(seen) <= pool.size and seen[-1] < big.n_items
    assert pool.stats()["queued_spans"] == 0  # its queued spans went at once
    job = job_of(ds, per_caller=True)
    assert_same(await pool.evaluate(shared, "ds", job), evaluate(ds, job))
    assert pool.restarts == 0 and pool.alive == 2


@pytest.mark.anyio
async def test_failure_in_pool_process_fails_that_request_only(pool, ds, tmp_path):
    gone = share_dataset(ds, str(tmp_path))
    os.unlink(gone.path)  # pool processes cannot map it
    with pytest.raises(InternalError) as err:
        await pool.evaluate(gone, "gone", job_of(ds))
    assert err.value.code == -32603 and f"dataset file is gone: {gone.path}" in err.value.message
    gone.close()
    job = job_of(ds)
    ok = share_dataset(ds, str(tmp_path))
    try:
        assert_same(await pool.evaluate(ok, "ok", job), evaluate(ds, job))
        await pool.forget("ok")
    finally:
        ok.close()
    assert pool.restarts == 0


# ------------------------------------------------------------ dying and closing

@pytest.mark.anyio
async def test_killed_process_is_replaced_and_others_unaffected(ds, shared):
    job_a = job_of(ds, grid=BIG_GRID)       # many spans: still running when killed
    job_b = job_of(ds, mode="per_trade", per_caller=True)
    killed: list[int] = []
    seen: set[int] = set()
    async with WorkerPool(2, target_span_evaluations=20_000) as pool:
        seen.update(pool.all_pids)

        pool.on_span_start = kill_first_server(job_a, killed)
        outcome = {}

        async def run(name, job):
            try:
                outcome[name] = await pool.evaluate(shared, "ds", job)
            except InternalError as e:
                outcome[name] = e

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "a", job_a)
            tg.start_soon(run, "b", job_b)
        pool.on_span_start = None

        # A's span went to another process (tests/test_pool_retry.py): both exact.
        assert_same(outcome["a"], evaluate(ds, job_a))
        assert_same(outcome["b"], evaluate(ds, job_b))
        assert pool.restarts == 1 and pool.stats()["span_retries"] == 1
        assert not alive(killed[0])

        job = job_of(ds, per_caller=True)
        assert_same(await pool.evaluate(shared, "ds", job), evaluate(ds, job))
        await pool.wait_ready()
        assert pool.alive == 2 and killed[0] not in pool.pids
        seen.update(pool.all_pids)
        assert_same(await pool.evaluate(shared, "ds", job_a), evaluate(ds, job_a))
        assert pool.restarts == 1

        # A process that dies idle fails nothing; it is replaced too.
        idle = pool.pids[0]
        with pidfd(idle) as fd:
            os.kill(idle, signal.SIGKILL)
            assert wait_readable([fd])
        assert_same(await pool.evaluate(shared, "ds", job), evaluate(ds, job))
        while pool.restarts < 2 or pool.alive < 2:
            await pool._wake.wait()  # woken on every death and every ready
        seen.update(pool.all_pids)

        # Shutdown while a request runs: it fails at once, nothing is left.
        started = anyio.Event()
        failed = []

        async def doomed():
            try:
                await pool.evaluate(shared, "ds", job_a,
                                    on_progress=lambda d, t: started.set())
            except InternalError as e:
                failed.append(e)

        async with anyio.create_task_group() as tg:
            tg.start_soon(doomed)
            await started.wait()
            await pool.aclose()
        assert failed and "shutting down" in failed[0].message
    assert len(seen) == 4
    assert not any(alive(pid) for pid in seen)  # closed, reaped: no orphans, no zombies


@pytest.mark.anyio
async def test_cancelled_owner_leaves_no_process(ds, shared):
    pids: list[int] = []
    with anyio.CancelScope() as scope:
        async with WorkerPool(2, target_span_evaluations=20_000) as pool:
            pids.extend(pool.all_pids)

            def cancel_owner(done, total):
                scope.cancel()  # the daemon is cancelled mid-request

            await pool.evaluate(shared, "ds", job_of(ds, grid=BIG_GRID),
                                on_progress=cancel_owner)
    assert scope.cancelled_caught and len(pids) == 2
    assert not any(alive(pid) for pid in pids)
    with pytest.raises(InternalError):
        await pool.evaluate(shared, "ds", job_of(ds))


def test_daemon_killed_takes_its_pool_processes_along():
    """Even SIGKILL of the daemon (no clean-up runs) leaves no pool process."""
    code = ("import anyio\n"
            "from worker._pool.pool import WorkerPool\n"
            "async def main():\n"
            "    async with WorkerPool(2) as pool:\n"
            "        print(*pool.all_pids, flush=True)\n"
            "        await anyio.sleep_forever()\n"
            "anyio.run(main)\n")
    daemon = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        pids = [int(p) for p in daemon.stdout.readline().split()]
        assert len(pids) == 2
        fds = [os.pidfd_open(p) for p in pids]
        try:
            daemon.kill()
            daemon.wait()
            assert wait_readable(fds)  # PR_SET_PDEATHSIG: they died with it
        finally:
            for fd in fds:
                os.close(fd)
    finally:
        daemon.kill()
        daemon.wait()
        daemon.stdout.close()


@pytest.mark.anyio
async def test_checkpointed_run_scans_once_per_job_per_process(pool, ds, shared, tmp_path,
                                                               monkeypatch):
    """Each chunk is its own ``evaluate`` call; the pool processes keep the
    job's scan across them (keyed by the job, dropped at ``release``)."""
    import worker._run.chunks as chunks
    from worker._run.checkpoint import CheckpointingEvaluator
    from worker._run.journal import Journal

    monkeypatch.setattr(chunks, "CHUNK_EVALUATIONS", 3_000)
    sd = shared.dataset
    for kind, make in (("per_caller", lambda d: optimize_per_caller_flow(d)),
                       ("grouped", lambda d: grouped_eval_flow(
                           d, grouped_params="optimize", filter_collapsed=False))):
        jobs: list[GridJob] = []
        before = pool.job_scans
        with Journal.open(tmp_path / f"{kind}.jsonl", f"fp-{kind}") as journal:
            run = CheckpointingEvaluator(PoolEvaluator(pool, shared), journal)
            got = await drive(make(sd), run, on_job=jobs.append)
        want = await anyio.to_thread.run_sync(lambda: drive_sync(make(ds), InProcessEvaluator(ds)))
        assert msgspec.json.encode(got) == msgspec.json.encode(want)
        assert run.stats.chunks_computed >= 4 * len(jobs)   # many chunks per job
        scans = pool.job_scans - before
        assert len(jobs) <= scans <= pool.size * len(jobs), (kind, scans, len(jobs))
        assert not pool._kept._holders   # every job was released: dropped in the processes
    assert pool.restarts == 0


@pytest.mark.anyio
async def test_kept_job_of_a_failed_run_is_dropped_when_collected(pool, ds, shared):
    import gc

    job = job_of(ds, per_caller=True)
    n = job.n_items
    for a, b in [(0, n // 2), (n // 2, n)]:
        got = await pool.evaluate(shared, "ds", job, span=(a, b), keep_job=True)
        assert_same(got, evaluate(ds, job, (a, b)))
    assert pool._kept._holders
    del job, got
    # Another job's spans on both processes: the serving tasks let go of the
    # last request (and its job); then the job is collected and dropped.
    other = job_of(ds, mode="per_trade", per_caller=True)
    assert_same(await pool.evaluate(shared, "ds", other), evaluate(ds, other))
    gc.collect()
    pool.drop_job(None)
    assert not pool._kept._holders
