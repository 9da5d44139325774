"""Pinned CPU sets: parsing, planning one disjoint set per worker, and a real pinned child."""
import subprocess
import sys

import pytest

from hepspark.cpusets import (
    allowed_cpus,
    available_cpus,
    format_cpus,
    parse_cpus,
    pin,
    thread_env,
    worker_cpu_sets,
)


def test_cpu_lists_read_and_write_like_the_kernel():
    assert parse_cpus("0-2,5") == (0, 1, 2, 5)
    assert parse_cpus(" 3 ") == (3,)
    assert format_cpus((5, 0, 1, 2)) == "0-2,5"
    assert format_cpus((1,)) == "1" and format_cpus((0, 2, 3)) == "0,2-3"
    for bad in ("", "a", "3-1", "-1"):
        with pytest.raises(ValueError, match="CPU list"):
            parse_cpus(bad)


def test_each_worker_gets_its_own_cpus_or_a_clear_refusal():
    assert worker_cpu_sets(2, cpus_per_worker=1, available=(0, 1)) == [(0,), (1,)]
    assert worker_cpu_sets(2, cpus_per_worker=2, available=range(4)) == [(0, 1), (2, 3)]
    assert worker_cpu_sets(1, worker_cpus=[(1,), (0,)], available=(0, 1)) == [(1,)]
    with pytest.raises(ValueError, match="needs 3 CPUs; this process may use 2 \\(0-1\\)"):
        worker_cpu_sets(3, cpus_per_worker=1, available=(0, 1))
    with pytest.raises(ValueError, match="CPU 1 is in the sets of workers 1 and 2"):
        worker_cpu_sets(2, worker_cpus=[(0, 1), (1, 2)], available=range(4))
    with pytest.raises(ValueError, match="CPU\\(s\\) 7 this process may not use"):
        worker_cpu_sets(2, worker_cpus=[(0,), (7,)], available=(0, 1))
    with pytest.raises(ValueError, match="one set per worker"):
        worker_cpu_sets(2, worker_cpus=[(0,)], available=(0, 1))
    with pytest.raises(ValueError, match="same number of CPUs"):
        worker_cpu_sets(2, worker_cpus=[(0,), (1, 2)], available=range(4))


def test_a_pinned_child_and_its_children_run_on_the_set_with_sized_thread_pools():
    cpu = available_cpus()[-1]
    # the child starts a grandchild that reports its own affinity: inherited
    code = ("import os, subprocess, sys; print(sorted(os.sched_getaffinity(0)), "
            "os.environ['OMP_NUM_THREADS'], subprocess.run([sys.executable, '-c', "
            "'import os; print(sorted(os.sched_getaffinity(0)))'], capture_output=True, "
            "text=True).stdout.strip())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         preexec_fn=pin((cpu,)), env={**thread_env(1)}, check=True).stdout
    assert out.split() == [f"[{cpu}]", "1", f"[{cpu}]"]
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                            preexec_fn=pin((cpu,)))
    try:
        assert allowed_cpus(proc.pid) == str(cpu)
    finally:
        proc.kill()
        proc.wait()
    assert thread_env(4)["TF_NUM_INTRAOP_THREADS"] == "4"
