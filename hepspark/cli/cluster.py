"""``hepspark cluster up|down|status``: a Spark standalone cluster on this machine
(:mod:`hepspark.cluster`)."""
from __future__ import annotations

import argparse
import os
import time

from hepspark.cluster import (
    cluster_status,
    default_state_dir,
    start_cluster,
    state_path,
    stop_cluster,
)
from hepspark.cpusets import format_cpus, parse_cpus, worker_cpu_sets


def _add_state_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        help="where the PIDs (cluster.json), logs and work dirs live "
        f"(default $HEPSPARK_CLUSTER_DIR or {default_state_dir()})",
    )


def add_up(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument(
        "--cores-per-worker", type=int, default=1, help="cores each worker offers (default 1)"
    )
    parser.add_argument("--memory", default="2g", help="memory each worker offers (default 2g)")
    pinning = parser.add_mutually_exclusive_group()
    pinning.add_argument(
        "--cpus-per-worker", type=int,
        help="pin each worker (its executors, Python workers and their threads) to this "
        "many CPUs of its own, consecutive; sets --cores-per-worker",
    )
    pinning.add_argument(
        "--worker-cpus", nargs="+", type=parse_cpus, metavar="CPUS",
        help="pin worker i to the i-th CPU list, e.g. --worker-cpus 0 1 or 0-1 2-3",
    )
    parser.add_argument(
        "--timeout", type=float, default=120,
        help="seconds to wait for every worker to register (default 120)",
    )
    parser.add_argument(
        "--ui-host", default="127.0.0.1",
        help="address the master and worker web UIs listen on (default 127.0.0.1; "
        "0.0.0.0 shows them to the network)",
    )
    _add_state_dir(parser)
    parser.set_defaults(handler=run_up)


def run_up(args: argparse.Namespace) -> int:
    print(f"[cluster] starting a master and {args.workers} worker(s) on 127.0.0.1 ...",
          flush=True)
    start = time.perf_counter()
    cpus, cores = pinned_workers(args)
    if cpus:
        print(f"[cluster] worker CPUs: {' | '.join(format_cpus(c) for c in cpus)}", flush=True)
    info = start_cluster(args.workers, cores, args.memory, args.state_dir,
                         timeout_s=args.timeout, ui_host=args.ui_host, worker_cpus=cpus)
    print(info.format())
    print(f"[cluster] up in {time.perf_counter() - start:.1f} s, all workers registered")
    return 0


def pinned_workers(args: argparse.Namespace) -> tuple[list[tuple[int, ...]], int]:
    """(CPU set per worker, cores per worker) from --cpus-per-worker / --worker-cpus;
    ([], --cores-per-worker) when the workers are not pinned."""
    if args.cpus_per_worker is None and not args.worker_cpus:
        return [], args.cores_per_worker
    cpus = worker_cpu_sets(args.workers, args.cpus_per_worker, args.worker_cpus or ())
    return cpus, len(cpus[0])


def add_down(parser: argparse.ArgumentParser) -> None:
    _add_state_dir(parser)
    parser.set_defaults(handler=run_down)


def run_down(args: argparse.Namespace) -> int:
    path = state_path(args.state_dir)
    stopped = stop_cluster(args.state_dir)
    if stopped:
        print(f"[cluster] stopped pids {', '.join(map(str, stopped))}")
    else:
        print(f"[cluster] no running cluster recorded in {os.path.dirname(path)}: "
              "nothing to stop")
    return 0


def add_status(parser: argparse.ArgumentParser) -> None:
    _add_state_dir(parser)
    parser.set_defaults(handler=run_status)


def run_status(args: argparse.Namespace) -> int:
    """Exit status 0 when the master and every worker run and are registered, else 1."""
    status = cluster_status(args.state_dir)
    if status is None:
        print(f"[cluster] none recorded in {os.path.dirname(state_path(args.state_dir))} "
              "(start one with 'hepspark cluster up')")
        return 1
    alive = "alive" if status["master_alive"] else "NOT RUNNING"
    workers = ", ".join(f"{pid} {'alive' if up else 'NOT RUNNING'}"
                        for pid, up in zip(status["worker_pids"], status["workers_alive"]))
    registered = status["registered_workers"]
    print("\n".join([
        f"master   {status['master_url']}   pid {status['master_pid']} {alive}",
        f"web UI   {status['web_ui']}",
        f"workers  {workers}",
        f"registered with the master: "
        f"{'?' if registered is None else registered} of {status['workers']}",
    ]))
    healthy = status["master_alive"] and all(status["workers_alive"])
    return 0 if healthy and registered == status["workers"] else 1
