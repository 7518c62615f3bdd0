"""The pool's default size honours the CPU quota of the process's cgroup
(``docker run --cpus 2`` on a 64-core host: 2 pool processes), cgroup v2 and
v1, the process's own cgroup and its parents, and the CPU affinity.

Each test builds a fake root (``proc/self/cgroup``, ``sys/fs/cgroup/...``)
in tmp_path and points ``available_cpus`` at it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from worker._daemon.settings import default_pool_size
from worker._pool.cpus import available_cpus, cgroup_cpu_limit

AFFINITY = len(os.sched_getaffinity(0))


def fake_root(tmp_path: Path, cgroup: str, files: dict[str, str]) -> Path:
    """``cgroup``: the text of /proc/self/cgroup; ``files``: path -> text
    under sys/fs/cgroup."""
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "cgroup").write_text(cgroup)
    for rel, text in files.items():
        path = tmp_path / "sys" / "fs" / "cgroup" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_v2_quota_at_the_namespace_root(tmp_path):
    root = fake_root(tmp_path, "0::/\n", {"cpu.max": "200000 100000\n"})
    assert cgroup_cpu_limit(root) == 2
    assert available_cpus(root) == min(2, AFFINITY)


def test_v2_no_quota_means_affinity(tmp_path):
    root = fake_root(tmp_path, "0::/\n", {"cpu.max": "max 100000\n"})
    assert cgroup_cpu_limit(root) is None
    assert available_cpus(root) == AFFINITY


def test_v2_fractional_quota_rounds_up_and_is_at_least_one(tmp_path):
    root = fake_root(tmp_path, "0::/\n", {"cpu.max": "150000 100000\n"})
    assert cgroup_cpu_limit(root) == 2
    root2 = fake_root(tmp_path / "b", "0::/\n", {"cpu.max": "5000 100000\n"})
    assert cgroup_cpu_limit(root2) == 1 and available_cpus(root2) == 1


def test_v2_own_cgroup_and_its_parents_smallest_wins(tmp_path):
    # The process is in /system.slice/job.scope; its parent caps at 1 CPU,
    # its own cgroup at 3, the (host) root has no cpu.max at all.
    root = fake_root(tmp_path, "0::/system.slice/job.scope\n", {
        "system.slice/cpu.max": "100000 100000\n",
        "system.slice/job.scope/cpu.max": "300000 100000\n",
    })
    assert cgroup_cpu_limit(root) == 1 and available_cpus(root) == 1
    # Own cgroup smaller than the parent's.
    root2 = fake_root(tmp_path / "b", "0::/a/b\n", {
        "a/cpu.max": "max 100000\n", "a/b/cpu.max": "200000 100000\n"})
    assert cgroup_cpu_limit(root2) == 2


def test_v2_quota_only_on_the_mount_root(tmp_path):
    # cgroup namespaces off: the path names a cgroup not visible here.
    root = fake_root(tmp_path, "0::/docker/abc123\n", {"cpu.max": "100000 100000\n"})
    assert cgroup_cpu_limit(root) == 1


def test_v1_cfs_quota(tmp_path):
    cgroup = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n"
    root = fake_root(tmp_path, cgroup, {
        "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "200000\n",
        "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
        "cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
        "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
    })
    assert cgroup_cpu_limit(root) == 2
    unlimited = fake_root(tmp_path / "b", "4:cpu,cpuacct:/\n", {
        "cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    assert cgroup_cpu_limit(unlimited) is None and available_cpus(unlimited) == AFFINITY


def test_v1_quota_inside_a_container_at_the_mount_root(tmp_path):
    # Docker on v1 bind-mounts the container's own cgroup at the mount root.
    root = fake_root(tmp_path, "5:cpu,cpuacct:/docker/abc\n", {
        "cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"})
    assert cgroup_cpu_limit(root) == 1


def test_nothing_readable_means_affinity(tmp_path):
    assert cgroup_cpu_limit(tmp_path) is None
    assert available_cpus(tmp_path) == AFFINITY
    garbage = fake_root(tmp_path / "b", "0::/\n", {"cpu.max": "lots\n"})
    assert cgroup_cpu_limit(garbage) is None


def test_default_pool_size_uses_the_quota(tmp_path):
    root = fake_root(tmp_path, "0::/\n", {"cpu.max": "100000 100000\n"})
    assert default_pool_size(root) == 1
    assert default_pool_size() == available_cpus() >= 1


@pytest.mark.skipif(not Path("/proc/self/cgroup").exists(), reason="Linux")
def test_this_machine():
    assert 1 <= available_cpus() <= AFFINITY
