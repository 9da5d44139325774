"""A performance model of a data-parallel epoch whose terms are measured separately.

For ``N`` nodes, ``R`` training rows and ``B`` rows per node per step (``S = R / (N B)``
steps)::

    T(N) = g(N) * h * (a * R / N + S * b)  compute: seconds per row on one node, and the
                                           fixed cost of a step (launch, data feed, Spark)
         + S * c * (N - 1)                 coordination: cost per step per extra node
         + S * (sync(N) + x(N))            parameter exchange over the link

Each term comes from its own measurements (:func:`fit_perf_model`), not from one blend:

1. ``a`` and ``b`` from the single-node runs alone: at one node ``T/S = a·B + b``, a line in
   the batch size (a tiny batch measures ``b`` almost alone). With one batch size they are
   one number, ``a + b/B``, and the model predicts at that batch only (said in ``notes``).
   With a :class:`StepCurve` of the engine's step measured apart (``benchmarks/
   step_curve.py``), the time per row is not taken as constant: ``T/S = a·w(B)·B + b``, with
   ``w`` the curve's time per row relative to its reference batch.
2. ``sync(N)`` from the exchange micro-benchmark (:mod:`hepspark.bench.exchange`) of the
   link the runs used (or an assumed :class:`Network`): a ring all-reduce of the ``P``
   parameter bytes, ``overhead + 2(N-1)/N·P·8/bandwidth + 2(N-1)·latency``.
3. ``g`` and ``x`` (optional, :class:`GroupCost`; 1 and 0 without it): what being one
   rank of a synchronous group costs a node, measured in isolation by
   ``benchmarks/colocation.py --horovod`` or ``--torch`` (two pinned ranks of that engine,
   no Spark, no reader): at ``N >= 2`` the compute runs ``g`` times slower (co-location,
   and Horovod's background thread on the core that computes) and the all-reduce inside a
   training step takes ``x`` longer than between idle processes (its threads wait for the
   busy core). Both change with the batch: runs at several batch sizes make a
   :class:`GroupCostCurve`, read at each run's batch.
4. ``h`` (1 without it): on one machine whose cores all belong to nodes (N = 2 on two
   cores), the job's driver has no core of its own and its work (Spark's scheduling,
   BigDL's driver loop, polling) slows the nodes' compute. Measured at N = 1: the same run
   with the driver pinned to the node's core (``Measurement.driver_on_nodes``) over the
   model's time with the driver apart. Applied to the runs whose driver shared the nodes'
   cores; a prediction past one machine, whose driver has its own host, leaves it out.
5. ``c`` from the multi-node runs, after removing 1 to 4: what grows with the number of
   peers and nothing above explains (Spark scheduling of N tasks, and on a single machine
   the N executors sharing its cores).

:func:`held_out_check` fits on part of the runs and predicts the others (another node
count, batch size or link), so a model earns its extrapolation before it extrapolates;
:func:`fit_usl` fits the Universal Scalability Law to the same runs for comparison.

>>> model = fit_perf_model("horovod", [Measurement(1, 100_000, 1000, 2.0),
...                                    Measurement(2, 100_000, 2000, 1.2)], param_bytes=758_404)
>>> round(model.epoch_time_s(rows=10_500_000, nodes=8, batch_per_node=1000), 1)  # doctest: +SKIP
41.3
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Network:
    """A link between nodes: bandwidth (Gbit/s, each direction), per-message latency (s), and
    the software overhead of one exchange (s; Horovod's negotiation and Gloo set-up)."""

    bandwidth_gbps: float = 10.0
    latency_s: float = 50e-6
    overhead_s: float = 0.0
    source: str = "assumed"

    def __post_init__(self) -> None:
        if not self.bandwidth_gbps > 0 or self.latency_s < 0 or self.overhead_s < 0:
            raise ValueError(f"bandwidth must be > 0, latency and overhead >= 0, got {self}")

    def describe(self) -> str:
        text = f"{self.bandwidth_gbps:.3g} Gbit/s, {self.latency_s * 1e6:.4g} µs per message"
        if self.overhead_s:
            text += f", {self.overhead_s * 1e3:.3g} ms per exchange"
        return f"{text} ({self.source})"


LOOPBACK = Network(bandwidth_gbps=40.0, latency_s=20e-6)
# Assumed target networks when no exchange benchmark is given (stated in the report): 10 GbE
# between nodes; BigDL's block-manager fetches cost about a millisecond each on top of the
# wire; torch's DDP runs the same ring all-reduce as Horovod.
DEFAULT_NETWORKS = {"horovod": Network(10.0, 50e-6), "torch": Network(10.0, 50e-6),
                    "bigdl": Network(10.0, 1e-3)}


# Bytes per parameter that one exchange moves. Horovod and torch all-reduce float32
# gradients; BigDL 2.4's AllReduceParameter keeps its weight and gradient blocks
# FP16-compressed (DistriOptimizer's default, compress="fp16"): each node fetches the N-1
# other slices of the weights and of its own slice's gradients, half a float32 ring's bytes.
EXCHANGE_BYTES_PER_PARAMETER = {"horovod": 4, "torch": 4, "bigdl": 2}


def exchanged_bytes(engine: str, parameters: int) -> int:
    """The bytes ``engine`` exchanges per step for a model of ``parameters``."""
    return EXCHANGE_BYTES_PER_PARAMETER.get(engine, 4) * parameters


def ring_allreduce_s(nodes: int, param_bytes: float, network: Network) -> float:
    """Seconds per step to all-reduce ``param_bytes`` over ``nodes`` in a ring."""
    if nodes <= 1:
        return 0.0
    volume = 2.0 * (nodes - 1) / nodes * param_bytes
    return (network.overhead_s + volume * 8.0 / (network.bandwidth_gbps * 1e9)
            + 2.0 * (nodes - 1) * network.latency_s)


def _read_json(path: str, writer: str):
    """``path``'s JSON; a file that is not JSON is one ValueError naming what writes it."""
    with open(path) as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not JSON ({error}); write it with {writer}") from None


_EXCHANGE_WRITER = "'hepspark bench exchange --output FILE'"


def read_exchange(path: str) -> dict:
    """A ``hepspark bench exchange`` file, parsed once; anything else is one ValueError
    saying how to write one."""
    data = _read_json(path, _EXCHANGE_WRITER)
    if not isinstance(data, dict) or not str(data.get("format", "")).startswith(
            "hepspark-exchange/"):
        raise ValueError(f"{path}: not an exchange benchmark file (no 'format': "
                         "'hepspark-exchange/...'); write it with 'hepspark bench exchange'")
    return data


def exchange_engines(data: dict) -> tuple[str, ...]:
    """Whose all-reduce an exchange file (:func:`read_exchange`) timed (version 1:
    Horovod's)."""
    return tuple(data.get("engines", ("horovod",)))


def exchange_networks(data: dict, engine: str = "horovod",
                      path: str = "the exchange file") -> dict[str, Network]:
    """The links of an exchange file (:func:`read_exchange`; ``path`` names it in
    messages), by link name, each with ``engine``'s all-reduce overhead (Horovod's or
    torch's). A file without that engine's all-reduce is a ValueError saying how to
    measure it."""
    out = {}
    for name, link in data.get("links", {}).items():
        # version 1 (Horovod only) kept Horovod's fit on the link itself
        net = link.get(engine, link if engine == "horovod" else {}).get("network")
        if net is None:
            continue
        out[name] = Network(float(net["bandwidth_gbps"]), float(net["latency_s"]),
                            float(net.get("overhead_s", 0.0)),
                            source=f"measured: {name}, {engine} all-reduce")
    if data.get("links") and not out:
        raise ValueError(f"{path}: no {engine} all-reduce measured; measure it with "
                         f"'hepspark bench exchange --engines {engine}'")
    return out


def load_networks(path: str, engine: str = "horovod") -> dict[str, Network]:
    """:func:`exchange_networks` of the exchange file at ``path``."""
    return exchange_networks(read_exchange(path), engine, path)


@dataclass(frozen=True)
class GroupCost:
    """What being one rank of a synchronous group costs a node, measured in isolation (see
    module, term 3): the compute is ``compute_factor`` times slower, and one all-reduce
    inside a training step takes ``allreduce_s`` on the link it was measured over, at
    ``batch_size`` rows per rank per step (None: not recorded, taken to hold at every batch).
    """

    compute_factor: float
    allreduce_s: float
    source: str = "measured"
    engine: str = "horovod"  # whose ranks were measured
    batch_size: int | None = None
    steps: int | None = None  # timed steps per phase (None: not recorded)

    def __post_init__(self) -> None:
        if not self.compute_factor > 0 or self.allreduce_s < 0:
            raise ValueError(f"compute_factor must be > 0 and allreduce_s >= 0, got {self}")

    def at(self, batch_per_node: float) -> GroupCost:
        """The cost at ``batch_per_node``: one measured batch holds at every batch."""
        return self

    def extra_exchange_s(self, param_bytes: float, measured_network: Network) -> float:
        """x: the in-training all-reduce minus the model's idle one at 2 nodes (>= 0)."""
        return max(self.allreduce_s - ring_allreduce_s(2, param_bytes, measured_network), 0.0)

    def describe(self) -> str:
        batch = f" at {self.batch_size} rows per rank" if self.batch_size else ""
        return (f"compute x{self.compute_factor:.3f}, all-reduce {self.allreduce_s * 1e3:.2f} ms "
                f"per step in training{batch} ({self.source})")


@dataclass(frozen=True)
class GroupCostCurve:
    """An engine's :class:`GroupCost` measured at several batch sizes (one co-location run
    each). Between two measured batches ``g`` and the in-training all-reduce are interpolated
    linearly in log(batch); past either end the nearest end's hold. The compute's slow-down
    in a group is not one number: a larger step leaves the cache and shares the machine's
    memory bandwidth with the other rank, a smaller one meets Horovod's background cycle
    more often per row.

    >>> curve = GroupCostCurve((GroupCost(1.02, 8e-3, batch_size=1000),
    ...                         GroupCost(1.10, 9e-3, batch_size=4000)))
    >>> round(curve.at(2000).compute_factor, 3)
    1.06
    """

    points: tuple[GroupCost, ...]

    def __post_init__(self) -> None:
        batches = [p.batch_size for p in self.points]
        if (len(self.points) < 2 or None in batches or batches != sorted(set(batches))
                or len({p.engine for p in self.points}) != 1):
            raise ValueError("a group cost curve needs two or more co-location runs of one "
                             "engine at increasing, recorded batch sizes; got "
                             + ", ".join(f"{p.engine} at {p.batch_size}" for p in self.points))

    @property
    def engine(self) -> str:
        return self.points[0].engine

    @property
    def source(self) -> str:
        return ", ".join(p.source for p in self.points)

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        return tuple(p.batch_size for p in self.points)  # type: ignore[misc]

    def at(self, batch_per_node: float) -> GroupCost:
        logs = np.log(np.array(self.batch_sizes, float))
        where = math.log(max(batch_per_node, 1.0))

        def interp(values: list[float]) -> float:
            return float(np.interp(where, logs, values))  # np.interp holds the ends

        return GroupCost(interp([p.compute_factor for p in self.points]),
                         interp([p.allreduce_s for p in self.points]),
                         source=f"interpolated at {batch_per_node:g} rows per rank",
                         engine=self.engine, batch_size=round(batch_per_node))

    def describe(self) -> str:
        return "; ".join(p.describe() for p in self.points)


GroupTerm = GroupCost | GroupCostCurve  # one co-location run, or one per batch size


def mean_group_cost(runs: list[GroupCost]) -> GroupCost:
    """Repeated co-location runs of one engine at one batch as one cost: the mean of their
    g and of their all-reduce, each run weighted by the steps it timed (equal weights where
    a run did not record them). One run's g moves by several per cent between runs on a VM;
    the source names every run and the range of g."""
    if len(runs) == 1:
        return runs[0]
    factors = [r.compute_factor for r in runs]
    steps = [r.steps for r in runs]
    weights = None if None in steps else steps
    return GroupCost(float(np.average(factors, weights=weights)),
                     float(np.average([r.allreduce_s for r in runs], weights=weights)),
                     source=f"mean of {len(runs)} runs"
                     + (", by steps" if weights else "")
                     + f", g {min(factors):.3f}..{max(factors):.3f}: "
                     + ", ".join(r.source for r in runs),
                     engine=runs[0].engine, batch_size=runs[0].batch_size)


def group_term(costs: list[GroupCost]) -> GroupTerm:
    """One engine's co-location runs as the model's group term: the runs at one batch size
    averaged (:func:`mean_group_cost`), and several batch sizes made a
    :class:`GroupCostCurve`. A run that did not record its batch (an older file) beside runs
    that did is refused: it cannot be placed on the curve."""
    batches = {c.batch_size for c in costs}
    if len(batches) > 1 and None in batches:
        raise ValueError(f"--colocation: {len(costs)} files measure {costs[0].engine}'s ranks, "
                         "some without a batch size (an older colocation.py), some at "
                         f"{sorted(b for b in batches if b is not None)}; measure them again, or "
                         "give one per engine (" + ", ".join(c.source for c in costs) + ")")
    means = [mean_group_cost([c for c in costs if c.batch_size == b])
             for b in sorted(batches, key=lambda b: b or 0)]
    return means[0] if len(means) == 1 else GroupCostCurve(tuple(means))


GROUP_ENGINES = ("horovod", "torch")  # the groups benchmarks/colocation.py measures


def load_group_cost(path: str) -> GroupCost:
    """The :class:`GroupCost` of a ``benchmarks/colocation.py --horovod|--torch --out FILE``
    run: the idle group's step over one process alone, and what the all-reduce adds, at the
    run's batch size. Its ``engine`` says whose ranks were measured."""
    data = _read_json(path, "'python benchmarks/colocation.py --horovod|--torch --out FILE'")
    engines = [e for e in GROUP_ENGINES if isinstance(data, dict) and f"{e}_idle" in data]
    try:
        engine, = engines
        idle, alone = data[f"{engine}_idle"]["mean_ms"], data["alone"]["mean_ms"]
        allreduce_ms = data[f"{engine}_allreduce_ms"]
        batch = int(data["batch_size"]) if "batch_size" in data else None
        steps = int(data["steps"]) if "steps" in data else None
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: not a co-location run with a group's phases; write it with "
                         "'python benchmarks/colocation.py --horovod|--torch --out FILE'"
                         ) from None
    return GroupCost(idle / alone, allreduce_ms / 1e3, source=f"measured: {path}",
                     engine=engine, batch_size=batch, steps=steps)


@dataclass(frozen=True)
class StepCurve:
    """An engine's step time against the rows per step, one pinned process measured apart
    from Spark and the reader (``benchmarks/step_curve.py``). The model's per-row cost ``a``
    holds at ``reference_batch`` and scales with the curve's time per row elsewhere, since the
    time per row is not a constant (activations leave the cache; larger products run closer
    to peak).

    The time per row is taken after the step's own fixed cost (:attr:`fixed_step_s`, the
    launch of one compiled step), which the model's per-step ``b`` already holds: counting
    it in the row weight too would charge a small batch twice (session 14's kept runs: +11 %
    at 500 rows for Horovod, +14..19 % for torch).

    >>> curve = StepCurve((500, 1000, 4000), (0.006, 0.011, 0.048))
    >>> round(curve.fixed_step_s * 1e3, 3)  # the line through the two smallest batches
    1.0
    >>> round(curve.row_weight(4000), 3)  # a row costs 17.5 % more at 4000 rows per step
    1.175
    """

    batch_sizes: tuple[int, ...]
    step_s: tuple[float, ...]
    engine: str = "horovod"
    source: str = "measured"

    def __post_init__(self) -> None:
        if (len(self.batch_sizes) < 2 or len(self.step_s) != len(self.batch_sizes)
                or list(self.batch_sizes) != sorted(set(self.batch_sizes))
                or min(self.batch_sizes) < 1 or not all(t > 0 for t in self.step_s)):
            raise ValueError("a step curve needs two or more increasing batch sizes >= 1, each "
                             f"with a step time > 0; got {self.batch_sizes}, {self.step_s}")

    @property
    def reference_batch(self) -> int:
        """The measured batch size closest to 1000 rows (where ``a`` is quoted)."""
        return min(self.batch_sizes, key=lambda b: (abs(math.log(b / 1000)), b))

    @property
    def fixed_step_s(self) -> float:
        """The step's cost at zero rows: the line through the two smallest batches, at 0
        (0 where that line falls or crosses below 0; a tiny measured batch makes it almost
        that batch's step time)."""
        (b0, b1), (t0, t1) = self.batch_sizes[:2], self.step_s[:2]
        slope = (t1 - t0) / (b1 - b0)
        return max(t0 - slope * b0, 0.0) if slope > 0 else 0.0

    def step_time_s(self, batch: float) -> float:
        """The step time at ``batch`` rows, linear between measured batch sizes; past either
        end the time per row of the nearest end (after the fixed cost) holds."""
        sizes, times = self.batch_sizes, self.step_s
        if batch <= sizes[0] or batch >= sizes[-1]:
            end = 0 if batch <= sizes[0] else -1
            return self.fixed_step_s + (times[end] - self.fixed_step_s) * batch / sizes[end]
        return float(np.interp(batch, sizes, times))

    def row_weight(self, batch: float) -> float:
        """The time per row at ``batch`` over the time per row at the reference batch, both
        after the step's fixed cost."""
        ref, fixed = self.reference_batch, self.fixed_step_s
        return (((self.step_time_s(batch) - fixed) / batch)
                / ((self.step_time_s(ref) - fixed) / ref))

    def covers(self, batch: float) -> bool:
        return self.batch_sizes[0] <= batch <= self.batch_sizes[-1]

    def describe(self) -> str:
        weights = ", ".join(f"x{self.row_weight(b):.2f} at {b}" for b in self.batch_sizes)
        return (f"time per row scaled by the step curve ({weights}; 1 at "
                f"{self.reference_batch}; after its {self.fixed_step_s * 1e3:.2f} ms fixed per "
                f"step; {self.source})")


STEP_CURVE_FORMAT = "hepspark-step-curve/"


def load_step_curve(path: str) -> StepCurve:
    """The :class:`StepCurve` of a ``benchmarks/step_curve.py --horovod|--torch --out FILE``
    run (mean step time per batch size)."""
    writer = "'python benchmarks/step_curve.py --horovod|--torch --out FILE'"
    data = _read_json(path, writer)
    try:
        if not str(data["format"]).startswith(STEP_CURVE_FORMAT):
            raise KeyError("format")
        points = sorted(data["points"], key=lambda p: p["batch_size"])
        return StepCurve(tuple(int(p["batch_size"]) for p in points),
                         tuple(float(p["mean_ms"]) / 1e3 for p in points),
                         engine=str(data["engine"]), source=f"measured: {path}")
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: not a step curve ({error}); write it with {writer}"
                         ) from None


PROBE_BATCH = 32  # rows per node per step; see Measurement.probe


@dataclass(frozen=True)
class Measurement:
    """One measured epoch configuration: nodes, training rows, global batch, epoch time, and
    the link it ran over (None: the model's ``measured_network``). ``spread``: how much the
    run's own epochs differ (interquartile range over median; None if unknown), the noise a
    prediction of it cannot beat."""

    nodes: int
    rows: int
    global_batch: int
    epoch_time_s: float
    label: str = ""
    network: Network | None = None
    spread: float | None = None
    driver_on_nodes: bool = False  # the job's driver had no core of its own (see module)

    @property
    def probe(self) -> bool:
        """A tiny batch (<= PROBE_BATCH rows per node), run to measure the per-step and
        per-node costs almost without compute, not a configuration anyone trains at: the
        held-out check always fits on it and never predicts it."""
        return self.batch_per_node <= PROBE_BATCH

    @property
    def steps(self) -> float:
        return self.rows / self.global_batch

    @property
    def batch_per_node(self) -> int:
        return round(self.global_batch / self.nodes)


@dataclass(frozen=True)
class PerfModel:
    """``a`` (row_time_s), ``b`` (step_time_s), ``c`` (peer_step_time_s); see module."""

    backend: str
    row_time_s: float
    step_time_s: float
    peer_step_time_s: float
    param_bytes: int
    measured_network: Network
    network: Network
    batch_per_node: int | None  # set when a and b are folded (one batch per node measured)
    notes: tuple[str, ...] = field(default=())
    measurements: tuple[Measurement, ...] = field(default=())
    group: GroupTerm | None = None
    curve: StepCurve | None = None
    driver_factor: float = 1.0  # h: the compute's slow-down when the driver shares its cores
    # how h was found: "measured" (N = 1 with the driver on the node's core and apart),
    # "in a, b" (it shared the cores at every N), "unknown" (at N >= 2 only: c holds it),
    # "apart" (the driver never shared the nodes' cores)
    driver_placement: str = "apart"

    def row_weight(self, batch_per_node: float) -> float:
        """How much a row costs at this batch against ``a`` (1 without a step curve)."""
        return self.curve.row_weight(batch_per_node) if self.curve is not None else 1.0

    def _time(self, rows: float, nodes: int, batch_per_node: float, network: Network,
              driver_on_nodes: bool = False) -> float:
        steps = rows / (batch_per_node * nodes)
        sync = ring_allreduce_s(nodes, self.param_bytes, network)
        compute = (self.row_time_s * self.row_weight(batch_per_node) * rows / nodes
                   + steps * self.step_time_s)
        if driver_on_nodes:
            compute *= self.driver_factor
        if self.group is not None and nodes > 1:
            group = self.group.at(batch_per_node)
            compute *= group.compute_factor
            sync += group.extra_exchange_s(self.param_bytes, self.measured_network)
        return compute + steps * (self.peer_step_time_s * (nodes - 1) + sync)

    def epoch_time_s(self, rows: int, nodes: int, batch_per_node: int,
                     network: Network | None = None) -> float:
        """Predicted epoch seconds; the global batch is ``nodes x batch_per_node``."""
        if self.batch_per_node is not None and batch_per_node != self.batch_per_node:
            raise ValueError(f"the {self.backend} model was fitted at {self.batch_per_node} rows "
                             f"per node per step only; cannot predict batch {batch_per_node}")
        return self._time(rows, nodes, batch_per_node, network or self.network)

    def fitted_time_s(self, m: Measurement) -> float:
        """The model's epoch time for a measured configuration, on the link it used."""
        if self.batch_per_node is not None and m.batch_per_node != self.batch_per_node:
            raise ValueError(f"the {self.backend} model was fitted at {self.batch_per_node} rows "
                             f"per node per step only; cannot predict batch {m.batch_per_node}")
        return self._time(m.rows, m.nodes, m.global_batch / m.nodes,
                          m.network or self.measured_network, m.driver_on_nodes)

    def efficiency(self, rows: int, nodes: int, batch_per_node: int) -> float:
        """Parallel efficiency T(1) / (N T(N))."""
        one = self.epoch_time_s(rows, 1, batch_per_node)
        return one / (nodes * self.epoch_time_s(rows, nodes, batch_per_node))

    def describe(self) -> str:
        if self.batch_per_node is not None:
            compute = (f"{self.row_time_s * 1e6:.2f} µs per row incl. the step cost at "
                       f"{self.batch_per_node} rows/node/step")
        else:
            compute = (f"{self.row_time_s * 1e6:.2f} µs per row + {self.step_time_s * 1e3:.2f} ms "
                       "per step")
            if self.curve is not None:
                compute = (f"{self.row_time_s * 1e6:.2f} µs per row at "
                           f"{self.curve.reference_batch} rows/node/step, "
                           f"{self.curve.describe()}, + {self.step_time_s * 1e3:.2f} ms per step")
        group = f"; in a group: {self.group.describe()}" if self.group else ""
        if self.driver_factor != 1.0:
            group += f"; driver on the nodes' cores: compute x{self.driver_factor:.3f}"
        return (f"{compute} + {self.peer_step_time_s * 1e3:.3f} ms per step per extra node "
                f"+ ring exchange of {self.param_bytes / 1e6:.2f} MB over {self.network.describe()}"
                f"{group}")


def _nnls_relative(columns: dict[str, np.ndarray], target: np.ndarray,
                   scale: np.ndarray) -> dict[str, float]:
    """Non-negative least squares of ``target ≈ Σ coef·column``, each row divided by
    ``scale`` (the epoch time) so a long epoch does not drown a short one."""
    from scipy.optimize import nnls

    if not columns:
        return {}
    x = np.column_stack(list(columns.values())) / scale[:, None]
    coef, _ = nnls(x, target / scale)
    return {k: float(v) for k, v in zip(columns, coef)}


def fit_perf_model(
    backend: str,
    measurements: list[Measurement],
    param_bytes: int,
    measured_network: Network = LOOPBACK,
    network: Network | None = None,
    group: GroupTerm | None = None,
    curve: StepCurve | None = None,
) -> PerfModel:
    """Fit the terms one after another (see module): ``a``, ``b`` on the single-node runs
    (``a`` per row at the curve's reference batch, scaled by ``curve`` at the others),
    the exchange from the link, ``g`` and ``x`` from ``group`` (measured apart), ``h`` from
    the single-node runs whose driver sat on the node's core (``driver_on_nodes``) beside
    those with it apart, ``c`` on what the multi-node runs leave."""
    if not measurements:
        raise ValueError(f"no measured runs for backend {backend!r}")
    notes: list[str] = []
    ms = list(measurements)
    t = np.array([m.epoch_time_s for m in ms], float)
    weight = np.array([1.0 if curve is None else curve.row_weight(m.batch_per_node)
                       for m in ms])
    rows_per_node = np.array([m.rows / m.nodes for m in ms], float) * weight
    steps = np.array([m.steps for m in ms], float)
    peers = np.array([m.nodes - 1 for m in ms], float)
    sync = np.array([ring_allreduce_s(m.nodes, param_bytes, m.network or measured_network)
                     for m in ms])
    single = peers == 0
    factor = np.ones(len(ms))
    if group is not None:  # the group's terms apply from 2 nodes on, at each run's batch
        for i in np.flatnonzero(~single):
            cost = group.at(ms[i].batch_per_node)
            factor[i] = cost.compute_factor
            sync[i] += cost.extra_exchange_s(param_bytes, measured_network)
    batch_per_node = None
    batches = {m.batch_per_node for m in ms}
    fold = len(batches) == 1 or len({m.batch_per_node for m in ms if m.nodes == 1}) == 1
    if fold:  # S = (R/N) / B: a and b are one number
        batch_per_node = (batches if len(batches) == 1 else
                          {m.batch_per_node for m in ms if m.nodes == 1}).pop()
        notes.append(f"single-node runs at {batch_per_node} rows per node per step only: the "
                     "per-step cost is folded into the per-row time (measure a second batch "
                     "size, or a tiny one, to split them)")
        keep = np.array([m.batch_per_node == batch_per_node for m in ms])
        if not keep.all():
            notes.append(f"runs at other batch sizes not used: "
                         f"{sorted(batches - {batch_per_node})}")
            single &= keep
    if curve is not None and not all(curve.covers(m.batch_per_node) for m in ms):
        notes.append(f"batch sizes outside the step curve's {curve.batch_sizes[0]}.."
                     f"{curve.batch_sizes[-1]} rows: its nearest end's time per row taken")
    compute = {"a": rows_per_node} if fold else {"a": rows_per_node, "b": steps}
    shared = np.array([m.driver_on_nodes for m in ms])
    alone = single & ~shared if (single & ~shared).any() else single
    if single.any():
        ab = _nnls_relative({k: v[alone] for k, v in compute.items()}, t[alone], t[alone])
    else:
        notes.append("no single-node run: the per-row and per-step costs are fitted together "
                     "with the per-node cost on the multi-node runs")
        ab = {}
    multi = ~single & (peers > 0)
    if fold:
        multi &= np.array([m.batch_per_node == batch_per_node for m in ms])
    driver_factor, placement = 1.0, "apart"
    paired = single & shared & ~alone
    if ab and paired.any():  # N = 1 with the driver on the node's core, beside it apart
        own = rows_per_node * ab["a"] + steps * ab.get("b", 0.0)
        driver_factor, placement = float(np.median(t[paired] / own[paired])), "measured"
        factor[shared & ~single] *= driver_factor
    elif (single & shared).any():
        placement = "in a, b"
    elif (shared & multi).any():
        placement = "unknown"
        notes.append("the driver shared the nodes' cores in multi-node runs but not at N = 1, "
                     "and what that costs is unknown (run N = 1 again with --driver-cpus on "
                     "the node's CPUs): c holds it")
    if not multi.any():
        notes.append("no multi-node run: the coordination cost per extra node is unknown and "
                     "taken as 0 (only the exchange grows with N)")
        c = 0.0
    elif ab:
        rest = t - factor * (rows_per_node * ab["a"] + steps * ab.get("b", 0.0)) - steps * sync
        c = _nnls_relative({"c": (steps * peers)[multi]}, rest[multi], t[multi])["c"]
    else:
        joint = _nnls_relative({**{k: (v * factor)[multi] for k, v in compute.items()},
                                "c": (steps * peers)[multi]}, (t - steps * sync)[multi], t[multi])
        ab, c = joint, joint["c"]
    return PerfModel(
        backend=backend, row_time_s=ab.get("a", 0.0), step_time_s=ab.get("b", 0.0),
        peer_step_time_s=c, param_bytes=int(param_bytes), measured_network=measured_network,
        network=network or DEFAULT_NETWORKS.get(backend, Network()),
        batch_per_node=batch_per_node, notes=tuple(notes), measurements=tuple(measurements),
        group=group, curve=curve, driver_factor=driver_factor, driver_placement=placement,
    )


@dataclass(frozen=True)
class HeldOut:
    """One run predicted by a model fitted without every run sharing its ``dimension``
    value: ``predicted_s`` is None when the model could not predict it (and ``why``)."""

    dimension: str                   # "nodes", "batch per node", "link" or "epoch rows"
    held_out: str                    # the value held out, e.g. "N=4"
    measurement: Measurement
    predicted_s: float | None
    why: str = ""

    @property
    def error(self) -> float | None:
        if self.predicted_s is None:
            return None
        return self.predicted_s / self.measurement.epoch_time_s - 1.0


def held_out_check(backend: str, measurements: list[Measurement], param_bytes: int,
                   measured_network: Network = LOOPBACK, group: GroupTerm | None = None,
                   curve: StepCurve | None = None) -> list[HeldOut]:
    """For each dimension that varies (nodes, batch per node, link, rows per epoch), fit on
    the runs without its extreme value (the largest N, batch and epoch: the direction a
    prediction extrapolates to; every link but ``measured_network``'s) and predict the
    held-out runs. Probes (tiny batches, see
    :attr:`Measurement.probe`) are fitted on, never held out: at N = 2 one measures the
    per-node cost c apart, as the tiny-batch probe of BigDL does."""
    def link(m: Measurement) -> float:
        return (m.network or measured_network).bandwidth_gbps

    dims = {
        "nodes": (lambda m: m.nodes, lambda v: {max(v)}, lambda v: f"N={v}"),
        "batch per node": (lambda m: m.batch_per_node, lambda v: {max(v)}, lambda v: f"B={v}"),
        # every link but the model's own (the runs over a slower link, a sweep's --link),
        # predicted from runs over that one alone: the network term carries the difference;
        # without runs over the model's link, the slowest
        "link": (link, lambda v: (v - {measured_network.bandwidth_gbps}
                                  if measured_network.bandwidth_gbps in v else {min(v)}),
                 lambda v: f"{v:.3g} Gbit/s"),
        # a full-size epoch (10.5M HIGGS rows) predicted from the small sample's runs
        "epoch rows": (lambda m: m.rows, lambda v: {max(v)}, lambda v: f"{v:,d} rows"),
    }
    out = []
    for dimension, (key, pick, name) in dims.items():
        values = {key(m) for m in measurements if not m.probe}
        if len(values) < 2:
            continue
        held = pick(values)
        # probes measure a term apart (a tiny batch: the per-step and per-node costs almost
        # without compute): never predicted, always fitted on
        train = [m for m in measurements if key(m) not in held or m.probe]
        test = [m for m in measurements if key(m) in held and not m.probe]
        model = fit_perf_model(backend, train, param_bytes, measured_network, group=group,
                               curve=curve)
        caveat = "; ".join(n for n in model.notes if "no multi-node" in n)
        for m in test:
            try:
                out.append(HeldOut(dimension, name(key(m)), m, model.fitted_time_s(m), caveat))
            except ValueError as error:
                out.append(HeldOut(dimension, name(key(m)), m, None, str(error)))
    return out


@dataclass(frozen=True)
class UslFit:
    """Universal Scalability Law: X(N) = X(1)·N / (1 + α(N−1) + βN(N−1)), X the rows/s."""

    alpha: float
    beta: float
    throughput_1: float
    notes: tuple[str, ...] = ()

    def speedup(self, nodes: float) -> float:
        return nodes / (1.0 + self.alpha * (nodes - 1) + self.beta * nodes * (nodes - 1))

    def throughput(self, nodes: float) -> float:
        return self.throughput_1 * self.speedup(nodes)

    @property
    def peak_nodes(self) -> float:
        """The N of maximum throughput, sqrt((1−α)/β) (infinite when β = 0)."""
        return math.sqrt(max(1.0 - self.alpha, 0.0) / self.beta) if self.beta > 0 else math.inf


def fit_usl(points: list[tuple[int, float]]) -> UslFit:
    """Fit α, β ≥ 0 to (nodes, throughput) points; N = 1 must be among them.

    ``N / C(N) − 1 = α(N−1) + βN(N−1)`` with ``C = X(N)/X(1)`` is linear in α and β. With
    one multi-node count only, α and β cannot both be known: β is taken as 0 (said in notes).
    """
    from scipy.optimize import nnls

    ones = [x for n, x in points if n == 1]
    if not ones:
        raise ValueError("the USL needs a single-node throughput (a run at N=1)")
    x1 = float(np.mean(ones))
    multi = [(n, x) for n, x in points if n > 1]
    notes = []
    if not multi:
        return UslFit(0.0, 0.0, x1, ("no multi-node run: α = β = 0",))
    n = np.array([p[0] for p in multi], float)
    y = n / (np.array([p[1] for p in multi]) / x1) - 1.0
    if len(set(n)) == 1:
        notes.append("one multi-node count only: β (crosstalk) taken as 0, α from it")
        alpha = float(max(np.mean(y / (n - 1)), 0.0))
        return UslFit(alpha, 0.0, x1, tuple(notes))
    coef, _ = nnls(np.column_stack([n - 1, n * (n - 1)]), y)
    return UslFit(float(coef[0]), float(coef[1]), x1, tuple(notes))


def gain_per_added_node(times: list[float]) -> list[float]:
    """``T(N-1)/T(N) - 1`` for N = 2.., the seed's "30-40% gain per added node"."""
    return [times[i - 1] / times[i] - 1.0 for i in range(1, len(times))]


