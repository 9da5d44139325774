"""A performance model of a data-parallel epoch, fitted to measured runs and extrapolated.

For ``N`` nodes, ``R`` training rows and a global batch ``G`` (``S = R / G`` steps)::

    T(N) = a * R / N                   compute: seconds per row on one node
         + S * b                       fixed cost of a step (launch, data feed, Spark tasks)
         + S * c * (N - 1)             coordination: effective cost per step per extra peer
         + S * sync(N)                 parameter exchange over the network

``sync(N)`` is the ring all-reduce of the model's parameter bytes ``P``: every node sends
and receives ``2 (N-1)/N * P`` bytes in ``2 (N-1)`` messages,
``sync = 2 (N-1)/N * P * 8 / bandwidth + 2 (N-1) * latency``. Horovod uses exactly this
(Gloo ring). BigDL's parameter sync has the same volume and message count (each node owns
``1/N`` of the parameters: the gradients are reduce-scattered and the weights gathered back
through Spark's block manager), with a per-fetch latency that is larger than the wire's.

``a``, ``b`` and ``c`` are fitted per backend by non-negative least squares on the measured
epochs after removing the modelled exchange on the network they were measured on (loopback
by default). ``c`` absorbs what grows with the number of peers and the network model does
not explain (Gloo/Horovod software per hop, stragglers, Spark scheduling of N tasks, and
on a single machine the N executors sharing its cores). When every run used the same batch
per executor, ``R/N`` and ``S`` are proportional and ``a`` and ``b`` cannot be told apart:
the fit then reports their sum per row (``a + b/B``) and predicts at that batch only.

>>> model = fit_perf_model("horovod", [Measurement(1, 100_000, 1000, 2.0),
...                                    Measurement(2, 100_000, 2000, 1.2)], param_bytes=758_404)
>>> round(model.epoch_time_s(rows=10_500_000, nodes=8, batch_per_node=1000), 1)  # doctest: +SKIP
41.3
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Network:
    """Bandwidth (Gbit/s, each direction) and per-message latency (s) between nodes."""

    bandwidth_gbps: float = 10.0
    latency_s: float = 50e-6

    def __post_init__(self) -> None:
        if not self.bandwidth_gbps > 0 or self.latency_s < 0:
            raise ValueError(f"bandwidth must be > 0 and latency >= 0, got {self}")

    def describe(self) -> str:
        return f"{self.bandwidth_gbps:g} Gbit/s, {self.latency_s * 1e6:g} µs per message"


LOOPBACK = Network(bandwidth_gbps=40.0, latency_s=20e-6)
# Assumed target networks (stated in the report): 10 GbE between nodes; BigDL's
# block-manager fetches cost about a millisecond each on top of the wire.
DEFAULT_NETWORKS = {"horovod": Network(10.0, 50e-6), "torch": Network(10.0, 50e-6),
                    "bigdl": Network(10.0, 1e-3)}  # torch: DDP's ring all-reduce, as Horovod


def ring_allreduce_s(nodes: int, param_bytes: float, network: Network) -> float:
    """Seconds per step to all-reduce ``param_bytes`` over ``nodes`` in a ring."""
    if nodes <= 1:
        return 0.0
    volume = 2.0 * (nodes - 1) / nodes * param_bytes
    return volume * 8.0 / (network.bandwidth_gbps * 1e9) + 2.0 * (nodes - 1) * network.latency_s


@dataclass(frozen=True)
class Measurement:
    """One measured epoch configuration: nodes, training rows, global batch, epoch time."""

    nodes: int
    rows: int
    global_batch: int
    epoch_time_s: float
    label: str = ""

    @property
    def steps(self) -> float:
        return self.rows / self.global_batch


@dataclass(frozen=True)
class PerfModel:
    """Fitted ``a`` (row_time_s), ``b`` (step_time_s), ``c`` (peer_step_time_s); see module."""

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

    def epoch_time_s(self, rows: int, nodes: int, batch_per_node: int,
                     network: Network | None = None) -> float:
        """Predicted epoch seconds; the global batch is ``nodes x batch_per_node``."""
        if self.batch_per_node is not None and batch_per_node != self.batch_per_node:
            raise ValueError(f"the {self.backend} model was fitted at {self.batch_per_node} rows "
                             f"per node per step only; cannot predict batch {batch_per_node}")
        steps = rows / (batch_per_node * nodes)
        sync = ring_allreduce_s(nodes, self.param_bytes, network or self.network)
        return (self.row_time_s * rows / nodes
                + steps * (self.step_time_s + self.peer_step_time_s * (nodes - 1) + sync))

    def fitted_time_s(self, m: Measurement) -> float:
        """The model's epoch time for a measured configuration, on the measured network."""
        sync = ring_allreduce_s(m.nodes, self.param_bytes, self.measured_network)
        return (self.row_time_s * m.rows / m.nodes
                + m.steps * (self.step_time_s + self.peer_step_time_s * (m.nodes - 1) + sync))

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
        return (f"{compute} + {self.peer_step_time_s * 1e3:.3f} ms per step per extra node "
                f"+ ring exchange of {self.param_bytes / 1e6:.2f} MB over {self.network.describe()}")


def fit_perf_model(
    backend: str,
    measurements: list[Measurement],
    param_bytes: int,
    measured_network: Network = LOOPBACK,
    network: Network | None = None,
) -> PerfModel:
    """Fit ``a``, ``b``, ``c`` to ``measurements`` (non-negative least squares, relative).

    Each point is weighted by 1/T so a long epoch does not drown a short one.
    """
    from scipy.optimize import nnls

    if not measurements:
        raise ValueError(f"no measured runs for backend {backend!r}")
    notes: list[str] = []
    t = np.array([m.epoch_time_s for m in measurements], float)
    rows_per_node = np.array([m.rows / m.nodes for m in measurements], float)
    steps = np.array([m.steps for m in measurements], float)
    peers = np.array([m.nodes - 1 for m in measurements], float)
    sync = np.array([ring_allreduce_s(m.nodes, param_bytes, measured_network)
                     for m in measurements])
    columns = {"a": rows_per_node, "b": steps, "c": steps * peers}
    batch_per_node = None
    per_node = {round(m.global_batch / m.nodes) for m in measurements}
    if len(per_node) == 1:  # S = (R/N) / B: a and b are one number
        batch_per_node = per_node.pop()
        del columns["b"]
        notes.append(f"all runs used {batch_per_node} rows per node per step: the per-step cost "
                     "is folded into the per-row time (measure a second batch size to split them)")
    if not np.any(peers):
        del columns["c"]
        notes.append("no multi-node run: the coordination cost per extra node is unknown and "
                     "taken as 0 (only the network term grows with N)")
    x = np.column_stack(list(columns.values())) / t[:, None]
    y = (t - steps * sync) / t
    coef, _ = nnls(x, y)
    values = dict(zip(columns, coef))
    a, b, c = values.get("a", 0.0), values.get("b", 0.0), values.get("c", 0.0)
    return PerfModel(
        backend=backend, row_time_s=float(a), step_time_s=float(b), peer_step_time_s=float(c),
        param_bytes=int(param_bytes), measured_network=measured_network,
        network=network or DEFAULT_NETWORKS.get(backend, Network()),
        batch_per_node=batch_per_node, notes=tuple(notes), measurements=tuple(measurements),
    )


def gain_per_added_node(times: list[float]) -> list[float]:
    """``T(N-1)/T(N) - 1`` for N = 2.., the seed's "30-40% gain per added node"."""
    return [times[i - 1] / times[i] - 1.0 for i in range(1, len(times))]
