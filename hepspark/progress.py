"""Live progress of a long step: done/total, rate and ETA.

On a terminal (stderr is a TTY) one bar is redrawn in place; in a log (not a TTY) one line
is written every ``interval_s`` seconds (default 15) and one when the step ends, so a
job's log shows that it is alive and how long it will take without flooding it. Every
long step uses this one class: generation, conversion (through :class:`SparkProgress`,
Spark's task counts), training epochs, evaluation, the scaling sweep and ``pack-env``.

>>> with Progress("generate", total=1_000_000, unit="rows") as bar:
...     for chunk in chunks:
...         bar.advance(len(chunk))
[generate] 300,000/1,000,000 rows  30%  61,234 rows/s  ETA 11s

The CLI sets the process-wide defaults once (:func:`configure`, as the logging level is
process-wide): ``--progress-interval-s`` and ``--no-progress``.
"""
from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclasses.dataclass(frozen=True)
class ProgressSettings:
    # seconds between two lines in a log (0: a line at every update, as tests use)
    interval_s: float = 15.0
    enabled: bool = True
    # None: a bar when stderr is a terminal, else lines; True/False forces one of them
    tty: bool | None = None


# Process-wide, set once by the entry point (like logging's levels); never mutated in place.
_settings = ProgressSettings()
BAR_REDRAW_S = 0.2  # a terminal bar is redrawn at most this often
BAR_WIDTH = 24


def configure(interval_s: float | None = None, enabled: bool = True,
              tty: bool | None = None) -> None:
    """Set the defaults every :class:`Progress` made afterwards uses."""
    global _settings
    if interval_s is not None and interval_s < 0:
        raise ValueError(f"--progress-interval-s must be >= 0, got {interval_s:g}")
    _settings = ProgressSettings(
        interval_s=_settings.interval_s if interval_s is None else interval_s,
        enabled=enabled, tty=tty)


def settings() -> ProgressSettings:
    return _settings


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Progress of one step of ``total`` units (``total`` may grow, or be unknown: None).

    Thread-safe: Spark pollers and Keras callbacks update it from other threads. Lines
    (not a terminal) go to ``emit`` when given, e.g. a library function's ``progress``
    callback (``lambda _: None`` silences them), else to ``stream``; the terminal bar always
    goes to ``stream`` (stderr).
    """

    def __init__(self, label: str, total: float | None, unit: str = "rows", *,
                 emit: Callable[[str], None] | None = None, stream: IO[str] | None = None,
                 interval_s: float | None = None, tty: bool | None = None,
                 enabled: bool | None = None) -> None:
        defaults = settings()
        self.label, self.total, self.unit, self.emit = label, total, unit, emit
        self.done = 0.0
        self.stream = stream if stream is not None else sys.stderr
        self.interval_s = defaults.interval_s if interval_s is None else interval_s
        self.enabled = defaults.enabled if enabled is None else enabled
        tty = defaults.tty if tty is None else tty
        self.tty = _isatty(self.stream) if tty is None else tty
        self.start = time.monotonic()
        self._last_draw = self.start if not self.tty else 0.0
        self._first: tuple[float, float] | None = None  # (time, done) at the first update
        self._drawn = False
        self._closed = False
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- updates
    def advance(self, n: float = 1) -> None:
        with self._lock:
            self.done += n
            self._mark_first()
            self._maybe_draw()

    def _mark_first(self) -> None:
        """Rates are measured from the first update on (after it: what came before it
        includes start-up)."""
        if self._first is None:
            self._first = (time.monotonic(), self.done)

    def update(self, done: float, total: float | None = None) -> None:
        """Set the absolute ``done`` (and ``total`` when it changed)."""
        with self._lock:
            self.done = done
            if total is not None:
                self.total = total
            self._mark_first()
            self._maybe_draw()

    def close(self, note: str = "") -> None:
        """The step ended: the final line (the bar is finished with a newline)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if not self.enabled:
                return
            elapsed = time.monotonic() - self.start
            line = f"{self._counts()}  {self._rate(elapsed)}  done in {format_duration(elapsed)}"
            self._write(line + (f"  {note}" if note else ""), final=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        elif self._drawn and self.tty:  # leave the terminal on a fresh line
            with self._lock:
                self._closed = True
                self.stream.write("\n")
                self.stream.flush()

    # --------------------------------------------------------------- rendering
    def line(self) -> str:
        """What the step looks like now: ``done/total unit  pct  rate  ETA``."""
        elapsed = time.monotonic() - self.start
        parts = [self._counts()]
        if self.total:
            parts.append(f"{min(self.done / self.total, 1.0):4.0%}")
        parts.append(self._rate(elapsed))
        parts.append(f"ETA {self._eta(elapsed)}")
        return "  ".join(parts)

    def _counts(self) -> str:
        total = f"/{self.total:,.0f}" if self.total is not None else ""
        return f"{self.done:,.0f}{total} {self.unit}"

    def _speed(self, elapsed: float) -> float | None:
        """Units per second since the first update (start-up, e.g. Horovod ranks importing
        TensorFlow, is not work done), or since the start when there is nothing newer."""
        if self._first is not None:
            first_s, first_done = self._first
            seconds, done = time.monotonic() - first_s, self.done - first_done
            if seconds > 0 and done > 0:
                return done / seconds
        return self.done / elapsed if elapsed > 0 and self.done > 0 else None

    def _rate(self, elapsed: float) -> str:
        rate = self._speed(elapsed)
        if rate is None:
            return f"? {self.unit}/s"
        return f"{rate:,.0f} {self.unit}/s" if rate >= 10 else f"{rate:.2f} {self.unit}/s"

    def _eta(self, elapsed: float) -> str:
        rate = self._speed(elapsed)
        if not self.total or rate is None:
            return "?"
        return format_duration(max(self.total - self.done, 0) / rate)

    def _maybe_draw(self) -> None:
        if not self.enabled or self._closed:
            return
        now = time.monotonic()
        wait = BAR_REDRAW_S if self.tty else self.interval_s
        if now - self._last_draw < wait:
            return
        self._last_draw = now
        self._write(self.line(), final=False)

    def _write(self, text: str, final: bool) -> None:
        if self.tty:
            bar = ""
            if self.total:
                filled = int(BAR_WIDTH * min(self.done / self.total, 1.0))
                bar = "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "] "
            self.stream.write(f"\r\x1b[K[{self.label}] {bar}{text}" + ("\n" if final else ""))
        elif self.emit is not None:
            self.emit(f"[{self.label}] {text}")
            return
        else:
            self.stream.write(f"[{self.label}] {text}\n")
        self._drawn = True
        self.stream.flush()


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class SparkProgress:
    """Task-level progress of whatever Spark runs while the block runs: a thread polls
    ``SparkContext.statusTracker()`` and counts the completed tasks of every stage seen
    (a stage no longer active counts as complete). The total grows as new stages start, so
    the ETA is that of the stages started so far.

    >>> with SparkProgress(spark, "convert"):
    ...     convert_higgs(spark, config)
    """

    POLL_S = 0.5

    def __init__(self, spark: "SparkSession", label: str, **progress: Any) -> None:
        self.context = spark.sparkContext
        self.progress = Progress(label, None, unit="tasks", **progress)
        self._stages: dict[int, list[int]] = {}  # stage id -> [completed, total]
        self._jobs_before: set[int] = set()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, name=f"hepspark-progress-{label}",
                                        daemon=True)

    def _new_jobs_stages(self, tracker: Any) -> set[int]:
        """Stages of the jobs started since the block began (those without a job group):
        a job that ended between two polls is counted too."""
        stages: set[int] = set()
        for job_id in set(tracker.getJobIdsForGroup(None)) - self._jobs_before:
            info = tracker.getJobInfo(job_id)
            if info is not None:
                stages.update(info.stageIds)
        return stages

    def poll_once(self) -> None:
        tracker = self.context.statusTracker()
        active = set(tracker.getActiveStageIds())
        for stage_id, counts in self._stages.items():
            if stage_id not in active:  # finished (or skipped): all its tasks are done
                counts[0] = counts[1]
        for stage_id in active | (self._new_jobs_stages(tracker) - set(self._stages)):
            info = tracker.getStageInfo(stage_id)
            if info is not None:
                self._stages[stage_id] = [info.numCompletedTasks, info.numTasks]
        if self._stages:
            done = sum(c[0] for c in self._stages.values())
            self.progress.update(done, sum(c[1] for c in self._stages.values()))

    def _poll(self) -> None:
        while not self._done.wait(self.POLL_S):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - progress never fails the work it watches
                return

    def __enter__(self) -> "SparkProgress":
        self._jobs_before = set(self.context.statusTracker().getJobIdsForGroup(None))
        self._thread.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._done.set()
        self._thread.join()
        if exc_type is None:
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001
                pass
        self.progress.__exit__(exc_type, exc, tb)


def predict_with_progress(predict: Callable[[Any], Any], x: Any, label: str = "evaluate",
                          chunk_rows: int = 100_000) -> Any:
    """``predict(x)`` in chunks of ``chunk_rows`` rows with a progress bar (scoring 500k
    test rows, or images, takes long enough to need one); the scores are concatenated."""
    import numpy as np

    n = len(x)
    with Progress(label, n, "rows") as bar:
        parts = []
        for first in range(0, n, chunk_rows):
            parts.append(predict(x[first:first + chunk_rows]))
            bar.advance(min(chunk_rows, n - first))
    return np.concatenate(parts) if parts else predict(x)
