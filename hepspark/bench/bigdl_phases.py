"""Where a BigDL iteration's time goes, read from its driver log.

BigDL 2.4's ``DistriOptimizer`` logs, at DEBUG, a "Metrics Summary" after every iteration:
the averages over the executors of the phases each runs (fetching the weights, computing,
putting the gradient, aggregating its partition of the gradients). Run a job whose driver
adds ``hepspark/conf/log4j2-bigdl-phases.properties`` to hepspark's quiet log4j2
configuration (:data:`DRIVER_OPTION`: ``spark-submit --driver-java-options OPTION``, or
through ``hepspark bench scaling --submit-arg``), then::

    hepspark bench bigdl-phases ~/.cache/hepspark/scaling/EXP/bigdl-adam-x2-b1000.log

:func:`summarize` pairs each iteration's wall time ("Trained N records in T seconds") with
the summary that follows it, leaves the first third out (warm-up, sample caching), and
gives medians per phase and what the executors' phases leave of the iteration: the
driver's loop (two Spark jobs per iteration, scheduling, the driver's own work). The DEBUG
lines cost the driver time too, so that remainder is an upper bound.
"""
from __future__ import annotations

import os
import re
import statistics
from dataclasses import dataclass

from hepspark.logs import QUIET_LOG4J2

LOG4J2 = os.path.join(os.path.dirname(QUIET_LOG4J2), "log4j2-bigdl-phases.properties")
# the driver's Java option: log4j2 merges the quiet configuration and BigDL's DEBUG logger
DRIVER_OPTION = f"-Dlog4j2.configurationFile=file:{QUIET_LOG4J2},file:{LOG4J2}"
# the executors' phases of one iteration, as BigDL 2.4 names them (its typo kept)
PHASES = {"get weights average": "fetch the weights",
          "computing time average": "compute (forward + backward)",
          "put gradient": "put the gradient",
          "aggregrateGradientParition average executor": "aggregate a gradient partition"}
_TRAINED = re.compile(r"\[Iteration (\d+)\].*Trained ([0-9.]+) records in ([0-9.Ee-]+) seconds")
_METRIC = re.compile(r"^(.+?) : ([0-9.Ee-]+) s\s*$")


@dataclass(frozen=True)
class BigDLPhases:
    iterations: int  # summarized, after the skipped warm-up
    skipped: int
    records_per_iteration: float
    iteration_ms: float  # median wall time of an iteration
    phases_ms: dict[str, float]  # median per phase (PHASES present in the log)

    @property
    def outside_ms(self) -> float:
        """The median iteration minus the executors' phases: the driver's loop."""
        return self.iteration_ms - sum(self.phases_ms.values())


def summarize(path: str, skip_fraction: float = 1 / 3) -> BigDLPhases:
    """The per-iteration breakdown of a BigDL driver log (see module); a log without
    DistriOptimizer's metrics is a ValueError saying how to make one."""
    iterations: list[dict] = []
    with open(path, errors="replace") as handle:
        for line in handle:
            trained = _TRAINED.search(line)
            if trained:
                iterations.append({"records": float(trained.group(2)),
                                   "wall_ms": float(trained.group(3)) * 1e3, "phases": {}})
                continue
            metric = _METRIC.match(line.strip())
            if metric and iterations and metric.group(1) in PHASES:
                iterations[-1]["phases"][metric.group(1)] = float(metric.group(2)) * 1e3
    measured = [i for i in iterations if i["phases"]]
    if not measured:
        raise ValueError(f"{path}: no BigDL iteration with its metrics summary; run the job "
                         f"with the driver option {DRIVER_OPTION}")
    skipped = int(len(measured) * skip_fraction)
    kept = measured[skipped:]
    phases = {name: statistics.median(i["phases"][name] for i in kept)
              for name in PHASES if all(name in i["phases"] for i in kept)}
    return BigDLPhases(len(kept), skipped, statistics.median(i["records"] for i in kept),
                       statistics.median(i["wall_ms"] for i in kept), phases)


def format_summary(summary: BigDLPhases) -> str:
    lines = [f"BigDL: {summary.iterations} iterations of {summary.records_per_iteration:,.0f} "
             f"records (first {summary.skipped} skipped), medians in ms",
             f"{'iteration (wall, on the driver)':44s} {summary.iteration_ms:8.2f}"]
    lines += [f"{'  executors: ' + PHASES[name]:44s} {ms:8.2f}"
              for name, ms in summary.phases_ms.items()]
    share = summary.outside_ms / summary.iteration_ms if summary.iteration_ms else 0.0
    lines.append(f"{'  the rest: the driver loop, scheduling':44s} {summary.outside_ms:8.2f}"
                 f"  ({share:.0%} of the iteration; an upper bound: DEBUG logging slows it)")
    return "\n".join(lines)
