"""The scaling report: epoch time vs nodes vs optimizer per backend, read back from MLflow.

``write_scaling_report(experiment, output)`` reads every finished training run of the
experiment (the sweep's, a user's, an imported GPU baseline), and writes into ``output``:
``report.md``, ``report.html`` and ``plots/*.png`` (epoch time vs executors with the Keras
CPU/GPU baselines, time relative to one executor against the seed study's 30-40 % gain per
added node, parallel efficiency, fraction of the FLOP ceiling, final AUC of every run, the
performance model's fit and its prediction up to ``max_nodes`` for the 10.5M-row HIGGS
epoch), a table of numbers under each plot, and logs the directory to a ``scaling-report``
run of the same experiment. Whatever is missing (a backend with one node count, no GPU
baseline, a single run) is said in the report instead of being drawn or invented.

The directory is built next to ``output`` and swapped in whole: a reader never sees half a
report, and an existing directory that is not a hepspark report is never overwritten.

>>> write_scaling_report("higgs-scaling", "scaling-report")  # doctest: +SKIP
'scaling-report/report.md'
"""
from __future__ import annotations

import contextlib
import math
import os
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from hepspark.bench.perfmodel import gain_per_added_node
from hepspark.cpusets import parse_cpus, parse_node_cpus
from hepspark.quality import HIGGS_TARGET_AUC, QualityTarget
from hepspark.report import scaling_plots as plots
from hepspark.report.cnn_scaling import cnn_sections
from hepspark.report.document import Document, Section, Table
from hepspark.report.runs import MeasuredRun, load_runs
from hepspark.report.scaling_model import SEED_GAIN, ModelSettings, model_sections
from hepspark.report.scaling_tables import fmt as _fmt
from hepspark.report.scaling_tables import node_table as _node_table
from hepspark.tags import REPORT_TASK, TASK_TAG

REPORT_FILE = "report.md"
DISTRIBUTED = ("bigdl", "horovod", "torch")
# the seed study's engines: the report says when they are missing (torch is opt-in: it is
# reported when the experiment has its runs)
EXPECTED = ("bigdl", "horovod")
HIGGS_TRAIN_ROWS = 10_500_000  # the UCI file minus its 500k test rows


@dataclass(frozen=True)
class ReportConfig:
    experiment: str
    output: str
    tracking_uri: str | None = None
    epoch_rows: int = HIGGS_TRAIN_ROWS
    max_nodes: int = 64
    bandwidth_gbps: float = 10.0
    latency_us: float = 50.0
    bigdl_fetch_latency_ms: float = 1.0
    log_to_mlflow: bool = True
    target_auc: float | None = None  # None: the target the runs logged, else HIGGS's default
    exchange_file: str | None = None  # 'hepspark bench exchange' JSON: measured links
    link: str = "veth-10gbit"         # the measured link the prediction runs over
    group_cost_files: tuple[str, ...] = ()  # 'benchmarks/colocation.py --horovod|--torch'
    step_curve_files: tuple[str, ...] = ()  # 'benchmarks/step_curve.py --horovod|--torch'
    context: str | None = None  # how the runs were measured (machine, what else ran), verbatim

    def __post_init__(self) -> None:
        self.model_settings  # noqa: B018 - bad --colocation/--step-curve files: refused now

    @cached_property
    def model_settings(self) -> ModelSettings:
        """The model's settings, its measured files read once (here, before any work)."""
        return ModelSettings(self.epoch_rows, self.max_nodes, self.bandwidth_gbps,
                             self.latency_us, self.bigdl_fetch_latency_ms, self.exchange_file,
                             self.link, tuple(self.group_cost_files),
                             tuple(self.step_curve_files))


def latest_per_configuration(runs: list[MeasuredRun]) -> tuple[list[MeasuredRun], int]:
    """The newest run of each configuration (a re-run replaces the older measurement)."""
    latest: dict[tuple, MeasuredRun] = {}
    for run in sorted(runs, key=lambda r: r.start_time_ms):
        key = run.sweep_key or (run.backend, run.optimizer, run.nodes, run.cores_per_executor,
                                run.batch_size, run.train_rows, run.mode, run.model)
        latest[key] = run
    kept = sorted(latest.values(), key=lambda r: (r.backend, r.optimizer, r.nodes))
    return kept, len(runs) - len(kept)


def _curve(run: MeasuredRun, several_batches: bool) -> tuple[str, str]:
    """(backend, name) of the curve a run belongs to; the batch is named when it varies."""
    name = run.optimizer + (f" b{run.batch_per_node}" if several_batches else "")
    return run.backend, name


def _series(runs: list[MeasuredRun], value) -> dict[tuple[str, str], list[tuple[int, float]]]:
    several = len({r.batch_per_node for r in runs}) > 1
    series: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for run in runs:
        v = value(run)
        if v is not None and math.isfinite(v):
            series[_curve(run, several)].append((run.nodes, v))
    return {k: sorted(v) for k, v in series.items()}


def _driver_placement_runs(dist: list[MeasuredRun]) -> list[MeasuredRun]:
    """Single-node runs with the driver on the node's core beside the same run with the
    driver apart: they measure the model's h, and stay out of the scaling curves."""
    def key(r: MeasuredRun) -> tuple:
        return r.backend, r.optimizer, r.batch_per_node, r.train_rows, r.model

    apart = {key(r) for r in dist if r.nodes == 1 and not r.driver_on_nodes}
    return [r for r in dist if r.nodes == 1 and r.driver_on_nodes and key(r) in apart]


def _one_node_times(runs: list[MeasuredRun]) -> dict[tuple[str, str], float]:
    several = len({r.batch_per_node for r in runs}) > 1
    return {_curve(r, several): r.epoch_time_s for r in runs if r.nodes == 1}


def _baseline_rates(runs: list[MeasuredRun]) -> dict[str, float]:
    """{label: rows/s} of the single-process baselines (Keras CPU, GPU)."""
    out: dict[str, float] = {}
    for label, cpu in _keras_baselines(runs).items():
        out[label] = float(np.median([r.rows_per_s for r in cpu]))
    for r in runs:
        if r.backend not in ("keras", *DISTRIBUTED):
            out[f"Keras {r.device.removeprefix('GPU: ')}, batch {r.batch_size}"] = r.rows_per_s
    return out


def _keras_baselines(runs: list[MeasuredRun]) -> dict[str, list[MeasuredRun]]:
    """The Keras CPU runs by the cores they had: with pinned nodes, one process on one
    node's CPUs (the reference for efficiency) and one on all nodes' CPUs."""
    groups: dict[str, list[MeasuredRun]] = defaultdict(list)
    for r in sorted((r for r in runs if r.backend == "keras"), key=lambda r: r.cores_per_executor):
        pinned = f", pinned to CPUs {r.driver_cpus}" if r.worker_cpus else ""
        groups[f"Keras CPU, 1 process ({r.cores_per_executor} cores{pinned})"].append(r)
    return dict(groups)


def report_target(runs: list[MeasuredRun], config: ReportConfig) -> QualityTarget:
    """The validation AUC every run is judged against: ``--target-auc``, else the target
    most runs logged, else the HIGGS default."""
    logged = Counter(r.target_value for r in runs if r.target_value is not None)
    value = config.target_auc or (logged.most_common(1)[0][0] if logged else HIGGS_TARGET_AUC)
    return QualityTarget("val_auc", value)


def _time_to_target_section(runs: list[MeasuredRun], config: ReportConfig,
                            path: str) -> Section:
    """MLPerf's rule: training time to the target, per engine and optimizer against N, for
    a fixed batch per node (weak scaling) and a fixed global batch (strong scaling)."""
    target = report_target(runs, config)
    title = f"Time to target quality ({target.describe()})"
    dist = [r for r in runs if r.backend in DISTRIBUTED]
    series: dict[tuple[str, str], list[tuple[int, float]]] = {}
    cells: dict[tuple[str, str], dict[int, str]] = {}
    for anchor in sorted(dist, key=lambda r: (r.backend, r.optimizer, r.nodes)):
        first = min(r.nodes for r in dist if (r.backend, r.optimizer) == (anchor.backend,
                                                                          anchor.optimizer))
        if anchor.nodes != first:
            continue
        mine = [r for r in dist if (r.backend, r.optimizer) == (anchor.backend, anchor.optimizer)]
        weak = [r for r in mine if r.batch_per_node == anchor.batch_per_node]
        strong = [r for r in mine if r.global_batch == anchor.global_batch]
        curves = {f"{anchor.optimizer} b{anchor.batch_per_node}/node (weak)": weak}
        if {r.run_id for r in strong} != {r.run_id for r in weak}:
            curves[f"{anchor.optimizer} b{anchor.global_batch} global (strong)"] = strong
        for name, members in curves.items():
            key = (anchor.backend, name)
            results = {r.nodes: r.to_target(target) for r in members}
            series[key] = sorted((n, t.time_s) for n, t in results.items() if t.reached)
            cells[key] = {n: t.format() for n, t in results.items()}
    baselines = {}
    lines = []
    for label, cpu in _keras_baselines(runs).items():
        # one line per optimizer and batch: the baseline that ran last may be an optimizer
        # that never reaches the target while another one does
        for r in sorted(cpu, key=lambda r: (r.optimizer, r.batch_size)):
            result = r.to_target(target)
            lines.append(f"- {label}, {r.optimizer}, batch {r.batch_size}: {result.format()}")
            if result.reached:
                key = f"{label}, {r.optimizer}"
                baselines[key] = min(baselines.get(key, result.time_s), result.time_s)
    if not series:
        return Section(title, ["Not measured: no BigDL or Horovod run in this experiment."])
    paragraphs = [
        f"Training time (the epochs' wall times, validation excluded) until the validation "
        f"AUC first reached {target.value:g} (MLPerf's time-to-train rule; --target-auc "
        "chooses it), per engine and optimizer. 'weak': every node keeps the batch it had "
        "at the smallest N, so the global batch grows with N (hepspark bench scaling "
        "--batch-scaling per-executor); 'strong': the global batch stays fixed (--batch-"
        "scaling global). A larger global batch has shorter epochs but may need more of "
        "them: only this time says whether it paid. Runs that never reached the target are "
        "not drawn; the table says after how many epochs they stopped."]
    if lines:
        paragraphs.append("Single-process Keras baselines (horizontal lines):\n"
                          + "\n".join(lines))
    drawn = {k: v for k, v in series.items() if v}
    if drawn:
        plots.plot_time_to_target(drawn, baselines, path, target.describe())
    else:
        paragraphs.append(f"No distributed run reached {target.describe()}: nothing to draw.")
    nodes = sorted({n for c in cells.values() for n in c})
    table = Table(["backend optimizer batch", *(f"N={n}" for n in nodes)],
                  [[f"{b} {name}", *(c.get(n, "–") for n in nodes)]
                   for (b, name), c in sorted(cells.items())])
    return Section(title, paragraphs, "plots/time_to_target.png" if drawn else None, table)


def build_report(runs: list[MeasuredRun], config: ReportConfig, plots_dir: str,
                 superseded: int = 0, tracking_uri: str = "") -> Document:
    """The report of ``runs``; plots are written into ``plots_dir`` (named ``plots/`` in it).
    HIGGS runs get the HIGGS sections (also when there is no run at all); CNN runs get
    sections per model family (:mod:`hepspark.report.cnn_scaling`) after them."""
    cnn = [r for r in runs if r.task == "cnn"]
    higgs = [r for r in runs if r.task != "cnn"]
    sections = (_higgs_sections(higgs, config, plots_dir, superseded, tracking_uri)
                if higgs or not cnn else [])
    if cnn:
        sections += cnn_sections(cnn, config.target_auc, plots_dir,
                                 superseded=0 if higgs else superseded)
    if config.context:  # first: every number below is read under these conditions
        sections.insert(0, Section("Measurement conditions", [config.context]))
    return Document(f"Scaling report: {config.experiment}", sections)


def _higgs_sections(runs: list[MeasuredRun], config: ReportConfig, plots_dir: str,
                    superseded: int, tracking_uri: str) -> list[Section]:
    dist = [r for r in runs if r.backend in DISTRIBUTED]
    baseline_runs = [r for r in runs if r.backend not in DISTRIBUTED]
    rows_count = Counter(r.train_rows for r in dist + [r for r in runs if r.backend == "keras"])
    rows = rows_count.most_common(1)[0][0] if rows_count else (runs[0].train_rows if runs else 0)
    # runs that measure one term each stay out of the curves: the driver on a node's core,
    # and a shaped link (the model predicts them: see its held-out check)
    apart = ({r.run_id for r in _driver_placement_runs(dist)}
             | {r.run_id for r in dist if r.over_shaped_link})
    same_rows = [r for r in dist if r.train_rows == rows and r.run_id not in apart]
    sections = [_summary(runs, dist, baseline_runs, rows, superseded, tracking_uri, config),
                _runs_section(runs)]

    def png(name: str) -> str:
        return os.path.join(plots_dir, name)

    rates = _baseline_rates(baseline_runs)
    baseline_times = {label: rows / rate for label, rate in rates.items() if rate > 0}
    times = _series(same_rows, lambda r: r.epoch_time_s)
    if times:
        plots.plot_epoch_time(times, baseline_times, png("epoch_time.png"), rows)
        table = _node_table(times, ".2f")
        table.rows += [[label, *[_fmt(t)] * (len(table.headers) - 1)]
                       for label, t in baseline_times.items()]
        sections.append(Section(
            "Epoch wall time vs executors",
            [f"Median epoch wall time in seconds for {rows:,d} training rows (epochs after the "
             "first). Horizontal lines: single-process Keras baselines (a GPU rate measured on "
             "another dataset size is scaled to these rows)."],
            "plots/epoch_time.png", table))
    else:
        sections.append(Section("Epoch wall time vs executors",
                                ["Not measured: no BigDL or Horovod run in this experiment."]))

    one = _one_node_times(same_rows)
    several = len({r.batch_per_node for r in same_rows}) > 1
    relative = _series(same_rows, lambda r: r.epoch_time_s / one[_curve(r, several)]
                       if _curve(r, several) in one else None)
    efficiency = _series(same_rows, lambda r: one[_curve(r, several)] / (r.nodes * r.epoch_time_s)
                         if _curve(r, several) in one else None)
    multi = {k: v for k, v in relative.items() if len(v) > 1}
    if multi:
        plots.plot_relative_time(multi, png("relative_time.png"), SEED_GAIN)
        table = _node_table(multi, ".3f")
        gains = {k: gain_per_added_node([t for _, t in v]) for k, v in multi.items()}
        table.headers.append("gain per added node")
        for row, key in zip(table.rows, sorted(multi)):
            row.append(", ".join(f"{g:+.0%}" for g in gains[key]))
        sections.append(Section(
            "Epoch time relative to one executor",
            ["T(N)/T(1) per backend and optimizer; the black line is ideal scaling (1/N), the "
             f"band the seed study's observation of {SEED_GAIN[0]:.0%}–{SEED_GAIN[1]:.0%} "
             "shorter epochs per added node. Gain per added node = T(N-1)/T(N) - 1."],
            "plots/relative_time.png", table))
        plots.plot_efficiency({k: v for k, v in efficiency.items() if len(v) > 1},
                              png("efficiency.png"))
        sections.append(Section(
            "Parallel efficiency",
            ["T(1) / (N · T(N)): 1 means N executors are N times faster than one."],
            "plots/efficiency.png", _node_table(efficiency, ".2f")))
    else:
        sections.append(Section("Epoch time relative to one executor and parallel efficiency", [
            "Not measured: this needs, for one backend and optimizer, a run on 1 executor and "
            "a run on more (e.g. hepspark bench scaling --executors 1,2)."]))

    sections.append(_flop_section(runs, png("flop_fraction.png")))
    sections.append(_quality_section(runs, png("auc.png")))
    # at the sample's size only: a full-size or probe run beside it is another epoch length
    timed = {r.run_id for r in same_rows}
    sections.append(_time_to_target_section(
        [r for r in runs if r.backend not in DISTRIBUTED or r.run_id in timed], config,
        png("time_to_target.png")))
    sections += model_sections(dist, rates, config.model_settings, png)
    return sections


def _summary(runs, dist, baseline_runs, rows, superseded, tracking_uri, config) -> Section:
    paragraphs = [
        f"Experiment {config.experiment!r} ({tracking_uri}): {len(runs)} run(s)"
        + (f", {superseded} older measurement(s) replaced by re-runs" if superseded else "")
        + f". Distributed runs on {rows:,d} training rows unless said otherwise.",
        "Epoch time is the median over the epochs after the first, which carries one-off "
        "costs (graph tracing, JVM warm-up, BigDL's sample caching); a run with one epoch "
        "only is marked * and includes them.",
    ]
    placement = sorted({(r.worker_cpus, r.driver_cpus) for r in dist if r.driver_cpus})
    if placement:
        paragraphs.append("Placement:\n" + "\n".join(_placement(w, d) for w, d in placement))
    devices = sorted({r.device for r in runs})
    if devices:
        paragraphs.append("Hardware:\n" + "\n".join(f"- {d}" for d in devices))
    missing = []
    if not runs:
        missing.append("- no finished training run in this experiment: run 'hepspark bench "
                       "scaling --data DIR' first")
    for backend in DISTRIBUTED:
        nodes = sorted({r.nodes for r in dist if r.backend == backend})
        if not nodes:
            if backend in EXPECTED:
                missing.append(f"- {backend}: not measured")
        elif len(nodes) == 1:
            missing.append(f"- {backend}: only N={nodes[0]} measured; a scaling curve needs "
                           "two node counts or more")
        optimizers = sorted({r.optimizer for r in dist})
        for optimizer in optimizers:
            have = {r.nodes for r in dist if r.backend == backend and r.optimizer == optimizer}
            lacking = sorted(set(nodes) - have)
            if nodes and lacking:
                missing.append(f"- {backend} {optimizer}: not measured at N="
                               + ",".join(map(str, lacking)))
    if not any(r.backend == "keras" for r in baseline_runs):
        missing.append("- Keras CPU baseline: not measured")
    if not any(r.backend not in ("keras", *DISTRIBUTED) for r in baseline_runs):
        missing.append("- single-GPU baseline: not measured (no GPU here; run "
                       "benchmarks/gpu_baseline.py where there is one and 'hepspark bench "
                       "import-baseline FILE')")
    if missing:
        paragraphs += ["What is missing:", "\n".join(missing)]
    return Section("Summary", paragraphs)


def _placement(worker_cpus: str | None, driver_cpus: str) -> str:
    if not worker_cpus:
        return (f"- nodes not pinned: the executors, their threads and the driver shared CPUs "
                f"{driver_cpus}; engine cost and contention are one number")
    nodes = parse_node_cpus(worker_cpus)
    shared = sorted(set(parse_cpus(driver_cpus)) & {c for n in nodes for c in n})
    note = (f"; the driver shares CPU(s) {','.join(map(str, shared))} with the nodes (its CPU "
            "time is in the runs table)" if shared else "; the driver has CPUs of its own")
    return (f"- {len(nodes)} pinned node(s), CPUs {worker_cpus}; driver on CPUs "
            f"{driver_cpus}{note}")


def _runs_section(runs: list[MeasuredRun]) -> Section:
    table = Table(
        ["run", "backend", "optimizer", "N", "cores/exec", "global batch", "train rows",
         "rows/epoch", "epochs", "epoch s", "rows/s", "FLOP ceiling", "val AUC", "test AUC",
         "node CPUs", "driver CPUs", "driver CPU s", "device", "link"],
        [[r.run_id[:8], r.backend, r.optimizer, str(r.nodes), str(r.cores_per_executor),
          str(r.global_batch), f"{r.train_rows:,d}", _fmt(r.epoch_fraction, ".0%"),
          str(len(r.epochs)),
          _fmt(r.epoch_time_s) + ("*" if r.includes_warmup else ""),
          _fmt(r.rows_per_s, ",.0f"), _fmt(r.flop_fraction, ".1%"), _fmt(r.val_auc, ".4f"),
          _fmt(r.test_auc, ".4f"), r.worker_cpus or "–", r.driver_cpus or "–",
          _fmt(r.driver_cpu_time_s, ".1f"), r.device, r.link] for r in runs],
    )
    paragraphs = ["Every run the report uses, newest per configuration. rows/epoch: the rows "
                  "an epoch trained (logged rows/s × epoch time) over the training rows. "
                  "node CPUs: each node's pinned CPUs ('–': not pinned, shared); driver CPUs "
                  "and driver CPU s: where the job's own process ran and the CPU time it and "
                  "its children used (spark-submit's JVM, the Python driver; in local mode "
                  "and for Keras it includes the training)."]
    placement = _driver_placement_runs([r for r in runs if r.backend in DISTRIBUTED])
    if placement:
        paragraphs.append("Single-node runs with the driver pinned to the node's core, beside "
                          "the same run with the driver apart, measure what the driver costs "
                          "nodes whose cores it shares (the performance model's h); they are "
                          "left out of the curves and tables below: " + ", ".join(
                              f"{r.label} (driver CPUs {r.driver_cpus})" for r in placement))
    shaped = [r for r in runs if r.over_shaped_link]
    if shaped:
        paragraphs.append("Runs over a shaped link (a sweep's --link: this machine's loopback "
                          "limited with tc tbf) measure the exchange term in training; they are "
                          "left out of the curves and tables below, and the performance model "
                          "predicts them from the link's exchange benchmark (held-out check): "
                          + ", ".join(r.label for r in shaped))
    partial = [r for r in runs if r.epoch_fraction < 0.95]
    if partial:
        paragraphs.append("Epochs that trained under 95 % of the rows (their epoch times are not "
                          "comparable with full passes): " + ", ".join(
                              f"{r.label} ({r.epoch_fraction:.0%})" for r in partial))
    return Section("Runs", paragraphs if runs else ["No runs."], table=table)


def _flop_section(runs: list[MeasuredRun], path: str) -> Section:
    known = [r for r in runs if r.flop_fraction is not None]
    title = "Fraction of the FLOP ceiling"
    if not known:
        return Section(title, ["Not available: no run recorded its FLOP ceiling (runs of "
                               "'hepspark bench scaling' and imported baselines do)."])
    plots.plot_bars([r.label for r in known], [r.flop_fraction for r in known], path,
                    "training FLOP rate / FLOP ceiling", "Rows/s as a fraction of the FLOP ceiling",
                    percent=True)
    table = Table(["run", "rows/s", "ceiling GFLOP/s", "ceiling rows/s", "fraction"],
                  [[r.label, _fmt(r.rows_per_s, ",.0f"), _fmt(r.flop_ceiling_gflops, ",.0f"),
                    _fmt(r.flop_ceiling_gflops * 1e9 / (6 * r.parameters), ",.0f"),
                    _fmt(r.flop_fraction, ".1%")] for r in known])
    return Section(title, [
        "Training costs 6 flops per weight per row. The ceiling is the fp32 matmul rate "
        "measured by the sweep on one core (numpy BLAS) times the cores the run used, or the "
        "GPU's measured fp32 matmul rate for a GPU baseline."], "plots/flop_fraction.png", table)


def _quality_section(runs: list[MeasuredRun], path: str) -> Section:
    title = "Quality of every run"
    with_auc = [r for r in runs if r.val_auc is not None or r.test_auc is not None]
    if not with_auc:
        return Section(title, ["No run logged a validation or test AUC."])
    plots.plot_bars([r.label for r in with_auc], [r.val_auc for r in with_auc], path,
                    "final validation AUC", "Final AUC of every run (speed is never shown "
                    "without quality)", second=("test AUC", [r.test_auc for r in with_auc]))
    table = Table(["run", "epochs", "final val AUC", "test AUC"],
                  [[r.label, str(len(r.epochs)), _fmt(r.val_auc, ".4f"), _fmt(r.test_auc, ".4f")]
                   for r in with_auc])
    return Section(title, ["Runs with fewer epochs or another global batch reach a different "
                           "AUC in the same number of epochs; compare speed at equal quality."],
                   "plots/auc.png", table)


def _swap_in(tmp: str, output: str) -> None:
    """Replace ``output`` by the complete ``tmp`` directory: only a report hepspark wrote
    (or an empty directory) is replaced, and only once the new one is complete."""
    from hepspark.data import storage

    fs = storage.LocalFileSystem()
    storage.mark_directory(fs, tmp, "report scaling")
    names = fs.list_names(output)
    legacy = REPORT_FILE in names and set(names) <= {REPORT_FILE, "report.html", "plots"}
    if not legacy and not storage.check_replaceable(output, fs):
        os.replace(tmp, output)
        return
    old = f"{output}.old-{os.getpid()}"
    os.replace(output, old)
    os.replace(tmp, output)
    shutil.rmtree(old, ignore_errors=True)


def write_scaling_report(experiment: str, output: str, tracking_uri: str | None = None,
                         **options) -> str:
    """Write the report of ``experiment`` into ``output``; returns the report.md path."""
    from hepspark.tracking import resolve_tracking_uri

    config = ReportConfig(experiment=experiment, output=output, tracking_uri=tracking_uri,
                          **options)
    uri = resolve_tracking_uri(tracking_uri)
    runs, superseded = latest_per_configuration(load_runs(experiment, uri))
    output = os.path.abspath(output)
    parent = os.path.dirname(output)
    os.makedirs(parent, exist_ok=True)
    tmp = f"{output}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        os.makedirs(os.path.join(tmp, "plots"))
        doc = build_report(runs, config, os.path.join(tmp, "plots"), superseded, uri)
        for name, text in ((REPORT_FILE, doc.to_markdown()), ("report.html", doc.to_html())):
            with open(os.path.join(tmp, name), "w") as handle:
                handle.write(text)
        _swap_in(tmp, output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
    if config.log_to_mlflow:
        log_report(experiment, output, uri)
    return os.path.join(output, REPORT_FILE)


def log_report(experiment: str, directory: str, tracking_uri: str) -> str:
    """Log ``directory`` as the artifacts of the experiment's one ``scaling-report`` run."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    found = client.search_runs([experiment_id], f"tags.`{TASK_TAG}` = '{REPORT_TASK}'",
                               max_results=1)
    run_id = found[0].info.run_id if found else client.create_run(
        experiment_id, run_name=REPORT_TASK, tags={TASK_TAG: REPORT_TASK}).info.run_id
    client.log_artifacts(run_id, directory, "scaling-report")
    client.set_terminated(run_id)
    return run_id
