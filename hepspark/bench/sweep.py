"""The scaling sweep: epoch time against executors, optimizer and backend, one MLflow run each.

For every node count N of ``executors`` the sweep starts a Spark standalone cluster of N
workers on this machine (or uses ``--master``, or ``local[N x cores]`` with ``--local``),
and runs every (backend, optimizer) as its own ``spark-submit spark_jobs/train_higgs.py``,
exactly as a user would, each logged as one MLflow run in one experiment. The Keras
single-process baseline runs once per optimizer in the same experiment. Each job runs in
its own process: a crash, a hung rank or BigDL's JVM singletons never leak into the next
combination, and the job's full output is kept in a log file.

Every run is tagged with the sweep's key of the combination; a combination whose run
already FINISHED in the experiment is skipped unless ``rerun``. A failed job is reported
and the sweep goes on with the rest; it fails at the end.

Batch size: with ``batch_scaling="per-executor"`` (default) every executor processes
``batch_size`` rows per step at every N, the global batch being N x batch_size (weak
scaling of the batch, Horovod's usual practice; each step costs a node the same compute).
With ``"global"`` the global batch stays ``batch_size`` at every N. Several batch sizes
(``batch_sizes=(500, 2000)``) let the performance model tell the per-row cost from the
per-step cost.

Isolated nodes (``worker_cpus``, ``--cpus-per-worker``/``--worker-cpus``): node i of every
cluster is pinned to its own CPU set (worker, executors, Python workers and their threads,
thread pools sized to it; :mod:`hepspark.cpusets`), so engine cost is not confused with
contention for shared cores. The Keras baselines are then pinned the same way: one process
on node 1's CPUs (the reference for efficiency) and one on the CPUs of all nodes of the
largest N. With ``local`` the whole ``local[N]`` job is pinned to the CPUs of N nodes. The
driver runs where ``driver_cpus`` says (default: where the sweep may run); its CPU set and
its CPU time during the job (the job process and all it waited for, from
``getrusage(RUSAGE_CHILDREN)``: spark-submit's JVM and the Python driver, never the
executors of a cluster) are logged with every run (tags ``hepspark.scaling.driver_cpus``,
metrics ``driver_cpu_time_s``, ``driver_cpu_fraction``).

A slower link (``link="loopback-1gbit"``, ``--link``; root): this machine's ``lo`` is
shaped with ``tc qdisc tbf`` to that rate while the sweep runs
(:func:`hepspark.bench.netns.shaped_loopback`), so the nodes' exchanges cross a 1 Gbit/s
link instead of memory; every run carries the link (tag ``hepspark.scaling.link``, and in
its key), and the report predicts these runs from the link's measured exchange.

Tasks (``task``, :mod:`hepspark.bench.sweep_tasks`): ``higgs`` (the DNN, default) or
``cnn``: every zoo model of ``models`` (``basic_cnn``, ``vgg16``, ``resnet29b``, ...) on an
image dataset (``data``; without it a generated ``dataset``, jets or lartpc, made once in
``cache_dir``), each run tagged with its model and family. Optimizers default to the seed
protocol of the task (CNN: Nadam, and Adam on an engine without Nadam); an optimizer an
engine does not have is skipped, never run to fail, and the reason is printed and kept in
the outcome (:attr:`SweepOutcome.notes`).

>>> config = SweepConfig(data="data/higgs", backends=("horovod",), executors=(1, 2),
...                      optimizers=("adam",), epochs=2, local=True)
>>> [c.label for c in plan(config)]
['keras-adam-x1-b1000', 'horovod-adam-x1-b1000', 'horovod-adam-x2-b1000']
>>> cnn = SweepConfig(data="data/jets", task="cnn", models=("vgg16",), backends=("bigdl",),
...                   executors=(1,), local=True)
>>> [c.label for c in plan(cnn)]
['keras-vgg16-nadam-x1-b128', 'bigdl-vgg16-adam-x1-b128']
"""
from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from hepspark.backends.capabilities import CAPABILITIES
from hepspark.bench import netns
from hepspark.bench.sweep_tasks import (
    IMAGE_DATASETS,
    IMAGE_SWEEP_ROWS,
    TASKS,
    engine_optimizers,
)
from hepspark.config import OPTIMIZERS
from hepspark.cpusets import (
    CpuSet,
    available_cpus,
    format_cpus,
    format_node_cpus,
    pin,
    thread_env,
    worker_cpu_sets,
)
from hepspark.data.demo import DEFAULT_DEMO_ROWS
from hepspark.models.names import parse_model_name
from hepspark.progress import Progress
from hepspark.tags import (
    CEILING_TAG,
    DRIVER_CPUS_TAG,
    FAMILY_TAG,
    JOB_TAG,
    KEY_TAG,
    LINK_TAG,
    MODE_TAG,
    MODEL_TAG,
    NODES_TAG,
    WORKER_CPUS_TAG,
)

# the engines a sweep can measure; the default leaves out torch (opt-in install)
DISTRIBUTED = ("bigdl", "horovod", "torch")
DEFAULT_BACKENDS = ("bigdl", "horovod")
BASELINE = "keras"
BATCH_SCALINGS = ("per-executor", "global")
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class SweepConfig:
    """What to measure; see the module docstring for the meaning of each choice."""

    data: str | None  # None: the task's generated dataset (run_sweep makes it once)
    backends: tuple[str, ...] = DEFAULT_BACKENDS
    executors: tuple[int, ...] = (1, 2)
    optimizers: tuple[str, ...] | None = None  # None: the task's seed protocol
    epochs: int = 3
    # None: the dataset's protocol (HIGGS 1000, jets 128, LArTPC 20)
    batch_sizes: tuple[int, ...] | None = None
    batch_scaling: str = "per-executor"
    cores_per_executor: int = 1
    features: str = "all"
    baseline: bool = True
    master: str | None = None  # an existing cluster; None: start one per node count
    local: bool = False  # local[N x cores] instead of a standalone cluster
    worker_memory: str = "2g"
    experiment: str = "higgs-scaling"
    tracking_uri: str | None = None
    rerun: bool = False
    log_dir: str | None = None
    job_timeout_s: float = 3600.0
    train_args: tuple[str, ...] = ()  # passed to every job, e.g. ("--width", "64")
    submit_args: tuple[str, ...] = ()  # passed to spark-submit, e.g. ("--driver-memory", "4g")
    # isolated nodes: node i's own CPUs (one set per node of the largest N); () unpinned
    worker_cpus: tuple[CpuSet, ...] = ()
    driver_cpus: CpuSet = ()  # where the job's driver runs; (): where the sweep may run
    task: str = "higgs"  # higgs | cnn (hepspark.bench.sweep_tasks)
    models: tuple[str, ...] = ("basic_cnn",)  # cnn: zoo model names (vgg16, resnet29b, ...)
    dataset: str | None = None  # cnn without data: generate jets (default) or lartpc
    demo_rows: int | None = None  # rows of the generated dataset (HIGGS 200,000; images 10,000)
    cache_dir: str | None = None  # where generated datasets live (~/.cache/hepspark)
    # the link the nodes exchange over: "loopback" as it is, or "loopback-<R>gbit": this
    # machine's lo shaped to R for the jobs (root; see hepspark.bench.netns.shaped_loopback)
    link: str = "loopback"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {tuple(TASKS)}, got {self.task!r}")
        unknown = set(self.backends) - set(DISTRIBUTED)
        if unknown or not self.backends and not self.baseline:
            raise ValueError(f"backends must be among {DISTRIBUTED}, got {list(self.backends)}")
        bad = set(self.optimizers or ()) - set(OPTIMIZERS)
        if bad or self.optimizers == ():
            raise ValueError(f"optimizers must be among {OPTIMIZERS}, got {list(self.optimizers)}")
        if self.task == "cnn":
            if not self.models:
                raise ValueError("task cnn needs models, e.g. basic_cnn,vgg16,resnet")
            for model in self.models:
                parse_model_name(model)
        if self.dataset is not None and (self.task != "cnn" or self.dataset not in
                                         IMAGE_DATASETS):
            raise ValueError(f"dataset {self.dataset!r}: the generated image dataset of "
                             f"task cnn (--task cnn) must be one of {IMAGE_DATASETS}")
        if self.demo_rows is not None and self.demo_rows < 100:
            raise ValueError(f"demo_rows must be >= 100, got {self.demo_rows}")
        if not self.executors or min(self.executors) < 1:
            raise ValueError(f"executors must be node counts >= 1, got {list(self.executors)}")
        if self.batch_scaling not in BATCH_SCALINGS:
            raise ValueError(f"batch_scaling must be one of {BATCH_SCALINGS}, "
                             f"got {self.batch_scaling!r}")
        if self.batch_sizes is not None and (not self.batch_sizes or min(self.batch_sizes) < 1):
            raise ValueError(f"batch sizes must be >= 1, got {list(self.batch_sizes)}")
        if self.epochs < 1 or self.cores_per_executor < 1:
            raise ValueError("epochs and cores_per_executor must be >= 1")
        if self.master and self.local:
            raise ValueError("give either master (an existing cluster) or local, not both")
        if not netns.on_loopback(self.link):
            raise ValueError(f"--link {self.link!r}: a sweep trains over this machine's "
                             "loopback, as it is ('loopback') or shaped ('loopback-1gbit', "
                             "'loopback-500mbit')")
        if self.link != "loopback" and self.master:
            raise ValueError(f"--link {self.link!r} shapes this machine's loopback, which the "
                             "nodes of --master do not use; measure that cluster's own link "
                             "with 'hepspark bench exchange'")
        if self.worker_cpus:
            if self.master:
                raise ValueError("pinned nodes (--cpus-per-worker/--worker-cpus) need clusters "
                                 "the sweep starts itself, not --master")
            sets = worker_cpu_sets(max(self.executors), worker_cpus=self.worker_cpus)
            if len(sets[0]) != self.cores_per_executor:
                raise ValueError(f"each node's CPU set must hold cores_per_executor="
                                 f"{self.cores_per_executor} CPU(s), got {format_cpus(sets[0])}")

    @property
    def sweep_task(self):
        return TASKS[self.task]

    @property
    def batches(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.batch_sizes or (self.sweep_task.batch_size,))))

    @property
    def model_names(self) -> tuple[str, ...]:
        """The zoo models of a CNN sweep; ("",) for HIGGS (its one dense network)."""
        return self.models if self.task == "cnn" else ("",)

    def engine_optimizers(self, backend: str) -> tuple[tuple[str, ...], list[str]]:
        """(optimizers ``backend`` runs, reasons for the ones it cannot run as asked)."""
        return engine_optimizers(self.task, backend, self.optimizers)

    @property
    def pinned(self) -> bool:
        return bool(self.worker_cpus)

    def node_cpus(self, nodes: int) -> CpuSet:
        """The CPUs of the first ``nodes`` pinned nodes together; () when unpinned."""
        return tuple(sorted({c for cpus in self.worker_cpus[:nodes] for c in cpus}))

    @property
    def mode(self) -> str:
        return "master" if self.master else "local" if self.local else "standalone"


@dataclass(frozen=True)
class Combination:
    """One point of the sweep: a backend, an optimizer, a node count, a sweep batch size
    and, in a CNN sweep, a zoo model ("" for the HIGGS DNN)."""

    backend: str
    optimizer: str
    nodes: int
    batch: int = 1000
    model: str = ""

    @property
    def name(self) -> str:
        model = f"{self.model}-" if self.model else ""
        return f"{self.backend}-{model}{self.optimizer}-x{self.nodes}"

    @property
    def label(self) -> str:
        return f"{self.name}-b{self.batch}"

    def batch_size(self, config: SweepConfig) -> int:
        """The ``--batch-size`` to pass: per rank for Horovod and torch, global for BigDL."""
        per_executor = config.batch_scaling == "per-executor"
        if CAPABILITIES[self.backend].batch_per_rank:
            return self.batch if per_executor else max(1, self.batch // self.nodes)
        if self.backend == "bigdl":
            return self.batch * self.nodes if per_executor else self.batch
        return self.batch

    def key(self, config: SweepConfig) -> str:
        """Identifies a measurement: the same key in the experiment means 'already done'."""
        extra = " ".join(config.train_args)
        pinned = "|pinned" if config.pinned else ""  # a pinned node is another measurement
        what = config.features if config.task == "higgs" else config.task
        # so is a driver placed by hand (e.g. on a node's core, to measure what it costs)
        placed = (f"|driver{format_cpus(config.driver_cpus)}"
                  if config.driver_cpus and not self._runs_on_nodes(config) else "")
        link = f"|link-{config.link}" if config.link != "loopback" else ""  # another link
        return (f"{self.name}|cores{config.cores_per_executor}|batch{self.batch_size(config)}"
                f"|epochs{config.epochs}|{what}|{os.path.abspath(config.data or '')}"
                f"|{config.mode}{pinned}{placed}{link}" + (f"|{extra}" if extra else ""))

    def cpus(self, config: SweepConfig) -> CpuSet:
        """Where the job's own process runs: a pinned baseline or ``local[N]`` job on the
        CPUs of its nodes; a cluster's driver on ``driver_cpus``; () where the sweep runs."""
        if self._runs_on_nodes(config):
            return config.node_cpus(self.nodes)
        return config.driver_cpus

    def _runs_on_nodes(self, config: SweepConfig) -> bool:
        """A pinned baseline or ``local[N]`` job runs on its nodes' CPUs, not the driver's."""
        return config.pinned and (self.backend == BASELINE or config.local)


@dataclass
class JobResult:
    combination: Combination
    status: str  # measured | skipped (already in MLflow) | failed
    seconds: float = 0.0
    log: str | None = None
    error: str | None = None


@dataclass
class SweepOutcome:
    config: SweepConfig
    results: list[JobResult] = field(default_factory=list)
    # what the sweep did not run as asked, and why (an engine without an optimizer)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[JobResult]:
        return [r for r in self.results if r.status == "failed"]

    def format(self) -> str:
        counts = {s: sum(r.status == s for r in self.results)
                  for s in ("measured", "skipped", "failed")}
        lines = [f"[scaling] {counts['measured']} measured, {counts['skipped']} already in "
                 f"MLflow (skipped), {counts['failed']} failed; experiment "
                 f"{self.config.experiment!r}"]
        for r in self.failed:
            lines.append(f"  FAILED {r.combination.label}: {r.error} (log: {r.log})")
        lines += [f"  not run as asked: {note}" for note in self.notes]
        return "\n".join(lines)


def plan(config: SweepConfig) -> list[Combination]:
    """Every combination, the Keras baselines first, then node count by node count (model
    by model in a CNN sweep). Pinned nodes add a Keras baseline on the CPUs of the largest
    N's nodes. Optimizers an engine lacks are left out (:func:`skipped_pairs` says why)."""
    batches = config.batches
    baseline_nodes = sorted({1, max(config.executors)} if config.pinned else {1})
    runs = {b: config.engine_optimizers(b)[0] for b in (BASELINE, *config.backends)}
    combos = ([Combination(BASELINE, o, n, size, m) for m in config.model_names
               for n in baseline_nodes for size in batches for o in runs[BASELINE]]
              if config.baseline else [])
    for nodes in sorted(set(config.executors)):
        combos += [Combination(b, o, nodes, size, m) for m in config.model_names
                   for size in batches for b in config.backends for o in runs[b]]
    return combos


def skipped_pairs(config: SweepConfig) -> list[str]:
    """Why an engine does not run an optimizer as asked (skipped, or the protocol's stated
    fallback), one line each."""
    engines = ((BASELINE,) if config.baseline else ()) + tuple(config.backends)
    return [reason for b in engines for reason in config.engine_optimizers(b)[1]]


def finished_keys(tracking_uri: str, experiment: str) -> set[str]:
    """Keys of the combinations already measured (run FINISHED) in ``experiment``."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return set()
    runs = client.search_runs([found.experiment_id], "attributes.status = 'FINISHED'",
                              max_results=50_000)
    return {r.data.tags[KEY_TAG] for r in runs if KEY_TAG in r.data.tags}


def job_command(config: SweepConfig, combo: Combination, master: str | None,
                tags: dict[str, str], tracking_uri: str) -> list[str]:
    """The argv of one combination's job (``spark-submit`` for the Spark backends)."""
    from hepspark.bench.sweep_tasks import cnn_train_flags

    what = (["--features", config.features] if config.task == "higgs"
            else cnn_train_flags(combo.model))
    train = ["--data", config.data, "--backend", combo.backend, "--optimizer", combo.optimizer,
             "--epochs", str(config.epochs), "--batch-size", str(combo.batch_size(config)),
             *what, "--experiment", config.experiment,
             "--tracking-uri", tracking_uri, *config.train_args]
    train += [arg for k, v in tags.items() for arg in ("--tag", f"{k}={v}")]
    if combo.backend == BASELINE:
        return [sys.executable, "-m", "hepspark.cli", "train", config.sweep_task.command, *train]
    submit = [_spark_submit(), "--master", master]
    if master.startswith("spark://"):
        cores = combo.nodes * config.cores_per_executor
        submit += ["--executor-cores", str(config.cores_per_executor),
                   "--total-executor-cores", str(cores)]
    if CAPABILITIES[combo.backend].batch_per_rank:  # rank engines: one rank per executor
        train += ["--executors", str(combo.nodes)]
    return [*submit, *config.submit_args, *_job_script(config), *train]


def _job_script(config: SweepConfig) -> list[str]:
    """spark_jobs/train_<task>.py in a source checkout; the CLI module when installed."""
    job = os.path.join(_REPO, "spark_jobs", config.sweep_task.script)
    if os.path.exists(job):
        return [job]
    import hepspark  # the package root only: the CLI sits above the sweep

    return [os.path.join(os.path.dirname(hepspark.__file__), "cli", "__main__.py"),
            "train", config.sweep_task.command]


def _spark_submit() -> str:
    here = os.path.join(os.path.dirname(sys.executable), "spark-submit")
    if os.path.exists(here):
        return here
    from hepspark.cluster import spark_home

    return os.path.join(spark_home(), "bin", "spark-submit")


@contextlib.contextmanager
def _spark_master(config: SweepConfig, nodes: int,
                  progress) -> Iterator[tuple[str, dict[str, str]]]:
    """(master, environment its submits need): a cluster we start has a secret."""
    if config.master:
        yield config.master, {}
    elif config.local:
        yield f"local[{nodes * config.cores_per_executor}]", {}
    else:
        from hepspark.cluster import standalone_cluster, submit_env

        progress(f"[scaling] starting a standalone cluster: {nodes} worker(s) x "
                 f"{config.cores_per_executor} core(s)")
        state_dir = os.path.join(_log_dir(config), f"cluster-x{nodes}")
        with standalone_cluster(nodes, config.cores_per_executor, config.worker_memory,
                                state_dir=state_dir,
                                worker_cpus=config.worker_cpus[:nodes]) as info:
            progress(f"[scaling] cluster up: {info.master_url}")
            yield info.master_url, submit_env(info)
        progress(f"[scaling] cluster x{nodes} stopped")


def _log_dir(config: SweepConfig) -> str:
    return config.log_dir or os.path.join(os.path.expanduser("~"), ".cache", "hepspark",
                                          "scaling", config.experiment)


def _job_env(extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
           **extra}
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return env


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_job(argv: list[str], log_path: str, timeout_s: float,
             progress: Callable[[str], None], label: str,
             env: dict[str, str], cpus: CpuSet = ()) -> tuple[int, str, float]:
    """Run one job (pinned to ``cpus`` when given), its output to ``log_path``, epoch lines
    echoed; (returncode, last lines, CPU seconds of the job and all it waited for)."""
    tail: list[str] = []
    cpu_before = _children_cpu_s()
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(argv) + "\n")
        log.flush()
        # own process group: a timeout ends the job and every process it started
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=_job_env(env), start_new_session=True,
                                preexec_fn=pin(cpus) if cpus else None)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        watchdog = threading.Timer(timeout_s, kill)
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                tail = (tail + [line.rstrip()])[-15:]
                if line.lstrip().startswith("epoch ") or "error" in line.lower()[:40]:
                    progress(f"  [{label}] {line.strip()}")
            code = proc.wait()
        except BaseException:  # Ctrl-C or SIGTERM of the sweep: its job stops with it
            _stop_job(proc)
            raise
        finally:
            watchdog.cancel()
        if timed_out.is_set():
            tail.append(f"killed after the job timeout of {timeout_s:.0f} s")
    return code, "\n".join(tail), _children_cpu_s() - cpu_before


def _stop_job(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM the job's process group (the job closes its MLflow run and stops Spark as
    on Ctrl-C), SIGKILL whatever is left after ``grace_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def placement(config: SweepConfig) -> str:
    """Where the nodes and the driver run, said plainly (shared cores included)."""
    driver = config.driver_cpus or available_cpus()
    if not config.pinned:
        return (f"nodes not pinned: every node, the driver and the baselines share CPUs "
                f"{format_cpus(available_cpus())}")
    nodes = ", ".join(f"node {i} on CPU(s) {format_cpus(c)}"
                      for i, c in enumerate(config.worker_cpus, 1))
    shared = sorted(set(driver) & set(config.node_cpus(len(config.worker_cpus))))
    where = (f"; it shares CPU(s) {format_cpus(shared)} with the nodes (its CPU time is "
             "logged as driver_cpu_time_s)" if shared else ", apart from the nodes")
    return f"pinned nodes: {nodes}; driver on CPU(s) {format_cpus(driver)}{where}"


def log_driver_cost(tracking_uri: str, experiment: str, job_id: str, cpu_s: float,
                    wall_s: float) -> None:
    """Add the driver's CPU time during the job to the run the job logged (found by its
    job tag): ``driver_cpu_time_s`` and ``driver_cpu_fraction`` (CPU seconds per second)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], f"tags.`{JOB_TAG}` = '{job_id}'",
                              max_results=1) if found else []
    if runs:
        client.log_metric(runs[0].info.run_id, "driver_cpu_time_s", cpu_s)
        client.log_metric(runs[0].info.run_id, "driver_cpu_fraction", cpu_s / max(wall_s, 1e-9))


def with_dataset(config: SweepConfig, progress: Callable[[str], None] = print) -> SweepConfig:
    """``config`` with its dataset checked, or generated (once) when it names none."""
    from hepspark.bench.sweep_tasks import check_dataset, ensure_sweep_data

    if config.data is None:
        kind = config.dataset or "jets"
        rows = config.demo_rows or (DEFAULT_DEMO_ROWS if config.task == "higgs"
                                    else IMAGE_SWEEP_ROWS)
        cache = config.cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "hepspark")
        config = replace(config, data=ensure_sweep_data(config.task, kind, rows, cache,
                                                        progress))
    # a missing or wrong dataset fails here, before any job
    batch = check_dataset(config.task, config.data, config.dataset, config.features)
    return config if config.batch_sizes else replace(config, batch_sizes=(batch,))


def run_sweep(config: SweepConfig, progress: Callable[[str], None] = print) -> SweepOutcome:
    """Measure every combination not yet in MLflow; see the module docstring."""
    from hepspark.hardware import cpu_count, matmul_gflops
    from hepspark.tracking import check_tracking_uri, resolve_tracking_uri

    config = with_dataset(config, progress)
    tracking_uri = resolve_tracking_uri(config.tracking_uri)
    check_tracking_uri(tracking_uri)
    done = set() if config.rerun else finished_keys(tracking_uri, config.experiment)
    combos = plan(config)
    todo = [c for c in combos if c.key(config) not in done]
    outcome = SweepOutcome(config, notes=skipped_pairs(config))
    for note in outcome.notes:
        progress(f"[scaling] {note}")
    outcome.results += [JobResult(c, "skipped") for c in combos if c not in todo]
    progress(f"[scaling] {len(combos)} combinations, {len(combos) - len(todo)} already measured "
             f"in experiment {config.experiment!r} ({tracking_uri})")
    if not todo:
        return outcome
    gflops_per_core = matmul_gflops(threads=1)
    progress(f"[scaling] FLOP ceiling: {gflops_per_core:.1f} GFLOP/s per core (fp32 matmul)")
    progress(f"[scaling] {placement(config)}")
    log_dir = _log_dir(config)
    os.makedirs(log_dir, exist_ok=True)

    def run(combo: Combination, master: str | None, env: dict[str, str]) -> None:
        cpus = combo.cpus(config)
        cores = (cpu_count() if combo.backend == BASELINE and not config.pinned
                 else combo.nodes * config.cores_per_executor)
        job_id = uuid.uuid4().hex
        tags = {KEY_TAG: combo.key(config), NODES_TAG: str(combo.nodes),
                **({MODEL_TAG: combo.model, FAMILY_TAG: parse_model_name(combo.model).family}
                   if combo.model else {}),
                MODE_TAG: "local" if combo.backend == BASELINE else config.mode,
                CEILING_TAG: f"{gflops_per_core * cores:.1f}", JOB_TAG: job_id,
                DRIVER_CPUS_TAG: format_cpus(cpus or available_cpus()), LINK_TAG: config.link,
                WORKER_CPUS_TAG: format_node_cpus(config.worker_cpus[:combo.nodes])}
        if cpus:  # a pinned job's own thread pools are sized to its CPUs
            env = {**env, **thread_env(len(cpus))}
        log = os.path.join(log_dir, combo.label + ".log")
        index = combos.index(combo) + 1
        progress(f"[scaling] ({index}/{len(combos)}) {combo.label}: batch "
                 f"{combo.batch_size(config)}, {config.epochs} epoch(s) on {master or 'local'}"
                 + (f", job on CPUs {format_cpus(cpus)}" if cpus else ""))
        start = time.perf_counter()
        code, tail, cpu_s = _run_job(job_command(config, combo, master, tags, tracking_uri),
                                     log, config.job_timeout_s, progress, combo.label, env, cpus)
        seconds = time.perf_counter() - start
        if code == 0:
            log_driver_cost(tracking_uri, config.experiment, job_id, cpu_s, seconds)
            outcome.results.append(JobResult(combo, "measured", seconds, log))
            progress(f"[scaling] {combo.label} done in {seconds:.0f} s")
        else:
            error = next((line for line in reversed(tail.splitlines()) if line.strip()),
                         f"exit code {code}")
            outcome.results.append(JobResult(combo, "failed", seconds, log, error[-300:]))
            progress(f"[scaling] {combo.label} FAILED (exit {code}): {error[-300:]}\n"
                     f"  full output: {log}")

    rate = netns.link_rate_gbps(config.link)
    if rate:
        progress(f"[scaling] link {config.link}: lo shaped to {rate:g} Gbit/s (both directions "
                 "together) until the sweep ends")
    with netns.shaped_loopback(rate), Progress("scaling", len(todo), "runs",
                                               emit=progress) as bar:
        for combo in (c for c in todo if c.backend == BASELINE):
            run(combo, None, {})
            bar.advance()
        for nodes in sorted({c.nodes for c in todo if c.backend != BASELINE}):
            with _spark_master(config, nodes, progress) as (master, env):
                for combo in (c for c in todo if c.backend != BASELINE and c.nodes == nodes):
                    run(combo, master, env)
                    bar.advance()
    return outcome
