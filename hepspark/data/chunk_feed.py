"""Line-aligned chunks of the inputs, handed out while compressed inputs still inflate.

A ``.csv.gz`` is one stream: one Spark task inflates it
(:func:`~hepspark.data.higgs_convert_remote.decompress`), writing plain chunk files and a
small manifest for each as soon as it is complete. :func:`feed_chunks` runs that job on a
driver thread and polls the manifests, so the caller can start parsing chunk 1 while chunk
2 is being inflated (with 2 cores: one inflates, one parses). Plain ``.csv`` inputs are
cut into byte ranges and counted by one quick job first.

Chunks are placed in input order, each with its first line (per file, 1-based) and first
row (whole input, 0-based): exact, because a chunk is only handed out once every chunk
before it is known.

>>> for chunk, lines in feed_chunks(spark, plan, fs):
...     submit(chunk)          # placed: chunk.first_line, chunk.first_row are exact
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hepspark.data.higgs_convert_remote import (
    Chunk,
    DecompressJob,
    chunk_manifest,
    count_range,
    decompress,
    done_manifest,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

POLL_S = 0.05  # how often the driver looks for a new chunk manifest


@dataclass(frozen=True)
class FeedPlan:
    """How the inputs are cut: ``plain`` ranges to count, ``packed`` files to inflate, in
    input order (``sources``: each input's URI)."""

    sources: tuple[str, ...]
    plain: tuple[Chunk, ...]
    packed: tuple[DecompressJob, ...]


def _run_job(spark: "SparkSession", task: Callable[[Any], Any], items: list[Any]) -> list:
    sc = spark.sparkContext
    return sc.parallelize(items, max(1, len(items))).map(task).collect()


class _PackedJob:
    """The inflating Spark job, on a driver thread of its own (cancellable: a job group)."""

    def __init__(self, spark: "SparkSession", jobs: tuple[DecompressJob, ...]) -> None:
        self.spark, self.jobs = spark, jobs
        self.group = f"hepspark-inflate-{uuid.uuid4().hex}"
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=self.group, daemon=True)

    def _run(self) -> None:
        try:
            self.spark.sparkContext.setJobGroup(self.group, "inflate compressed inputs",
                                                interruptOnCancel=True)
            _run_job(self.spark, decompress, list(self.jobs))
        except BaseException as exc:  # re-raised on the calling thread
            self.error = exc

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        """Cancel the job if it still runs (the caller failed) and wait for the thread."""
        if self.thread.is_alive():
            self.spark.sparkContext.cancelJobGroup(self.group)
        if self.thread.ident is not None:
            self.thread.join()


def feed_chunks(
    spark: "SparkSession",
    plan: FeedPlan,
    fs: Any,
    on_packed: Callable[[int], None] | None = None,
) -> Iterator[tuple[Chunk, int]]:
    """Each placed ``(chunk, lines)``, in input order, as soon as it is known.

    ``fs`` reads the manifests (:class:`~hepspark.data.storage.HadoopFileSystem`);
    ``on_packed(bytes)`` gets the compressed bytes inflated so far (all inputs)."""
    counted = {c.name: c for c in _run_job(spark, count_range, list(plan.plain))}
    inflating = _PackedJob(spark, plan.packed)
    if plan.packed:
        inflating.thread.start()
    packed_done = {job.file_index: 0 for job in plan.packed}
    row = 0
    try:
        for index, source in enumerate(plan.sources):
            job = next((j for j in plan.packed if j.file_index == index), None)
            line = 1
            pieces = (_manifests(fs, job, inflating, packed_done, on_packed) if job
                      else _counted(plan, counted, index))
            for chunk, lines in pieces:
                placed = Chunk(chunk.uri, chunk.start, chunk.end, source, first_line=line,
                               first_row=row, name=chunk.name, lines=lines)
                line += lines
                row += lines
                if chunk.end > chunk.start:
                    yield placed, lines
        if plan.packed:
            inflating.thread.join()  # the job has ended: its error, if any, is known
            inflating.check()
    finally:
        inflating.stop()


def _counted(plan: FeedPlan, counted: dict[str, Chunk], index: int):
    for piece in plan.plain:
        if piece.name.startswith(f"f{index:05d}-"):
            part = counted[piece.name]
            yield part, part.first_line  # count_range returns the count there


def _manifests(fs: Any, job: DecompressJob, inflating: _PackedJob, packed_done: dict,
               on_packed: Callable[[int], None] | None):
    """The chunks of one inflating input as their manifests appear."""
    number, expected = 0, None
    while expected is None or number < expected:
        manifest = chunk_manifest(job.chunks_uri, job.file_index, number)
        if fs.exists(manifest):
            entry = json.loads(fs.read_text(manifest))
            packed_done[job.file_index] = entry["packed_pos"]
            if on_packed is not None:
                on_packed(sum(packed_done.values()))
            name = f"f{job.file_index:05d}-c{number:06d}"
            yield Chunk(entry["uri"], 0, entry["bytes"], job.uri, name=name), entry["lines"]
            number += 1
            continue
        if expected is None and fs.exists(done_manifest(job.chunks_uri, job.file_index)):
            expected = json.loads(fs.read_text(
                done_manifest(job.chunks_uri, job.file_index)))["chunks"]
            continue
        inflating.check()
        if not inflating.thread.is_alive():
            inflating.check()
            if expected is None and not fs.exists(
                    done_manifest(job.chunks_uri, job.file_index)):
                raise RuntimeError(f"the inflating job ended without finishing {job.uri}")
            continue
        time.sleep(POLL_S)
