"""Where a Horovod step's time goes, read from a Horovod timeline.

Set ``HOROVOD_TIMELINE=/path/timeline.json`` for a run (``hepspark train ... --backend
horovod`` or ``hepspark bench scaling``: ranks get every ``HOROVOD_*`` variable of the
driver); rank 0 writes Chrome-trace events there. :func:`summarize` turns them into the
per-step breakdown of the gradient all-reduce:

- step period: from one step's all-reduce request to the next one's;
- negotiation: from this rank's request until every rank asked (waiting for the slowest
  rank plus Horovod's coordination, at most one background-thread cycle late);
- all-reduce: the exchange itself (Gloo's all-reduce plus the copies into and out of the
  fusion buffer);
- outside the exchange: period minus both, i.e. the rank's own compute, input and
  framework work.

    hepspark bench horovod-timeline /tmp/timeline.json
"""
from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass

PHASES = ("NEGOTIATE_ALLREDUCE", "ALLREDUCE", "GLOO_ALLREDUCE", "MEMCPY_IN_FUSION_BUFFER",
          "MEMCPY_OUT_FUSION_BUFFER")


@dataclass(frozen=True)
class Stat:
    median_ms: float
    mean_ms: float
    p90_ms: float

    @staticmethod
    def of(values_us: list[float]) -> "Stat":
        ordered = sorted(values_us)
        return Stat(statistics.median(ordered) / 1000, statistics.fmean(ordered) / 1000,
                    ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] / 1000)


@dataclass(frozen=True)
class TimelineSummary:
    tensor: str  # the all-reduce followed (the one requested most often: the gradients)
    steps: int  # steps summarized (after the skipped warm-up)
    skipped: int
    period: Stat
    phases: dict[str, Stat]  # PHASES present in the timeline

    @property
    def outside_ms(self) -> float:
        """Median period minus the median negotiation and all-reduce."""
        return (self.period.median_ms - self.phases["NEGOTIATE_ALLREDUCE"].median_ms
                - self.phases["ALLREDUCE"].median_ms)


def read_events(path: str) -> list[dict]:
    """The timeline's events. Horovod writes a JSON list event by event and closes it only
    at a clean shutdown: an unterminated list (trailing comma) is read too."""
    with open(path) as handle:
        text = handle.read().strip()
    if not text.startswith("["):
        raise ValueError(f"{path}: not a Horovod timeline (no JSON list)")
    text = text.rstrip(",")
    if not text.endswith("]"):
        text += "]"
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a Horovod timeline ({exc})") from None


def summarize(path: str, skip_fraction: float = 1 / 3) -> TimelineSummary:
    """Per-step breakdown of the most frequent all-reduce of a timeline; the first
    ``skip_fraction`` of its steps (the first epoch's tracing and warm-up) is left out."""
    events = read_events(path)
    names = {e["pid"]: e.get("args", {}).get("name", str(e["pid"])) for e in events
             if e.get("ph") == "M" and e.get("name") == "process_name"}
    open_spans: dict[int, list[tuple[str, float]]] = defaultdict(list)
    spans: dict[int, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for event in events:
        phase, pid = event.get("ph"), event.get("pid")
        if phase == "B":
            open_spans[pid].append((event["name"], event["ts"]))
        elif phase == "E" and open_spans[pid]:
            name, start = open_spans[pid].pop()
            spans[pid][name].append((start, event["ts"] - start))
    candidates = [pid for pid in spans if len(spans[pid]["NEGOTIATE_ALLREDUCE"]) >= 3]
    if not candidates:
        raise ValueError(f"{path}: fewer than 3 all-reduces in the timeline; was the run "
                         "shorter than a few steps, or not a Horovod training run?")
    pid = max(candidates, key=lambda p: len(spans[p]["NEGOTIATE_ALLREDUCE"]))
    requests = spans[pid]["NEGOTIATE_ALLREDUCE"]
    skip = min(int(len(requests) * skip_fraction), len(requests) - 2)  # >= 1 period left
    starts = [start for start, _ in requests]
    period = [b - a for a, b in zip(starts[skip:], starts[skip + 1:])]
    phases = {name: Stat.of([d for _, d in spans[pid][name][skip:]])
              for name in PHASES if len(spans[pid][name]) > skip}
    if "ALLREDUCE" not in phases:
        raise ValueError(f"{path}: {len(requests)} negotiations but no all-reduce after them; "
                         "was the timeline cut off mid-step (a killed run)?")
    return TimelineSummary(tensor=names.get(pid, str(pid)).rsplit("/", 1)[-1],
                           steps=len(requests) - skip, skipped=skip, period=Stat.of(period),
                           phases=phases)


LABELS = {"NEGOTIATE_ALLREDUCE": "negotiation (waiting for every rank's request)",
          "ALLREDUCE": "all-reduce (the exchange)",
          "GLOO_ALLREDUCE": "  of which Gloo's all-reduce",
          "MEMCPY_IN_FUSION_BUFFER": "  of which copy into the fusion buffer",
          "MEMCPY_OUT_FUSION_BUFFER": "  of which copy out of it"}


def format_summary(summary: TimelineSummary) -> str:
    lines = [f"{summary.tensor}: {summary.steps} steps (first {summary.skipped} skipped)",
             f"{'':48s} {'median':>8s} {'mean':>8s} {'p90':>8s}  (ms)"]

    def row(label: str, stat: Stat) -> str:
        return f"{label:48s} {stat.median_ms:8.2f} {stat.mean_ms:8.2f} {stat.p90_ms:8.2f}"

    lines.append(row("step period", summary.period))
    lines += [row(LABELS[name], stat) for name, stat in summary.phases.items()]
    lines.append(f"{'outside the exchange (compute, input, framework)':48s} "
                 f"{summary.outside_ms:8.2f}  (median period - negotiation - all-reduce)")
    return "\n".join(lines)
