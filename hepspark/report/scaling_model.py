"""The scaling report's model sections: the performance model fitted term by term, its
held-out check, the Universal Scalability Law beside it, the measured exchange, and the
prediction past one machine (:mod:`hepspark.bench.perfmodel`).

``model_sections(dist_runs, rates, settings, png)`` returns the sections; the rest of the
report (:mod:`hepspark.report.scaling`) only places them. ``settings`` is a
:class:`ModelSettings`: the epoch to predict, up to how many nodes, and the link — assumed
(bandwidth, latency) or measured by ``hepspark bench exchange`` (``exchange_file`` + ``link``).
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from hepspark.bench.perfmodel import (
    LOOPBACK,
    PROBE_BATCH,
    GroupCost,
    GroupCostCurve,
    GroupTerm,
    HeldOut,
    Measurement,
    Network,
    PerfModel,
    StepCurve,
    exchange_engines,
    exchange_networks,
    exchanged_bytes,
    fit_perf_model,
    fit_usl,
    gain_per_added_node,
    group_term,
    held_out_check,
    load_group_cost,
    load_step_curve,
    read_exchange,
)
from hepspark.bench.sweep import DISTRIBUTED
from hepspark.report import scaling_plots as plots
from hepspark.report.document import Section, Table
from hepspark.report.runs import MeasuredRun

SEED_GAIN = (0.30, 0.40)  # seed 004: "30-40 % gain per added node", shrinking with N
HELD_OUT_TARGET = 0.10    # issue #16: a model extrapolates once held-out runs are within 10 %


def _one_per_engine(measured: Iterable[StepCurve], flag: str, what: str
                    ) -> dict[str, StepCurve]:
    """Files measured apart, by the engine they measured; two for one engine are refused."""
    out: dict[str, StepCurve] = {}
    for item in measured:
        if item.engine in out:
            raise ValueError(f"{flag}: two files measure {item.engine}'s {what} "
                             f"({out[item.engine].source}, {item.source}); give one per engine")
        out[item.engine] = item
    return out


@dataclass(frozen=True)
class ModelSettings:
    epoch_rows: int
    max_nodes: int = 64
    bandwidth_gbps: float = 10.0
    latency_us: float = 50.0
    bigdl_fetch_latency_ms: float = 1.0
    exchange_file: str | None = None   # JSON of 'hepspark bench exchange'
    link: str = "veth-10gbit"          # the measured link the prediction runs over
    group_cost_files: tuple[str, ...] = ()  # 'benchmarks/colocation.py --horovod|--torch'
    step_curve_files: tuple[str, ...] = ()  # 'benchmarks/step_curve.py --horovod|--torch'

    def __post_init__(self) -> None:
        # an unreadable file, or two of one engine: refused now, before any work
        self.group_costs  # noqa: B018
        self.step_curves  # noqa: B018

    @cached_property
    def group_costs(self) -> dict[str, GroupTerm]:
        """The measured cost of being one rank of a group, per engine: the co-location
        files given, repeated runs at one batch averaged, several batches interpolated."""
        by_engine: dict[str, list[GroupCost]] = defaultdict(list)
        for cost in map(load_group_cost, self.group_cost_files):
            by_engine[cost.engine].append(cost)
        return {engine: group_term(costs) for engine, costs in by_engine.items()}

    @cached_property
    def step_curves(self) -> dict[str, StepCurve]:
        """Each engine's step time against the batch, measured apart (at most one file per
        engine): the model's time per row follows it instead of being constant."""
        return _one_per_engine(map(load_step_curve, self.step_curve_files), "--step-curve",
                               "step")

    @cached_property
    def exchange(self) -> dict:
        """The exchange file, parsed once (empty without one)."""
        return read_exchange(self.exchange_file) if self.exchange_file else {}

    @cached_property
    def exchange_links(self) -> dict[str, dict[str, Network]]:
        """The exchange file's links by engine, each with that engine's all-reduce overhead
        (empty without a file)."""
        if not self.exchange_file:
            return {}
        return {engine: exchange_networks(self.exchange, engine, self.exchange_file)
                for engine in exchange_engines(self.exchange)}

    def measured_links(self, backend: str) -> dict[str, Network]:
        """The exchange file's links with ``backend``'s own all-reduce overhead: torch's
        where the file measured it, else Horovod's (an older file: said in each link's
        source); BigDL takes the links' wire only (see :meth:`networks`)."""
        if backend == "torch" and "torch" in self.exchange_links:
            return self.exchange_links["torch"]
        # a file without Horovod's all-reduce: exchange_networks says how to measure it
        horovod = (self.exchange_links.get("horovod")
                   or exchange_networks(self.exchange, "horovod", str(self.exchange_file)))
        if backend != "torch":
            return horovod
        return {name: replace(net, source=f"{net.source}, standing in for torch's")
                for name, net in horovod.items()}

    def run_network(self, backend: str, link: str) -> Network | None:
        """The network a run over ``link`` (a sweep's --link) exchanged on, from the exchange
        file: None for plain loopback (the model's measured network, :meth:`networks`). A
        link the file did not measure is a ValueError saying how to measure it."""
        if link == "loopback":
            return None
        links = self.measured_links(backend) if self.exchange_file else {}
        if link not in links:
            raise ValueError(
                f"runs trained over {link!r}, which "
                + (f"{self.exchange_file} did not measure" if self.exchange_file
                   else "no --exchange file gives")
                + f": measure it with 'hepspark bench exchange --links loopback,{link},...' "
                "and pass --exchange FILE")
        # BigDL: the link's wire only, as in networks()
        return replace(links[link], overhead_s=0.0) if backend == "bigdl" else links[link]

    def networks(self, backend: str) -> tuple[Network, Network]:
        """(the network the runs were measured on, the target network of the prediction)."""
        fetch = self.bigdl_fetch_latency_ms * 1e-3 if backend == "bigdl" else 0.0
        if not self.exchange_file:
            return LOOPBACK, Network(self.bandwidth_gbps, self.latency_us * 1e-6 + fetch)
        measured = self.measured_links(backend)
        if self.link not in measured:
            raise ValueError(f"--link {self.link!r} is not in {self.exchange_file} (it has "
                             f"{', '.join(sorted(measured)) or 'no links'}); choose one of them "
                             "or measure it with 'hepspark bench exchange --links ...'")
        loop, target = measured.get("loopback", LOOPBACK), measured[self.link]
        if backend == "bigdl":
            # BigDL's exchange is Spark block fetches, not Gloo: the link's wire (bandwidth,
            # latency) is measured, Horovod's software overhead is not BigDL's, and the
            # block-manager cost per fetch stays an assumption.
            loop = replace(loop, overhead_s=0.0)
            target = replace(target, overhead_s=0.0, latency_s=target.latency_s + fetch,
                             source=f"{target.source} + {fetch * 1e3:g} ms per fetch, assumed")
        return loop, target


def _fmt(value: float | None, spec: str = ".2f", missing: str = "–") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    return format(value, spec)


def _rows_trained(run: MeasuredRun) -> int:
    """The rows an epoch of ``run`` trained: ranks drop the last partial global batch (98 %
    of the rows at 4000 x 2 on 171k), and the epoch's time covers only those."""
    fraction = run.epoch_fraction
    if not math.isfinite(fraction) or fraction <= 0:
        return run.train_rows
    return round(run.train_rows * min(fraction, 1.0))


def _measurements(runs: list[MeasuredRun],
                  network: Callable[[str], Network | None]) -> list[Measurement]:
    """The runs as the model sees them; ``network(link)``: the network of a run's link."""
    return [Measurement(r.nodes, _rows_trained(r), r.global_batch, r.epoch_time_s, r.label,
                        network=network(r.link), spread=r.epoch_spread,
                        driver_on_nodes=r.driver_on_nodes)
            for r in runs]


def _usual_batch(batches: Iterable[int]) -> int:
    """The batch per node measured most often, probes aside; among equals the one nearest
    the seed study's 1000 rows (a sweep over 500-4000 is read at 1000, not at its
    smallest)."""
    counts = Counter(batches)
    trained = Counter({b: n for b, n in counts.items() if b > PROBE_BATCH})
    counts = trained or counts
    return max(counts, key=lambda b: (counts[b], -abs(math.log(b / 1000))))


def _param_bytes(backend: str, runs: list[MeasuredRun]) -> int:
    return exchanged_bytes(backend, Counter(r.parameters for r in runs).most_common(1)[0][0])


def fit_models(dist: list[MeasuredRun], settings: ModelSettings) -> dict[str, PerfModel]:
    """One model per distributed backend that has finished runs."""
    models = {}
    for backend in DISTRIBUTED:
        mine = [r for r in dist if r.backend == backend and math.isfinite(r.epoch_time_s)]
        if mine:
            measured, target = settings.networks(backend)
            runs = _measurements(mine, lambda link, b=backend: settings.run_network(b, link))
            models[backend] = fit_perf_model(backend, runs, _param_bytes(backend, mine),
                                             measured_network=measured, network=target,
                                             group=settings.group_costs.get(backend),
                                             curve=settings.step_curves.get(backend))
    return models


def _held_out_section(dist: list[MeasuredRun], models: dict[str, PerfModel]) -> Section:
    rows, verdicts = [], []
    for backend, model in models.items():
        checks: list[HeldOut] = held_out_check(
            backend, list(model.measurements), model.param_bytes, model.measured_network,
            model.group, model.curve)
        errors = [abs(c.error) for c in checks if c.error is not None]
        judged = [c for c in checks if c.error is not None and c.measurement.spread is not None]
        beyond = sum(abs(c.error) > c.measurement.spread for c in judged)
        for c in checks:
            rows.append([backend, c.dimension, c.held_out, c.measurement.label,
                         _fmt(c.measurement.epoch_time_s), _fmt(c.predicted_s),
                         _fmt(None if c.error is None else 100 * c.error, "+.1f"),
                         _fmt(None if c.measurement.spread is None
                              else 100 * c.measurement.spread, ".1f"),
                         c.why or "–"])
        if not checks:
            verdicts.append(f"- {backend}: nothing to hold out (one node count, batch size, "
                            "link and epoch size): the model is not checked; measure another N "
                            "or batch")
        elif errors:
            worst = max(errors)
            verdicts.append(f"- {backend}: largest held-out error {worst:.0%} "
                            + ("(within" if worst <= HELD_OUT_TARGET else "(above")
                            + f" the {HELD_OUT_TARGET:.0%} target) over {len(errors)} run(s)"
                            + ("; the fit behind it had no multi-node run"
                               if any("no multi-node" in c.why for c in checks) else "")
                            + (f"; {beyond} of {len(judged)} larger than their run's own "
                               "epoch-to-epoch spread" if judged else ""))
        else:
            verdicts.append(f"- {backend}: no held-out run could be predicted ("
                            f"{checks[0].why})")
    return Section("Held-out check of the performance model", [
        "Before it extrapolates, the model predicts runs it was not fitted on: per dimension "
        "that varies among the runs (node count, batch per node, link, rows per epoch), it is "
        "fitted without the runs at the largest node count, batch or epoch, or the slowest "
        "link, and predicts them (a full-size epoch run beside the sample's: the prediction's "
        "own extrapolation in rows, checked). "
        f"Target: within {HELD_OUT_TARGET:.0%}. Epoch spread: the interquartile range of the "
        "held-out run's own timed epochs after the first, over their median: the noise no "
        "prediction of it can beat.", "\n".join(verdicts)],
        table=Table(["backend", "held out", "value", "run", "measured s", "predicted s",
                     "error %", "epoch spread %", "caveat"], rows) if rows else None, level=3)


def _usl_section(dist: list[MeasuredRun], models: dict[str, PerfModel],
                 settings: ModelSettings) -> Section:
    rows, notes = [], []
    for backend, model in models.items():
        batch = model.batch_per_node or _usual_batch(m.batch_per_node
                                                     for m in model.measurements)
        by_n: dict[int, list[float]] = defaultdict(list)
        for m in model.measurements:
            if m.batch_per_node == batch and m.network is None:  # the USL knows no link
                by_n[m.nodes].append(m.rows / m.epoch_time_s)
        points = [(n, float(np.median(x))) for n, x in sorted(by_n.items())]
        try:
            usl = fit_usl(points)
        except ValueError as error:
            notes.append(f"- {backend}: not fitted ({error})")
            continue
        notes += [f"- {backend}: {n}" for n in usl.notes]
        mine = {n: model.efficiency(settings.epoch_rows, n, batch) * n
                for n in (2, 8, settings.max_nodes)}
        rows.append([backend, f"{usl.alpha:.4f}", f"{usl.beta:.5f}",
                     _fmt(usl.peak_nodes, ".1f", "∞"),
                     *(f"{usl.speedup(n):.2f} / {mine[n]:.2f}" for n in (2, 8, settings.max_nodes))])
    return Section("Universal Scalability Law beside the model", [
        "C(N) = N / (1 + α(N−1) + βN(N−1)) fitted to the measured rows/s (median over "
        "optimizers, one batch per node): α is the serial fraction, β the crosstalk that makes "
        "throughput fall past N* = sqrt((1−α)/β). The USL knows nothing of the network or the "
        "batch; the term-by-term model does. Speed-ups: USL / performance model (target link).",
        "\n".join(notes) or "Both fitted."],
        table=Table(["backend", "α", "β", "N*", "C(2)", "C(8)", f"C({settings.max_nodes})"],
                    rows) if rows else None, level=3)


def _exchange_section(settings: ModelSettings) -> Section | None:
    if not settings.exchange_file:
        return None
    data = settings.exchange
    nets = settings.exchange_links
    engines = tuple(nets)
    paragraphs = [
        f"From {settings.exchange_file} ('hepspark bench exchange': 2 ranks of "
        f"{' and '.join(engines)}, Gloo all-reduce, and raw TCP, per link). The prediction "
        f"uses the link {settings.link!r}; "
        + ("torch's model its own all-reduce, " if "torch" in engines else
           "torch's model Horovod's all-reduce (this file did not time torch's), ")
        + "BigDL its wire only (its block-manager fetches are not timed here)."]
    held = data.get("held_out", [])
    if held:
        paragraphs.append("Each link's all-reduce predicted from its TCP rate and latency and "
                          "the overhead fitted on the other links (held out):\n" + "\n".join(
                              f"- {h['link']}, {h.get('engine', 'horovod')}, {h['floats']:,d} "
                              f"floats: measured {h['measured_s'] * 1e3:.2f} ms, predicted "
                              f"{h['predicted_s'] * 1e3:.2f} ms ({h['error']:+.0%})"
                              for h in held))
    return Section("Measured exchange", paragraphs,
                   table=Table(["link", "engine", "bandwidth Gbit/s", "latency µs",
                                "all-reduce overhead ms"],
                               [[name, engine, _fmt(n.bandwidth_gbps),
                                 _fmt(n.latency_s * 1e6, ".1f"), _fmt(n.overhead_s * 1e3)]
                                for engine, links in nets.items() for name, n in links.items()]),
                   level=3)


def _row_weights(model: PerfModel) -> str:
    """The step curve's weight at the measured batches ('1 (no step curve)' without one)."""
    if model.curve is None:
        return "1 (no step curve)"
    batches = sorted({m.batch_per_node for m in model.measurements})
    return (", ".join(f"x{model.row_weight(b):.3f} at {b}" for b in batches)
            + f" (after the step's fixed {model.curve.fixed_step_s * 1e3:.2f} ms)")


def _group_terms(model: PerfModel) -> str:
    """g and x as the model applies them: at each batch measured apart (a curve), or one
    pair ('1, 0 (none given)' without a co-location file)."""
    if model.group is None:
        return "1, 0 (none given)"
    points = model.group.points if isinstance(model.group, GroupCostCurve) else (model.group,)
    return ", ".join(
        f"x{p.compute_factor:.3f}, {p.extra_exchange_s(model.param_bytes, model.measured_network) * 1e3:.2f} ms"
        + (f" at {p.batch_size}" if len(points) > 1 else "") for p in points)


def _driver_factor(model: PerfModel) -> str:
    """h as measured, or why there is none."""
    return {"measured": f"x{model.driver_factor:.3f}",
            "in a, b": "in a, b (the driver shared the nodes' cores at every N)",
            "unknown": "unknown (in c)"}.get(model.driver_placement, "– (driver apart)")


def model_sections(dist: list[MeasuredRun], rates: dict[str, float], settings: ModelSettings,
                   png: Callable[[str], str]) -> list[Section]:
    """Every model section of the report (see module); plots go through ``png(name)``."""
    title = "Performance model and prediction past one machine"
    models = fit_models(dist, settings)
    if not models:
        return [Section(title, ["Not fitted: no BigDL or Horovod runs."])]
    fit_rows, fit_points = [], {}
    for backend, model in models.items():
        pts = []
        for m in model.measurements:
            try:
                predicted = model.fitted_time_s(m)
            except ValueError:  # a batch the folded model cannot describe; said in its notes
                continue
            pts.append((m.epoch_time_s, predicted))
            fit_rows.append([backend, m.label, str(m.global_batch), _fmt(m.epoch_time_s),
                             _fmt(predicted), _fmt(100 * (predicted / m.epoch_time_s - 1), "+.1f")])
        fit_points[backend] = pts
    plots.plot_fit(fit_points, png("model_fit.png"))
    params = Table(["backend", "a: µs/row", "w(B): time per row vs a", "b: ms/step",
                    "c: ms/step/extra node", "h: driver on the nodes' cores",
                    "g, x (N ≥ 2)", "P: MB as exchanged", "measured on", "target network", "notes"],
                   [[b, _fmt(m.row_time_s * 1e6), _row_weights(m),
                     _fmt(m.step_time_s * 1e3, ".3f"), _fmt(m.peer_step_time_s * 1e3, ".3f"),
                     _driver_factor(m),
                     _group_terms(m),
                     _fmt(m.param_bytes / 1e6),
                     m.measured_network.describe(), m.network.describe(),
                     "; ".join(m.notes) or "–"]
                    for b, m in models.items()])
    link = (f"the link {settings.link!r} measured by 'hepspark bench exchange'"
            if settings.exchange_file else
            f"an assumed {settings.bandwidth_gbps:g} Gbit/s, {settings.latency_us:g} µs per "
            "message (measure it: hepspark bench exchange, then --exchange FILE)")
    sections = [Section(title, [
        "T(N) = g·h·(a·R/N + S·b) + S·(c·(N−1) + sync(N) + x), with R rows, S steps per epoch "
        "and sync(N) = overhead + 2(N−1)/N·P·8/bandwidth + 2(N−1)·latency the ring all-reduce "
        "of the P parameter bytes. The terms are measured separately: a and b from the "
        "single-node runs (T/S = a·B + b over the batch sizes B measured; with a step curve "
        "of the engine measured apart, 'benchmarks/step_curve.py', --step-curve, a·w(B)·B + b, "
        "w the curve's time per row relative to about 1000 rows, after the step's own fixed "
        "cost, which b holds), sync from the link, "
        "g and x (from 2 nodes on; 1 and 0 without such a file) from two pinned ranks of the "
        "engine with no Spark and no reader ('benchmarks/colocation.py --horovod' or "
        "'--torch', --colocation): the compute's slow-down in a group (co-location, "
        "Horovod's background thread on the core that computes) and how much longer the "
        "all-reduce takes inside a training step "
        "than between idle processes; h, for runs on one machine whose driver had no core "
        "of its own (N = 2 on two cores), from single-node runs with the driver pinned to "
        "the node's core (--driver-cpus) against the same runs with the driver apart: what "
        "the driver's own work takes from the compute (past one machine the driver has its "
        "own host, and h is not applied); c from what the multi-node runs leave once all of "
        "these are removed."
        + (f" Here: {', '.join(settings.group_cost_files + settings.step_curve_files)}."
           if settings.group_cost_files or settings.step_curve_files else ""),
        "Assumptions:\n" + "\n".join([
            "- a node is one executor with the measured cores; nodes are identical and "
            "compute scales linearly with 1/N at a fixed batch per node",
            "- the global batch grows with N (each node keeps its batch per step), as in "
            "the sweep's default",
            f"- network between nodes: {link}; BigDL block fetches add "
            f"{settings.bigdl_fetch_latency_ms:g} ms each (assumed: BigDL's own fetches are "
            "not timed here)",
            "- P: the model's parameters as each engine exchanges them, float32 for Horovod "
            "and torch, FP16 for BigDL (its parameter blocks are compressed by default); the "
            "exchange is a ring's 2(N-1)/N·P per node per step",
            "- c is measured on one machine; unless the nodes were pinned to their own cores, "
            "it also holds their contention for the machine's cores, which separate nodes do "
            "not have, so the prediction past one machine is pessimistic ('c=0' curves: "
            "without it)",
            "- no stragglers, failures or input-pipeline limits beyond those measured"])],
        "plots/model_fit.png",
        Table(["backend", "run", "global batch", "measured s", "model s", "error %"], fit_rows)),
        Section("Fitted parameters", [], table=params, level=3)]
    exchange = _exchange_section(settings)
    if exchange:
        sections.append(exchange)
    sections += [_held_out_section(dist, models), _usl_section(dist, models, settings)]
    sections.append(_prediction_section(dist, rates, settings, models, png))
    return sections


def _prediction_section(dist, rates, settings: ModelSettings, models: dict[str, PerfModel],
                        png) -> Section:
    nodes = sorted({1, 2, 3, 4, 5, *(2 ** k for k in range(int(math.log2(settings.max_nodes)) + 1)),
                    settings.max_nodes})
    predicted, measured_scaled, table_rows, batch_of = {}, {}, [], {}
    for backend, model in models.items():
        mine = [r for r in dist if r.backend == backend]
        batch = model.batch_per_node or _usual_batch(r.batch_per_node for r in mine)
        batch_of[backend] = batch
        predicted[backend] = [(n, model.epoch_time_s(settings.epoch_rows, n, batch),
                               model.efficiency(settings.epoch_rows, n, batch)) for n in nodes]
        if model.peer_step_time_s > 0:  # the bound without single-machine contention
            free = replace(model, peer_step_time_s=0.0)
            predicted[f"{backend}, c=0"] = [
                (n, free.epoch_time_s(settings.epoch_rows, n, batch),
                 free.efficiency(settings.epoch_rows, n, batch)) for n in nodes]
        measured_scaled[backend] = [(r.nodes, r.epoch_time_s * settings.epoch_rows / r.train_rows)
                                    for r in mine
                                    if r.batch_per_node == batch and not r.over_shaped_link]
    for n in nodes:
        row = [str(n)]
        for curve in predicted:
            t, eff = next((t, e) for m, t, e in predicted[curve] if m == n)
            row += [_fmt(t, ".1f"), _fmt(eff, ".2f")]
        table_rows.append(row)
    baselines = {label: settings.epoch_rows / rate for label, rate in rates.items() if rate > 0}
    plots.plot_prediction(predicted, measured_scaled, baselines, png("prediction.png"),
                          settings.epoch_rows)
    headers = ["nodes"] + [h for b in predicted for h in (f"{b}: epoch s", f"{b}: efficiency")]
    paragraphs = [f"Predicted epoch time and parallel efficiency for {settings.epoch_rows:,d} "
                  f"rows (the HIGGS training set) up to {settings.max_nodes} nodes over "
                  + ", ".join(f"{b}: {m.network.describe()}" for b, m in models.items())
                  + ", at " + ", ".join(f"{b}: {batch_of[b]} rows per node per step"
                                        for b in models)
                  + ". Circles: the measured runs scaled to the same rows. Curves marked "
                  "'c=0' drop the per-node cost measured on this one machine (where it may hold "
                  "the executors' contention for its cores): the compute + exchange bound. "
                  "Separate nodes should land between the two. The held-out check above says "
                  "how far the model can be trusted."]
    if baselines:
        paragraphs.append("Single-process baselines for the same epoch:\n" + "\n".join(
            f"- {label}: {t:,.0f} s" for label, t in baselines.items()))
    comparison = []
    for backend in predicted:
        first5 = [t for n, t, _ in predicted[backend] if n <= 5]
        comparison.append(f"- {backend}: predicted gain per added node for N=2..5: "
                          + ", ".join(f"{g:.0%}" for g in gain_per_added_node(first5))
                          + f" (seed 004 observed {SEED_GAIN[0]:.0%}–{SEED_GAIN[1]:.0%}, "
                          "shrinking with N)")
        for label, t in baselines.items():
            match = next((n for n, tn, _ in predicted[backend] if tn <= t), None)
            comparison.append(
                f"- {backend} needs {match} node(s) to match {label}" if match else
                f"- {backend} does not match {label} within {settings.max_nodes} nodes")
    paragraphs.append("Against the seed study:\n" + "\n".join(comparison))
    return Section(f"Prediction: the {settings.epoch_rows:,d}-row epoch on up to "
                   f"{settings.max_nodes} nodes", paragraphs, "plots/prediction.png",
                   Table(headers, table_rows))
