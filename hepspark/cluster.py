"""A real Spark standalone cluster on one machine: a master and N workers on 127.0.0.1.

Started from the pip pyspark (which has no ``start-master.sh``) with ``spark-class``, as
detached processes whose PIDs, ports and log files are recorded in a state file, so that
``hepspark cluster down`` stops exactly what ``up`` started and nothing else.

    hepspark cluster up --workers 2 --cores-per-worker 1 --memory 2g
    spark-submit --master spark://127.0.0.1:PORT spark_jobs/train_higgs.py --backend bigdl
    hepspark cluster down

>>> with standalone_cluster(workers=2, cores_per_worker=1) as info:
...     spark = get_spark(master=info.master_url)
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

STATE_FILE = "cluster.json"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


class ClusterError(RuntimeError):
    """The cluster could not be started (a daemon died, a timeout, one already runs)."""


@dataclass
class ClusterInfo:
    master_url: str
    web_ui: str
    master_pid: int
    worker_pids: list[int]
    cores_per_worker: int
    memory: str
    state_dir: str
    logs: list[str] = field(default_factory=list)

    @property
    def total_cores(self) -> int:
        return self.cores_per_worker * len(self.worker_pids)

    def format(self) -> str:
        return "\n".join([
            f"Spark standalone cluster: {len(self.worker_pids)} worker(s) x "
            f"{self.cores_per_worker} core(s), {self.memory} each",
            f"  master   {self.master_url}   (pid {self.master_pid})",
            f"  web UI   {self.web_ui}",
            f"  workers  pids {', '.join(map(str, self.worker_pids))}",
            f"  logs     {os.path.join(self.state_dir, 'logs')}",
            f"  submit   spark-submit --master {self.master_url} --executor-cores "
            f"{self.cores_per_worker} spark_jobs/train_higgs.py ...",
            f"  stop     hepspark cluster down --state-dir {self.state_dir}",
        ])


def default_state_dir() -> str:
    return os.environ.get("HEPSPARK_CLUSTER_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "hepspark", "cluster"
    )


def spark_home() -> str:
    import pyspark

    home = os.path.dirname(pyspark.__file__)
    if not os.path.exists(os.path.join(home, "bin", "spark-class")):
        raise FileNotFoundError(f"{home}/bin/spark-class not found: reinstall pyspark")
    return home


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _alive(pid: int, spark_class: str) -> bool:
    """The PID runs, and is the Spark daemon we started (not a reused PID)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return spark_class.encode() in handle.read()
    except OSError:
        return False


def _load(state_dir: str) -> ClusterInfo | None:
    try:
        with open(os.path.join(state_dir, STATE_FILE)) as handle:
            return ClusterInfo(**json.load(handle))
    except FileNotFoundError:
        return None


def _save(info: ClusterInfo) -> None:
    path = os.path.join(info.state_dir, STATE_FILE)
    with open(path + ".tmp", "w") as handle:
        json.dump(asdict(info), handle, indent=2)
    os.replace(path + ".tmp", path)


def alive_workers(web_ui: str) -> int:
    with urllib.request.urlopen(f"{web_ui}/json/", timeout=5) as response:
        status = json.load(response)
    return sum(1 for w in status.get("workers", []) if w.get("state") == "ALIVE")


def start_cluster(
    workers: int,
    cores_per_worker: int,
    memory: str = "2g",
    state_dir: str | None = None,
    host: str = "127.0.0.1",
    timeout_s: float = 120,
) -> ClusterInfo:
    """Start a master and ``workers`` workers and wait until all are registered."""
    if workers < 1 or cores_per_worker < 1:
        raise ValueError("--workers and --cores-per-worker must be >= 1")
    state_dir = os.path.abspath(state_dir or default_state_dir())
    running = _load(state_dir)
    if running is not None:
        if _alive(running.master_pid, MASTER_CLASS):
            raise ClusterError(
                f"a cluster started from {state_dir} is still running ({running.master_url}); "
                f"stop it first: hepspark cluster down --state-dir {state_dir}"
            )
        os.remove(os.path.join(state_dir, STATE_FILE))  # stale: its daemons are gone
    logs_dir = os.path.join(state_dir, "logs")
    os.makedirs(logs_dir, exist_ok=True)
    spark_class = os.path.join(spark_home(), "bin", "spark-class")
    env = {
        **os.environ,
        "SPARK_HOME": spark_home(),
        "SPARK_LOCAL_IP": host,
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
        "SPARK_WORKER_DIR": os.path.join(state_dir, "work"),
        "SPARK_LOG_DIR": logs_dir,
    }
    port, ui_port = free_port(host), free_port(host)
    master_url, web_ui = f"spark://{host}:{port}", f"http://{host}:{ui_port}"
    procs: list[tuple[subprocess.Popen, str]] = []

    def launch(name: str, args: list[str]) -> subprocess.Popen:
        log = os.path.join(logs_dir, f"{name}.log")
        with open(log, "ab") as out:
            proc = subprocess.Popen([spark_class, *args], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        procs.append((proc, log))
        return proc

    try:
        master = launch("master", [MASTER_CLASS, "--host", host, "--port", str(port),
                                   "--webui-port", str(ui_port)])
        _wait(lambda: _answers(web_ui), procs, timeout_s, "the master to answer")
        for i in range(workers):
            launch(f"worker-{i + 1}", [
                WORKER_CLASS, "--host", host, "--cores", str(cores_per_worker),
                "--memory", memory, "--webui-port", "0",
                "--work-dir", os.path.join(state_dir, "work", str(i + 1)), master_url,
            ])
        _wait(lambda: alive_workers(web_ui) >= workers, procs, timeout_s,
              f"{workers} worker(s) to register")
    except BaseException:
        for proc, _ in reversed(procs):
            _terminate(proc.pid)
        raise
    info = ClusterInfo(
        master_url=master_url, web_ui=web_ui, master_pid=master.pid,
        worker_pids=[p.pid for p, _ in procs[1:]], cores_per_worker=cores_per_worker,
        memory=memory, state_dir=state_dir, logs=[log for _, log in procs],
    )
    _save(info)
    return info


def _answers(web_ui: str) -> bool:
    try:
        alive_workers(web_ui)
        return True
    except OSError:
        return False


def _wait(ready, procs, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        for proc, log in procs:
            if proc.poll() is not None:
                raise ClusterError(
                    f"a Spark daemon exited (status {proc.returncode}) while waiting for "
                    f"{what}; the end of {log}:\n{_tail(log)}"
                )
        try:
            if ready():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ClusterError(
                f"timed out after {timeout_s:.0f} s waiting for {what}; the end of "
                f"{procs[-1][1]}:\n{_tail(procs[-1][1])}"
            )
        time.sleep(0.5)


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return "(no log)"


def _terminate(pid: int, timeout_s: float = 30) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
            if done == pid:
                return
        except ChildProcessError:
            pass
        if not os.path.exists(f"/proc/{pid}") or _zombie(pid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def stop_cluster(state_dir: str | None = None, timeout_s: float = 30) -> list[int]:
    """Stop the daemons recorded in ``state_dir`` (workers, then the master); returns the
    PIDs stopped. Nothing recorded: nothing to do."""
    state_dir = os.path.abspath(state_dir or default_state_dir())
    info = _load(state_dir)
    if info is None:
        return []
    stopped = []
    for pid, cls in [(p, WORKER_CLASS) for p in info.worker_pids] + [
        (info.master_pid, MASTER_CLASS)
    ]:
        if _alive(pid, cls):  # never signal a PID that is no longer our daemon
            _terminate(pid, timeout_s)
            stopped.append(pid)
    os.remove(os.path.join(state_dir, STATE_FILE))
    return stopped


def cluster_status(state_dir: str | None = None) -> dict | None:
    info = _load(os.path.abspath(state_dir or default_state_dir()))
    if info is None:
        return None
    status = asdict(info)
    status["master_alive"] = _alive(info.master_pid, MASTER_CLASS)
    status["workers_alive"] = [_alive(p, WORKER_CLASS) for p in info.worker_pids]
    try:
        status["registered_workers"] = alive_workers(info.web_ui)
    except OSError:
        status["registered_workers"] = 0
    return status


@contextlib.contextmanager
def standalone_cluster(
    workers: int = 2, cores_per_worker: int = 1, memory: str = "2g",
    state_dir: str | None = None,
) -> Iterator[ClusterInfo]:
    """A cluster for the duration of a ``with`` block; stopped on exit, errors included."""
    info = start_cluster(workers, cores_per_worker, memory, state_dir)
    try:
        yield info
    finally:
        stop_cluster(info.state_dir)


# ---------------------------------------------------------------------------------- CLI
def _state_dir_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", help=f"PIDs, logs, work dirs (default "
                        f"$HEPSPARK_CLUSTER_DIR or {default_state_dir()})")


def add_up(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--cores-per-worker", type=int, default=1, help="default 1")
    parser.add_argument("--memory", default="2g", help="memory per worker (default 2g)")
    _state_dir_flag(parser)
    parser.set_defaults(handler=run_up)


def run_up(args: argparse.Namespace) -> int:
    print(f"[cluster] starting a master and {args.workers} worker(s) on 127.0.0.1 ...",
          flush=True)
    start = time.perf_counter()
    info = start_cluster(args.workers, args.cores_per_worker, args.memory, args.state_dir)
    print(info.format())
    print(f"[cluster] up in {time.perf_counter() - start:.1f} s")
    return 0


def add_down(parser: argparse.ArgumentParser) -> None:
    _state_dir_flag(parser)
    parser.set_defaults(handler=run_down)


def run_down(args: argparse.Namespace) -> int:
    stopped = stop_cluster(args.state_dir)
    print(f"[cluster] stopped pids {', '.join(map(str, stopped))}" if stopped
          else "[cluster] no cluster recorded there: nothing to stop")
    return 0


def add_status(parser: argparse.ArgumentParser) -> None:
    _state_dir_flag(parser)
    parser.set_defaults(handler=run_status)


def run_status(args: argparse.Namespace) -> int:
    status = cluster_status(args.state_dir)
    if status is None:
        print("[cluster] none recorded (start one with 'hepspark cluster up')")
        return 1
    print(json.dumps({k: status[k] for k in ("master_url", "web_ui", "master_alive",
                                             "workers_alive", "registered_workers")},
                     indent=2))
    return 0 if status["master_alive"] else 1
