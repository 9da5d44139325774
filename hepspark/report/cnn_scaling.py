"""The CNN part of the scaling report: per model family and dataset (``vgg`` on ``jets``),
images/s and epoch time against executors with the Keras CPU baseline and the single-GPU
baseline slot, parallel efficiency and time to the target quality.

Runs come from :func:`hepspark.report.runs.load_runs` with ``task == "cnn"``: a CNN
sweep's (``hepspark bench scaling --task cnn``), a user's ``train cnn`` runs and imported
``benchmarks/cnn_zoo.py`` baselines (``hepspark bench import-baseline``), which are matched
to a section by family. A curve is one engine with one zoo model and optimizer (and batch
per node where several were measured). What is missing is said, not drawn.

>>> sections = cnn_sections(runs, target_auc=None, plots_dir="report/plots")  # doctest: +SKIP
>>> [s.title for s in sections][:2]  # doctest: +SKIP
['CNN runs', 'CNN basic_cnn on jets images']
"""
from __future__ import annotations

import os
from collections import Counter, defaultdict

import numpy as np

from hepspark.quality import QualityTarget
from hepspark.report import scaling_plots as plots
from hepspark.report.document import Section, Table
from hepspark.report.runs import MeasuredRun
from hepspark.report.scaling_tables import fmt, node_table

Series = dict[tuple[str, str], list[tuple[int, float]]]
_CURVE = "backend model optimizer"


def is_baseline(run: MeasuredRun) -> bool:
    """A single-process run: Keras on the CPU or an imported baseline (keras-gpu, ...)."""
    return run.backend == "keras" or run.backend.startswith("keras-")


def _quality(run: MeasuredRun) -> tuple[str, float | None]:
    """(metric name, last value): val AUC for 2 classes, else val accuracy."""
    for metric in ("val_auc", "val_accuracy"):
        values = [e[metric] for e in run.epochs if e.get(metric) is not None]
        if values:
            return metric.replace("_", " "), values[-1]
    return "val", None


def cnn_sections(runs: list[MeasuredRun], target_auc: float | None, plots_dir: str,
                 superseded: int = 0) -> list[Section]:
    """The overview of every CNN run, then the sections of each (family, dataset)."""
    sections = [_overview(runs, superseded)]
    imported = [r for r in runs if r.backend.startswith("keras-")]
    trained = [r for r in runs if r not in imported]
    groups: dict[tuple[str, str], list[MeasuredRun]] = defaultdict(list)
    for run in trained:
        groups[(run.family, run.dataset_kind or "unknown")].append(run)
    if not groups:
        sections.append(Section("CNN scaling", [
            "Not measured: only imported baselines, no CNN training run (hepspark bench "
            "scaling --task cnn)."]))
    for (family, kind), members in sorted(groups.items()):
        gpu = [r for r in imported if r.family == family]
        sections += _family_sections(family, kind, members, gpu, target_auc, plots_dir)
    return sections


def _overview(runs: list[MeasuredRun], superseded: int) -> Section:
    rows = []
    for r in runs:
        metric, value = _quality(r)
        rows.append([r.run_id[:8], r.model, r.family, r.dataset_kind or "–", r.backend,
                     r.optimizer, str(r.nodes), str(r.global_batch), f"{r.train_rows:,d}",
                     fmt(r.epoch_fraction, ".0%"), str(len(r.epochs)),
                     fmt(r.epoch_time_s) + ("*" if r.includes_warmup else ""),
                     fmt(r.rows_per_s, ",.0f"), f"{metric} {fmt(value, '.4f')}",
                     fmt(r.test_auc, ".4f"), r.device])
    paragraphs = [
        f"{len(runs)} CNN run(s)" + (f", {superseded} older measurement(s) replaced by "
                                     "re-runs" if superseded else "")
        + ". Images/s and epoch time count training images; the epoch time is the median "
        "over the epochs after the first (a run with one epoch is marked * and includes the "
        "warm-up: graph tracing, JVM start, BigDL's sample caching). Imported baselines "
        "(keras-gpu: benchmarks/cnn_zoo.py on a GPU; keras-memory: the same on a CPU) train "
        "random images in memory, with no input pipeline."]
    table = Table(["run", "model", "family", "dataset", "backend", "optimizer", "N",
                   "global batch", "train images", "images/epoch", "epochs", "epoch s",
                   "images/s", "final val", "test AUC", "device"], rows)
    return Section("CNN runs", paragraphs, table=table)


def _curve(run: MeasuredRun, several_batches: bool) -> tuple[str, str]:
    name = f"{run.model} {run.optimizer}" + (f" b{run.batch_per_node}" if several_batches
                                             else "")
    return run.backend, name


def _series(runs: list[MeasuredRun], value) -> Series:
    several = len({r.batch_per_node for r in runs}) > 1
    series: Series = defaultdict(list)
    for run in runs:
        v = value(run)
        if v is not None and np.isfinite(v):
            series[_curve(run, several)].append((run.nodes, float(v)))
    return {k: sorted(v) for k, v in series.items()}


def _baseline_rates(cpu: list[MeasuredRun], gpu: list[MeasuredRun]) -> dict[str, float]:
    """{label: images/s} of the Keras CPU runs (per model, optimizer and cores) and the
    imported baselines of the family."""
    grouped: dict[str, list[float]] = defaultdict(list)
    for r in sorted(cpu, key=lambda r: (r.model, r.cores_per_executor)):
        pinned = f", pinned to CPUs {r.driver_cpus}" if r.worker_cpus else ""
        grouped[f"Keras CPU {r.model} {r.optimizer}, 1 process ({r.cores_per_executor} "
                f"cores{pinned})"].append(r.rows_per_s)
    rates = {label: float(np.median(v)) for label, v in grouped.items()}
    for r in gpu:
        where = ("in memory " + r.device if r.backend == "keras-memory"
                 else r.device.removeprefix("GPU: "))
        rates[f"Keras {where} {r.model}, batch {r.batch_size}"] = r.rows_per_s
    return rates


def _target(runs: list[MeasuredRun], target_auc: float | None) -> QualityTarget:
    """The target the runs logged (most of them), ``--target-auc`` replacing an AUC one."""
    logged = Counter((r.target_metric, r.target_value) for r in runs
                     if r.target_metric and r.target_value is not None)
    metric, value = logged.most_common(1)[0][0] if logged else ("val_auc", 0.8)
    if target_auc is not None and metric == "val_auc":
        value = target_auc
    return QualityTarget(metric, value)


def _family_sections(family: str, kind: str, runs: list[MeasuredRun], gpu: list[MeasuredRun],
                     target_auc: float | None, plots_dir: str) -> list[Section]:
    dist = [r for r in runs if not is_baseline(r)]
    cpu = [r for r in runs if r.backend == "keras"]
    count = Counter(r.train_rows for r in dist + cpu)
    rows = count.most_common(1)[0][0] if count else 0
    same = [r for r in dist if r.train_rows == rows]
    stem = f"cnn_{family}_{kind}"

    def png(name: str) -> tuple[str, str]:
        return os.path.join(plots_dir, f"{stem}_{name}.png"), f"plots/{stem}_{name}.png"

    missing = []
    if not dist:
        missing.append("- distributed engines: not measured")
    for backend in sorted({r.backend for r in dist}):
        nodes = sorted({r.nodes for r in dist if r.backend == backend})
        if len(nodes) == 1:
            missing.append(f"- {backend}: only N={nodes[0]} measured; a scaling curve needs "
                           "two node counts or more")
    if not cpu:
        missing.append("- Keras CPU baseline: not measured")
    if not any(r.backend == "keras-gpu" for r in gpu):
        missing.append(f"- single-GPU baseline: not measured (run benchmarks/cnn_zoo.py "
                       f"--families {family} where there is a GPU and 'hepspark bench "
                       "import-baseline FILE')")
    intro = [f"Models {', '.join(sorted({r.model for r in runs}))} on {kind} images: "
             f"{rows:,d} training images per epoch for the distributed runs."]
    if missing:
        intro += ["What is missing:", "\n".join(missing)]
    sections = [Section(f"CNN {family} on {kind} images", intro)]

    rates = _baseline_rates(cpu, gpu)
    rate = _series(same, lambda r: r.rows_per_s)
    sections.append(_plotted("Images/s vs executors", rate, ",.0f", png("images_per_s"), [
        "Training images per second over all nodes (median of the epochs after the first). "
        "Horizontal lines: the single-process baselines."],
        lambda path: plots.plot_rate(rate, rates, path, "images",
                                     f"{family} on {kind}: images/s vs executors"), rates))
    times = {label: rows / r for label, r in rates.items() if r > 0 and rows}
    epoch = _series(same, lambda r: r.epoch_time_s)
    sections.append(_plotted("Epoch wall time vs executors", epoch, ".2f", png("epoch_time"), [
        f"Median epoch wall time in seconds for {rows:,d} training images. Horizontal lines: "
        "the baselines' rates turned into the time of the same epoch."],
        lambda path: plots.plot_epoch_time(epoch, times, path, rows), times))
    one = {k: dict(v)[1] for k, v in epoch.items() if 1 in dict(v)}
    efficiency = {k: [(n, one[k] / (n * t)) for n, t in v] for k, v in epoch.items()
                  if k in one and len(v) > 1}
    if efficiency:
        sections.append(_plotted("Parallel efficiency", efficiency, ".2f", png("efficiency"), [
            "T(1) / (N · T(N)) per engine, model and optimizer: 1 means N executors are N "
            "times faster than one."], lambda path: plots.plot_efficiency(efficiency, path)))
    else:
        sections.append(Section("Parallel efficiency", [
            "Not measured: this needs, for one engine, model and optimizer, a run on 1 "
            "executor and a run on more (hepspark bench scaling --task cnn --executors 1,2)."],
            level=3))
    sections.append(_time_to_target(runs, dist, cpu, _target(runs, target_auc),
                                    png("time_to_target")))
    return sections


def _plotted(title: str, series: Series, spec: str, where: tuple[str, str],
             paragraphs: list[str], draw, baselines: dict[str, float] | None = None) -> Section:
    """A level-3 section: the plot drawn by ``draw(path)`` and its table (baselines as
    rows of their own), or 'not measured'."""
    if not series:
        return Section(title, ["Not measured: no distributed run of this family."], level=3)
    draw(where[0])
    table = node_table(series, spec, _CURVE)
    table.rows += [[label, *[fmt(v, spec)] * (len(table.headers) - 1)]
                   for label, v in (baselines or {}).items()]
    return Section(title, paragraphs, where[1], table, level=3)


def _time_to_target(runs: list[MeasuredRun], dist: list[MeasuredRun], cpu: list[MeasuredRun],
                    target: QualityTarget, where: tuple[str, str]) -> Section:
    title = f"Time to target quality ({target.describe()})"
    several = len({r.batch_per_node for r in dist}) > 1
    cells: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
    reached: Series = defaultdict(list)
    for run in dist:
        result = run.to_target(target)
        cells[_curve(run, several)][run.nodes] = result.format()
        if result.reached:
            reached[_curve(run, several)].append((run.nodes, result.time_s))
    baselines = {}
    lines = []
    for run in cpu:
        result = run.to_target(target)
        label = f"Keras CPU {run.model} {run.optimizer} ({run.cores_per_executor} cores)"
        lines.append(f"- {label}: {result.format()}")
        if result.reached:
            baselines[label] = result.time_s
    if not cells:
        return Section(title, ["Not measured: no distributed run of this family."], level=3)
    paragraphs = [f"Training time (the epochs' wall times, validation excluded) until the "
                  f"{target.describe()} was first reached (MLPerf's rule; the target the runs "
                  "logged, --target-auc replaces an AUC one). Runs that never reached it are "
                  "not drawn; the table says after how many epochs they stopped."]
    if lines:
        paragraphs.append("Single-process Keras baselines:\n" + "\n".join(lines))
    image = None
    if reached:
        plots.plot_time_to_target({k: sorted(v) for k, v in reached.items()}, baselines,
                                  where[0], target.describe())
        image = where[1]
    else:
        paragraphs.append(f"No distributed run reached {target.describe()}: nothing to draw.")
    nodes = sorted({n for c in cells.values() for n in c})
    table = Table([_CURVE, *(f"N={n}" for n in nodes)],
                  [[f"{b} {name}", *(c.get(n, "–") for n in nodes)]
                   for (b, name), c in sorted(cells.items())])
    return Section(title, paragraphs, image, table, level=3)
