"""Pinned CPU sets: a "node" of the scaling study is a set of cores nothing else uses.

A process started with :func:`pin` as its ``preexec_fn`` runs on its CPU set only, and so
does everything it starts (Linux children inherit the affinity mask): a Spark worker's
executor JVMs, their Python workers, Horovod's background thread, Gloo, tf.data and reader
threads. :func:`thread_env` sizes the thread pools that would otherwise size themselves
from the machine (TensorFlow's intra/inter-op pools, OpenMP/BLAS). Affinity, not a cgroup
cpuset: it needs no privileges and this machine has cgroup v1 only.

>>> worker_cpu_sets(2, cpus_per_worker=1, available=(0, 1))
[(0,), (1,)]
>>> format_cpus((0, 1, 2, 5))
'0-2,5'
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence

CpuSet = tuple[int, ...]


def parse_cpus(text: str) -> CpuSet:
    """``"0-2,5"`` (the kernel's list format, as ``taskset -c`` takes it) as ``(0, 1, 2, 5)``."""
    cpus: set[int] = set()
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            low, _, high = part.partition("-")
            first, last = int(low), int(high or low)
            if first < 0 or last < first:
                raise ValueError
            cpus.update(range(first, last + 1))
    except ValueError:
        raise ValueError(f"bad CPU list {text!r}: write CPU numbers and ranges like 0 or "
                         "0-3 or 0,2") from None
    if not cpus:
        raise ValueError(f"bad CPU list {text!r}: it names no CPU")
    return tuple(sorted(cpus))


def format_cpus(cpus: Sequence[int]) -> str:
    """The kernel's list format of ``cpus`` (what ``Cpus_allowed_list`` shows)."""
    ordered, parts = sorted(set(cpus)), []
    start = prev = None
    for cpu in [*ordered, None]:
        if cpu is not None and prev is not None and cpu == prev + 1:
            prev = cpu
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = cpu
    return ",".join(parts)


NODE_SEPARATOR = "; "  # between the nodes' CPU lists: "0; 1" is node 0 on CPU 0, node 1 on 1


def format_node_cpus(nodes: Sequence[Sequence[int]]) -> str:
    """One CPU list per node, as a run's tag records them (``"0; 1"``)."""
    return NODE_SEPARATOR.join(format_cpus(cpus) for cpus in nodes)


def parse_node_cpus(text: str) -> list[CpuSet]:
    """The per-node CPU lists of :func:`format_node_cpus` back as CPU sets."""
    return [parse_cpus(part) for part in text.split(NODE_SEPARATOR.strip())]


def available_cpus() -> CpuSet:
    """The CPUs this process may run on (its affinity mask)."""
    return tuple(sorted(os.sched_getaffinity(0)))


def worker_cpu_sets(workers: int, cpus_per_worker: int | None = None,
                    worker_cpus: Sequence[CpuSet] = (),
                    available: Sequence[int] | None = None) -> list[CpuSet]:
    """One disjoint CPU set per worker: the explicit ``worker_cpus`` (one set each), or
    ``cpus_per_worker`` consecutive available CPUs each. Refused, naming the fix, when the
    sets overlap, are of unequal size, or name CPUs this process may not use."""
    available = tuple(available_cpus() if available is None else available)
    if worker_cpus and cpus_per_worker is not None:
        raise ValueError("give either --cpus-per-worker or --worker-cpus, not both")
    if not worker_cpus:
        if cpus_per_worker is None or cpus_per_worker < 1:
            raise ValueError(f"--cpus-per-worker must be >= 1, got {cpus_per_worker}")
        need = workers * cpus_per_worker
        if need > len(available):
            raise ValueError(
                f"--cpus-per-worker {cpus_per_worker} for {workers} worker(s) needs {need} "
                f"CPUs; this process may use {len(available)} ({format_cpus(available)}): use "
                "fewer workers or CPUs per worker")
        return [available[i * cpus_per_worker:(i + 1) * cpus_per_worker] for i in range(workers)]
    sets = [tuple(sorted(s)) for s in worker_cpus]
    if len(sets) < workers:
        raise ValueError(f"--worker-cpus names {len(sets)} CPU set(s) for {workers} worker(s): "
                         "give one set per worker, e.g. --worker-cpus 0 1")
    sets = sets[:workers]
    seen: dict[int, int] = {}
    for i, cpus in enumerate(sets, 1):
        for cpu in cpus:
            if cpu in seen:
                raise ValueError(f"--worker-cpus: CPU {cpu} is in the sets of workers {seen[cpu]} "
                                 f"and {i}; a node's cores must be its own")
            seen[cpu] = i
    missing = sorted(set(seen) - set(available))
    if missing:
        raise ValueError(f"--worker-cpus names CPU(s) {format_cpus(missing)} this process may "
                         f"not use (it may use {format_cpus(available)})")
    if len({len(s) for s in sets}) > 1:
        raise ValueError("--worker-cpus: every worker needs the same number of CPUs, got "
                         + " ".join(format_cpus(s) for s in sets))
    return sets


def thread_env(cores: int) -> dict[str, str]:
    """Environment that sizes the compute thread pools to ``cores``: TensorFlow's intra-op
    pool and a small inter-op pool, OpenMP (oneDNN) and the BLAS libraries."""
    threads = str(cores)
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads, "TF_NUM_INTRAOP_THREADS": threads,
            "TF_NUM_INTEROP_THREADS": str(min(cores, 2))}


def pin(cpus: Sequence[int]) -> Callable[[], None]:
    """A ``subprocess.Popen(preexec_fn=...)`` that pins the child (and all it starts) to
    ``cpus`` before it runs anything."""
    mask = set(cpus)

    def apply() -> None:
        os.sched_setaffinity(0, mask)

    return apply


def allowed_cpus(pid: int) -> str:
    """``Cpus_allowed_list`` of a running process, from ``/proc/PID/status``."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":", 1)[1].strip()
    raise OSError(f"/proc/{pid}/status has no Cpus_allowed_list")
