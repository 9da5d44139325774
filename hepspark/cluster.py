"""A real Spark standalone cluster on one machine: a master and N workers on 127.0.0.1.

The pip pyspark has no ``start-master.sh``, so the daemons are started with ``spark-class``
as detached processes. Their PIDs, ports and log files are recorded in a state file (each
PID as soon as its daemon starts, so an interrupted ``up`` can still be brought ``down``),
so that ``hepspark cluster down`` stops exactly what ``up`` started and nothing else.

The cluster only serves applications that know its secret: ``spark.authenticate`` with a
generated ``spark.authenticate.secret`` in ``STATE_DIR/conf/spark-defaults.conf`` (mode
0600), which the daemons and every submit read through ``SPARK_CONF_DIR`` (never on a
command line that ``ps`` shows). The master and worker web UIs listen on 127.0.0.1 unless
``--ui-host`` says otherwise, and no UI offers kill links (``spark.ui.killEnabled=false``).

    hepspark cluster up --workers 2 --cores-per-worker 1 --memory 2g
    SPARK_CONF_DIR=STATE_DIR/conf PYSPARK_PYTHON=.venv/bin/python \
        spark-submit --master spark://127.0.0.1:PORT ...
    hepspark cluster down

>>> with standalone_cluster(workers=2, cores_per_worker=1) as info:
...     spark = get_spark(master=info.master_url)
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

from hepspark.cpusets import CpuSet, format_cpus, pin, thread_env

STATE_FILE = "cluster.json"
CONF_DIR = "conf"  # SPARK_CONF_DIR of the daemons and of every submit: the shared secret
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
EXECUTOR_CLASS = "org.apache.spark.executor.CoarseGrainedExecutorBackend"
_MEMORY = re.compile(r"^[1-9][0-9]*[mMgG]$")
_POLL_S = 0.25


class ClusterError(RuntimeError):
    """The cluster could not be started or read: a daemon died, a timeout, one already runs."""


@dataclass(frozen=True)
class ClusterInfo:
    """What ``start_cluster`` started; stored verbatim in ``<state_dir>/cluster.json``."""

    master_url: str
    web_ui: str
    master_port: int
    web_ui_port: int
    master_pid: int
    worker_pids: list[int]
    workers: int
    cores_per_worker: int
    memory: str
    state_dir: str
    master_log: str
    worker_logs: list[str]
    conf_dir: str = ""  # SPARK_CONF_DIR holding the secret; "" for a record without one
    ui_host: str = "127.0.0.1"  # where the master and worker web UIs listen
    # each worker's own CPUs ("0", "2-3"), its executors and their Python workers pinned
    # there too; [] when the workers share the machine's CPUs
    worker_cpus: list[str] = field(default_factory=list)

    @property
    def total_cores(self) -> int:
        return self.workers * self.cores_per_worker

    def daemons(self) -> list[tuple[int, str]]:
        """(pid, Spark class) of every daemon, workers first: the order to stop them in."""
        return [(pid, WORKER_CLASS) for pid in self.worker_pids] + [
            (self.master_pid, MASTER_CLASS)
        ]

    def format(self) -> str:
        env, argv = spark_submit_command(self)
        submit = " ".join(
            [*(f"{k}={shlex.quote(v)}" for k, v in env.items()), shlex.join(argv)]
        )
        return "\n".join([
            f"Spark standalone cluster: {self.workers} worker(s) x {self.cores_per_worker} "
            f"core(s), {self.memory} each ({self.total_cores} cores)",
            f"  master   {self.master_url}   (pid {self.master_pid})",
            f"  web UI   {self.web_ui}   (UIs listen on {self.ui_host}, no kill links)",
            *([f"  secret   spark.authenticate on; the secret is in {self.conf_dir} (0600): "
               "submits need SPARK_CONF_DIR set to it"] if self.conf_dir else []),
            f"  workers  pids {', '.join(map(str, self.worker_pids))}",
            *([f"  pinned   worker CPUs {' | '.join(self.worker_cpus)} (executors, Python "
               "workers and their threads inherit them)"] if self.worker_cpus else []),
            f"  logs     {os.path.dirname(self.master_log)}",
            f"  submit   {submit}",
            f"  stop     hepspark cluster down --state-dir {self.state_dir}",
        ])


def default_state_dir() -> str:
    return os.environ.get("HEPSPARK_CLUSTER_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "hepspark", "cluster"
    )


def spark_home() -> str:
    """The pip pyspark package directory, which is a complete SPARK_HOME."""
    import pyspark

    home = os.path.dirname(pyspark.__file__)
    if not os.path.exists(os.path.join(home, "bin", "spark-class")):
        raise ClusterError(f"{home}/bin/spark-class not found: reinstall pyspark (make install)")
    return home


def spark_submit_command(
    info: ClusterInfo, script: str = "spark_jobs/train_higgs.py"
) -> tuple[dict[str, str], list[str]]:
    """(environment, argv) of a spark-submit of ``script`` to this cluster with this venv."""
    spark_submit = os.path.join(os.path.dirname(sys.executable), "spark-submit")
    if not os.path.exists(spark_submit):
        spark_submit = os.path.join(spark_home(), "bin", "spark-submit")
    env = {
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        # also where the driver's UI listens
        "SPARK_LOCAL_IP": info.master_url.split("//")[1].rsplit(":", 1)[0],
        **submit_env(info),
    }
    argv = [spark_submit, "--master", info.master_url,
            "--executor-cores", str(info.cores_per_worker), script]
    return env, argv


def submit_env(info: ClusterInfo) -> dict[str, str]:
    """What a submit to this cluster needs in its environment: ``SPARK_CONF_DIR`` with the
    cluster's secret (spark-submit and pyspark read ``spark-defaults.conf`` from it)."""
    return {"SPARK_CONF_DIR": info.conf_dir} if info.conf_dir else {}


def cluster_conf(info: ClusterInfo) -> dict[str, str]:
    """The cluster's Spark settings (secret included) for a SparkSession made in a process
    whose JVM already runs (there ``SPARK_CONF_DIR`` is read no more); a new process should
    use :func:`submit_env` instead, which keeps the secret off its command line."""
    if not info.conf_dir:
        return {}
    with open(os.path.join(info.conf_dir, "spark-defaults.conf")) as handle:
        return dict(line.split(None, 1) for line in handle.read().splitlines() if line.strip())


def _write_private(path: str, text: str) -> None:
    """Write ``path`` readable by its owner only (0600 from the start, no window)."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def _write_spark_conf(conf_dir: str) -> None:
    """A fresh secret and the UI settings, for the daemons and every submit."""
    os.makedirs(conf_dir, mode=0o700, exist_ok=True)
    os.chmod(conf_dir, 0o700)
    _write_private(os.path.join(conf_dir, "spark-defaults.conf"), "\n".join([
        "spark.authenticate true",
        f"spark.authenticate.secret {secrets.token_hex(32)}",
        "spark.ui.killEnabled false",
        "",
    ]))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def alive_workers(web_ui: str) -> int:
    """Workers the master reports ALIVE, from its JSON endpoint."""
    import urllib.request

    with urllib.request.urlopen(f"{web_ui}/json/", timeout=5) as response:
        status = json.load(response)
    return sum(1 for worker in status.get("workers", []) if worker.get("state") == "ALIVE")


# ------------------------------------------------------------------ processes by PID
def _is_daemon(pid: int, spark_class: str) -> bool:
    """The PID runs and is the Spark daemon we started, not a reused PID: its command line
    names the class (a zombie's command line is empty)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return spark_class.encode() in handle.read().split(b"\0")
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    # Per thread: a JVM forks executors from other threads than its main one.
    found = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/children") as handle:
                found.extend(int(child) for child in handle.read().split())
        except OSError:
            pass
    return sorted(found)


def process_tree(pid: int) -> list[int]:
    """``pid``'s descendants (children first, then theirs), read from /proc."""
    found, queue = [], _children(pid)
    while queue:
        child = queue.pop(0)
        found.append(child)
        queue.extend(_children(child))
    return found


def executor_pids(info: "ClusterInfo") -> list[int]:
    """The executor JVMs the cluster's workers run now (their children of the executor
    class), one list for all workers: what a fault-injection test may kill."""
    return [pid for worker in info.worker_pids for pid in _children(worker)
            if _is_daemon(pid, EXECUTOR_CLASS)]


def _gone(pid: int) -> bool:
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)  # our child (tests, the context manager)
        return reaped == pid
    except ChildProcessError:  # not our child (or already reaped): init reaps it
        try:
            with open(f"/proc/{pid}/stat") as handle:
                return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True


def _terminate(daemons: list[tuple[int, str]], timeout_s: float) -> list[int]:
    """SIGTERM each (pid, class) that is still that daemon, wait, SIGKILL what remains.
    Returns the PIDs signalled."""
    live = [(pid, cls) for pid, cls in daemons if _is_daemon(pid, cls)]
    for pid, _ in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    remaining = _wait_gone(live, timeout_s)
    for pid, cls in remaining:
        if _is_daemon(pid, cls):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if _wait_gone(remaining, 10):
        raise ClusterError(f"PIDs {[pid for pid, _ in remaining]} survived SIGKILL")
    return [pid for pid, _ in live]


def _wait_gone(daemons: list[tuple[int, str]], timeout_s: float) -> list[tuple[int, str]]:
    deadline = time.monotonic() + timeout_s
    while True:
        daemons = [(pid, cls) for pid, cls in daemons if not _gone(pid)]
        if not daemons or time.monotonic() > deadline:
            return daemons
        time.sleep(_POLL_S)


# --------------------------------------------------------------------------- state file
def state_path(state_dir: str | None) -> str:
    return os.path.join(os.path.abspath(state_dir or default_state_dir()), STATE_FILE)


def _load(path: str) -> ClusterInfo | None:
    try:
        with open(path) as handle:
            return ClusterInfo(**json.load(handle))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise ClusterError(
            f"cannot read {path} ({exc}); check with ps that none of the Spark daemons it "
            "lists still runs, then delete it"
        ) from exc


def _save(info: ClusterInfo) -> None:
    path = os.path.join(info.state_dir, STATE_FILE)
    _write_private(path + ".tmp", json.dumps(asdict(info), indent=2))
    os.replace(path + ".tmp", path)


def running_cluster(state_dir: str | None = None) -> ClusterInfo | None:
    """The cluster recorded in ``state_dir`` if any of its daemons still runs. A stale record
    (every daemon gone, its PIDs perhaps reused by other programs) is deleted."""
    path = state_path(state_dir)
    info = _load(path)
    if info is None:
        return None
    if any(_is_daemon(pid, cls) for pid, cls in info.daemons()):
        return info
    os.remove(path)
    return None


# ------------------------------------------------------------------------ start / stop
def start_cluster(
    workers: int,
    cores_per_worker: int,
    memory: str = "2g",
    state_dir: str | None = None,
    host: str = "127.0.0.1",
    timeout_s: float = 120,
    ui_host: str | None = None,
    worker_cpus: Sequence[CpuSet] = (),
) -> ClusterInfo:
    """Start a master and ``workers`` workers and return once all are registered; their
    web UIs listen on ``ui_host`` (default: ``host``). With ``worker_cpus`` (one disjoint
    set per worker, see :func:`hepspark.cpusets.worker_cpu_sets`) worker i and everything
    it starts run on its set only, with thread pools sized to it.

    >>> info = start_cluster(workers=2, cores_per_worker=1, memory="1g")
    >>> info.master_url
    'spark://127.0.0.1:41373'
    >>> stopped_pids = stop_cluster()
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if cores_per_worker < 1:
        raise ValueError(f"cores_per_worker must be >= 1, got {cores_per_worker}")
    if not _MEMORY.match(memory):
        raise ValueError(f"memory must look like 512m or 2g, got {memory!r}")
    if worker_cpus and (len(worker_cpus) != workers
                        or any(len(cpus) != cores_per_worker for cpus in worker_cpus)):
        raise ValueError(f"worker_cpus must hold {workers} set(s) of {cores_per_worker} CPU(s), "
                         f"got {[format_cpus(c) for c in worker_cpus]}")
    state_dir = os.path.dirname(state_path(state_dir))
    running = running_cluster(state_dir)
    if running is not None:
        raise ClusterError(
            f"a cluster started from {state_dir} still runs ({running.master_url}, web UI "
            f"{running.web_ui}); stop it first: hepspark cluster down --state-dir {state_dir}"
        )
    home = spark_home()
    logs_dir, work_dir = os.path.join(state_dir, "logs"), os.path.join(state_dir, "work")
    conf_dir = os.path.join(state_dir, CONF_DIR)
    os.makedirs(logs_dir, exist_ok=True)
    _write_spark_conf(conf_dir)
    ui_host = ui_host or host
    env = {
        **os.environ,
        "SPARK_HOME": home,
        "SPARK_CONF_DIR": conf_dir,
        "SPARK_LOCAL_IP": ui_host,  # Spark 3.5's web UIs listen where this says (RPC: --host)
        "PYSPARK_PYTHON": sys.executable,  # executors run this venv's interpreter
        "SPARK_WORKER_DIR": work_dir,
        "SPARK_LOG_DIR": logs_dir,
    }
    port, ui_port = free_port(host), free_port(host)
    master_url, web_ui = f"spark://{host}:{port}", f"http://{host}:{ui_port}"
    spark_class = os.path.join(home, "bin", "spark-class")
    started: list[tuple[subprocess.Popen, str]] = []

    def record() -> ClusterInfo:
        return ClusterInfo(
            master_url=master_url, web_ui=web_ui, master_port=port, web_ui_port=ui_port,
            master_pid=started[0][0].pid, worker_pids=[proc.pid for proc, _ in started[1:]],
            workers=workers, cores_per_worker=cores_per_worker, memory=memory,
            state_dir=state_dir, master_log=started[0][1],
            worker_logs=[log for _, log in started[1:]], conf_dir=conf_dir, ui_host=ui_host,
            worker_cpus=[format_cpus(cpus) for cpus in worker_cpus],
        )

    def launch(name: str, args: list[str], cpus: CpuSet = ()) -> subprocess.Popen:
        log = os.path.join(logs_dir, f"{name}.log")
        # a pinned worker's executors inherit its affinity and its environment (the
        # thread-pool sizes) from the worker process
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [spark_class, *args], stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, env={**env, **(thread_env(len(cpus)) if cpus else {})},
                start_new_session=True, preexec_fn=pin(cpus) if cpus else None,
            )
        started.append((proc, log))
        _save(record())  # at once: a `down` after an interrupted `up` finds every daemon
        return proc

    deadline = time.monotonic() + timeout_s
    try:
        launch("master", [MASTER_CLASS, "--host", host, "--port", str(port),
                                   "--webui-port", str(ui_port)])
        _wait_for(lambda: alive_workers(web_ui) >= 0, "the master's web UI to answer",
                  started, deadline, started[:1])
        for i in range(1, workers + 1):
            launch(f"worker-{i}", [
                WORKER_CLASS, "--host", host, "--cores", str(cores_per_worker),
                "--memory", memory, "--webui-port", "0",
                "--work-dir", os.path.join(work_dir, str(i)), master_url,
            ], worker_cpus[i - 1] if worker_cpus else ())
        _wait_for(lambda: alive_workers(web_ui) >= workers,
                  f"{workers} worker(s) to register with the master", started, deadline,
                  started[1:])
    except BaseException:
        for proc, _ in reversed(started):  # our own children: Popen knows if they exited
            proc.terminate()
        for proc, _ in started:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with contextlib.suppress(FileNotFoundError):
            os.remove(state_path(state_dir))
        raise
    return record()


def _wait_for(
    ready: Callable[[], bool], what: str, started: list[tuple[subprocess.Popen, str]],
    deadline: float, logs_on_timeout: list[tuple[subprocess.Popen, str]],
) -> None:
    """Poll ``ready`` until it holds; a daemon that exits, or the deadline, is an error that
    shows the end of the relevant log."""
    while True:
        for proc, log in started:
            if proc.poll() is not None:
                raise ClusterError(
                    f"a Spark daemon (pid {proc.pid}) exited with status {proc.returncode} "
                    f"while waiting for {what}; the end of {log}:\n{_tail(log)}"
                )
        with contextlib.suppress(OSError):  # not listening yet
            if ready():
                return
        if time.monotonic() > deadline:
            tails = "\n".join(f"the end of {log}:\n{_tail(log)}" for _, log in logs_on_timeout)
            raise ClusterError(f"timed out waiting for {what}; {tails}")
        time.sleep(_POLL_S)


def _tail(path: str, lines: int = 12) -> str:
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:]).rstrip()
    except OSError:
        return "(no log)"


def stop_cluster(state_dir: str | None = None, timeout_s: float = 30) -> list[int]:
    """Stop the daemons recorded in ``state_dir`` (workers, then the master) and delete the
    record. Only PIDs that still run their recorded Spark class are signalled: SIGTERM, then
    SIGKILL after ``timeout_s``. Returns the PIDs stopped; nothing recorded: ``[]``."""
    path = state_path(state_dir)
    info = _load(path)
    if info is None:
        return []
    daemons = info.daemons()
    stopped = _terminate(daemons[:-1], timeout_s) + _terminate(daemons[-1:], timeout_s)
    os.remove(path)
    return stopped


def cluster_status(state_dir: str | None = None) -> dict | None:
    """The recorded cluster, whether each daemon still runs, and how many workers the master
    reports alive (None when its web UI does not answer). None when nothing is recorded."""
    info = _load(state_path(state_dir))
    if info is None:
        return None
    try:
        registered = alive_workers(info.web_ui)
    except OSError:
        registered = None
    return {
        **asdict(info),
        "master_alive": _is_daemon(info.master_pid, MASTER_CLASS),
        "workers_alive": [_is_daemon(pid, WORKER_CLASS) for pid in info.worker_pids],
        "registered_workers": registered,
    }


@contextlib.contextmanager
def standalone_cluster(
    workers: int = 2, cores_per_worker: int = 1, memory: str = "2g",
    state_dir: str | None = None, worker_cpus: Sequence[CpuSet] = (),
) -> Iterator[ClusterInfo]:
    """A cluster for the duration of a ``with`` block, stopped on exit, errors included."""
    info = start_cluster(workers, cores_per_worker, memory, state_dir, worker_cpus=worker_cpus)
    try:
        yield info
    finally:
        stop_cluster(info.state_dir)
