"""HIGGS CSV (UCI layout) → Petastorm Parquet dataset with train / val / test splits.

Every core busy, nothing done twice (issue #17):

1. *cut*: plain ``.csv`` files are cut into byte ranges moved to line boundaries and
   their lines counted (one quick job); each compressed file (``.csv.gz``: not
   splittable) is inflated by one task (ISA-L, :mod:`hepspark.data.gzip_stream`) into
   line-aligned plain chunks under the output's temporary directory, each announced by a
   manifest as soon as it is complete (:mod:`hepspark.data.chunk_feed`);
2. *parse and write*, overlapping the inflating: each chunk, once its first line number
   and row index are known, is one small Spark job that parses it with Arrow's CSV reader
   (falling back to an exact line-by-line check where a chunk holds anything odd, see
   :mod:`hepspark.data.higgs_rows`), splits its rows, writes one Parquet file per split
   and returns its row counts, bad lines, row groups and the training-set moments, which
   the driver merges into the standardization - no extra pass over the data. The UCI test
   split is the *last* 500,000 rows, so the chunks that may hold test rows wait for the
   total (see :func:`_parse_as_placed`).

The executor side lives in :mod:`hepspark.data.higgs_convert_remote`.

Layout written::

    DIR/train, DIR/val, DIR/test    Petastorm datasets, one float32 column per feature
    DIR/hepspark_dataset.json       features, row counts, standardization, source, checksum

>>> cfg = ConvertConfig(input="HIGGS.csv.gz", output="data/higgs")
>>> summary = convert_higgs(get_spark(), cfg)
>>> summary.rows
{'train': ..., 'val': ..., 'test': ...}
"""
from __future__ import annotations

import contextlib
import functools
import glob
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hepspark.data import convert, storage
from hepspark.data.chunk_feed import FeedPlan, feed_chunks
from hepspark.data.higgs_convert_remote import (
    COMPRESSED_SUFFIXES,
    DAMAGED_INPUT,
    Chunk,
    ChunkResult,
    DecompressJob,
    SplitRule,
    chunk_verdicts,
    parse_item,
)
from hepspark.data.higgs_schema import LABEL, UCI_TEST_ROWS, feature_set
from hepspark.data.moments import Moments
from hepspark.data.petastorm_compat import write_dataset_metadata
from hepspark.progress import Progress

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SPLITS = ("train", "val", "test")
# Files with fewer rows than this get a test *fraction* by default instead of the UCI
# 500,000 rows (which would leave nothing to train on).
UCI_TEST_MIN_ROWS = 5_000_000
DEFAULT_SMALL_TEST_FRACTION = 0.1
# Chunk sizes: about four chunks per core (so a slow chunk does not hold the job up),
# at least MIN (a task's start-up costs ~10 ms), at most MAX (a task's memory: the text,
# Arrow's float64 columns, the float32 rows - about 2x the chunk).
MIN_CHUNK_BYTES = 1 << 20
MAX_CHUNK_BYTES = 64 << 20
CHUNKS_PER_CORE = 4
# Inflated HIGGS text is 2-3x its gzip size (UCI: 7.5 GB from 2.6 GB; generated: 2x),
# for sizing the chunks of a .gz; a stream is cut finer (parsing starts after its first
# chunk, and the test split's chunks wait for its end).
EXPANSION_ESTIMATE = 3
STREAM_CHUNKS_PER_CORE = 8
CHUNKS_DIR = "_chunks"  # decompressed chunks, inside the temporary output directory
# With a local master the inflated chunks wait for their parse in memory (tmpfs), up to a
# quarter of the memory available at the start, the rest in CHUNKS_DIR: the inflating task
# outruns the parsing ones, and writing 2.75 GB through the disk's page cache cost it 4.2 s
# of CPU (11M events), often 5-10x what tmpfs costs.
MEMORY_DIR = "/dev/shm"
MEMORY_PREFIX = "hepspark-chunks-"  # + the driver's pid: leftovers of a killed run are found
MEMORY_SHARE = 0.25


class BadInputError(ValueError):
    """Malformed input rows; the message names file, line and field."""


@dataclass(frozen=True)
class ConvertConfig:
    """What ``hepspark convert higgs`` does; built from CLI flags, logged verbatim."""

    input: str
    output: str
    test_rows: int | None = None
    test_fraction: float | None = None
    val_fraction: float = 0.05
    features: str = "all"
    on_bad_row: str = "fail"
    overwrite: bool = False
    seed: int = 42
    row_group_size_mb: int = 8
    checksum: bool = True
    # rows per Parquet row group, instead of row_group_size_mb's: a small sample written in
    # many row groups, so that every rank of a multi-node run gets a shard
    rows_per_row_group: int | None = None

    def __post_init__(self) -> None:
        feature_set(self.features)
        convert.check_convert_options(self.on_bad_row, self.row_group_size_mb)
        if self.rows_per_row_group is not None and self.rows_per_row_group < 1:
            raise ValueError(f"rows_per_row_group must be >= 1, got {self.rows_per_row_group}")
        if self.test_rows is not None and self.test_fraction is not None:
            raise ValueError("give either test_rows or test_fraction, not both")
        if self.test_rows is not None and self.test_rows < 1:
            raise ValueError(f"test_rows must be >= 1, got {self.test_rows}")
        if self.test_fraction is not None and not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")


@dataclass
class ConvertSummary(convert.DatasetSummary):
    """What ``hepspark convert higgs`` wrote (rows per split, in train/val/test order)."""

    features: list[str] = field(default_factory=list)

    @property
    def mb_per_s(self) -> float:
        return self.input_bytes / 1e6 / self.seconds if self.seconds > 0 else float("nan")

    def split_lines(self) -> list[tuple[str, int]]:
        return [(split, self.rows.get(split, 0)) for split in SPLITS]

    def rate(self) -> str:
        return f"{self.mb_per_s:.1f} MB/s"


def resolve_inputs(pattern: str) -> list[str]:
    """Input URIs for a path or glob; local inputs are checked here with clear errors."""
    uri = storage.to_uri(pattern)
    if not storage.is_local(uri):
        return [uri]  # Spark resolves remote globs and reports missing paths itself
    path = storage.local_path(uri)
    matches = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
    if not matches or not all(os.path.exists(m) for m in matches):
        raise FileNotFoundError(
            f"input {pattern!r} not found; give a HIGGS .csv or .csv.gz file (or a glob), "
            "e.g. from 'hepspark generate higgs --rows 100000 --output higgs.csv.gz'"
        )
    files = [m for m in matches if os.path.isfile(m)]
    if not files:
        raise FileNotFoundError(f"input {pattern!r} matches no regular file")
    empty = [f for f in files if os.path.getsize(f) == 0]
    if empty:
        raise BadInputError(f"input file {empty[0]} is empty")
    return ["file://" + os.path.abspath(f) for f in files]


def _chunk_bytes(input_bytes: int, parallelism: int) -> int:
    wanted = math.ceil(input_bytes / max(1, CHUNKS_PER_CORE * parallelism))
    return int(min(MAX_CHUNK_BYTES, max(MIN_CHUNK_BYTES, wanted)))


def _is_compressed(uri: str) -> bool:
    return uri.lower().endswith(COMPRESSED_SUFFIXES)


def _file_size(uri: str) -> int:
    import pyarrow.fs

    fs, path = pyarrow.fs.FileSystem.from_uri(uri)
    return fs.get_file_info(path).size


@contextlib.contextmanager
def memory_scratch(spark: "SparkSession") -> Iterator[tuple[str | None, int]]:
    """``(directory, bytes it may hold)`` on tmpfs for inflated chunks, or ``(None, 0)``
    where tasks may run on other hosts (not a local master) or there is no tmpfs. The
    directory is new and removed afterwards, with those of killed earlier runs."""
    if not spark.sparkContext.master.startswith("local") or not os.access(MEMORY_DIR,
                                                                         os.W_OK):
        yield None, 0
        return
    import psutil

    for stale in glob.glob(os.path.join(MEMORY_DIR, MEMORY_PREFIX + "*")):
        pid = os.path.basename(stale)[len(MEMORY_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    room = min(psutil.virtual_memory().available, shutil.disk_usage(MEMORY_DIR).free)
    directory = tempfile.mkdtemp(prefix=f"{MEMORY_PREFIX}{os.getpid()}-", dir=MEMORY_DIR)
    try:
        yield directory, int(room * MEMORY_SHARE)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def feed_plan(spark: "SparkSession", paths: list[str], scratch_uri: str,
              memory: tuple[str | None, int] = (None, 0)) -> FeedPlan:
    """How the inputs are cut (:class:`~hepspark.data.chunk_feed.FeedPlan`): plain files
    into equal byte ranges, compressed ones inflated into ``scratch_uri`` (and into
    ``memory``: see :func:`memory_scratch`)."""
    sizes = [_file_size(p) for p in paths]
    parallelism = spark.sparkContext.defaultParallelism
    plain_bytes = sum(s for p, s in zip(paths, sizes) if not _is_compressed(p))
    packed_bytes = sum(s for p, s in zip(paths, sizes) if _is_compressed(p))
    plain_chunk = _chunk_bytes(plain_bytes, parallelism)
    stream_chunk = _chunk_bytes(packed_bytes * EXPANSION_ESTIMATE,
                                parallelism * STREAM_CHUNKS_PER_CORE // CHUNKS_PER_CORE)
    plain: list[Chunk] = []
    packed: list[DecompressJob] = []
    for index, (uri, size) in enumerate(zip(paths, sizes)):
        if _is_compressed(uri):
            packed.append(DecompressJob(uri, storage.join(scratch_uri, CHUNKS_DIR), index,
                                        stream_chunk, *memory))
            continue
        # equal byte ranges (not full ones and a short tail: see decompress)
        pieces = max(1, math.ceil(size / plain_chunk))
        step = max(1, math.ceil(size / pieces))
        for piece, start in enumerate(range(0, max(size, 1), step)):
            plain.append(Chunk(uri, start, min(start + step, size), uri,
                               name=f"f{index:05d}-c{piece:06d}"))
    return FeedPlan(tuple(paths), tuple(plain), tuple(packed))


def run_tasks(spark: "SparkSession", task: Callable[[Any], Any], items: Sequence[Any]) -> list:
    """``[task(item) for item in items]``, one Spark task per item, results in order."""
    return spark.sparkContext.parallelize(list(items), max(1, len(items))).map(task).collect()


def row_verdicts(spark: "SparkSession", input: str) -> list[dict]:
    """Every line of the (small) input as the converter judges it, in order: ``file``,
    ``line``, ``row_index``, ``bad``, the stored values (None for bad lines) and, for bad
    lines, the ``error`` that ``hepspark convert higgs`` reports - the conversion's own
    code (for tests and for checking a file). Compressed inputs are decompressed into a
    local temporary directory (so: local Spark)."""
    scratch = tempfile.mkdtemp(prefix="hepspark-verdicts-")
    try:
        plan = feed_plan(spark, resolve_inputs(input), storage.to_uri(scratch))
        chunks = [chunk for chunk, _ in feed_chunks(spark, plan, storage.LocalFileSystem())]
        verdicts = [v for part in run_tasks(spark, chunk_verdicts, chunks) for v in part]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for verdict in verdicts:
        verdict["file"] = _norm(verdict["file"])
    return verdicts


def _norm(uri: str) -> str:
    return storage.local_path(uri) if uri.startswith("file:") else uri


def _unischema(features: tuple[str, ...]):
    from petastorm.codecs import ScalarCodec
    from petastorm.unischema import Unischema, UnischemaField
    from pyspark.sql.types import FloatType, LongType

    fields = [UnischemaField("row_index", np.int64, (), ScalarCodec(LongType()), False)]
    fields += [
        UnischemaField(name, np.float32, (), ScalarCodec(FloatType()), False)
        for name in (LABEL, *features)
    ]
    return Unischema("HiggsSchema", fields)


def convert_higgs(
    spark: "SparkSession",
    config: ConvertConfig,
    progress: Callable[[str], None] = print,
    on_bytes: Callable[[int, int], None] | None = None,
) -> ConvertSummary:
    """Convert HIGGS CSV file(s) into a Petastorm dataset; see the module docstring.

    ``progress`` gets one line per stage; ``on_bytes(parsed, total)``, if given, the input
    bytes parsed so far while the parse-and-write job runs (for a progress bar). A
    compressed input that ends early or is corrupt is a :class:`BadInputError`."""
    try:
        return _convert_higgs(spark, config, progress, on_bytes)
    except Exception as exc:
        text = str(exc)
        if DAMAGED_INPUT not in text:
            raise
        detail = next(line for line in text.splitlines() if DAMAGED_INPUT in line)
        detail = detail.split(DAMAGED_INPUT, 1)[1].strip()[:200]
        raise BadInputError(
            f"input {config.input}: truncated or corrupt compressed file ({detail}); "
            "re-copy or re-download it (check it with 'gzip -t FILE')"
        ) from exc


def _convert_higgs(
    spark: "SparkSession",
    config: ConvertConfig,
    progress: Callable[[str], None],
    on_bytes: Callable[[int, int], None] | None,
) -> ConvertSummary:
    start = time.perf_counter()
    features = feature_set(config.features)
    paths = resolve_inputs(config.input)
    output = convert.DatasetOutput(spark, config.output, overwrite=config.overwrite,
                                   progress=progress)
    input_bytes = convert.local_input_bytes(paths)
    progress(f"[convert] reading {len(paths)} file(s), {input_bytes / 1e6:,.1f} MB")
    with output.build() as tmp_uri:
        val_threshold = int(round(config.val_fraction * 1_000_000))
        rule = functools.partial(
            SplitRule, output_uri=tmp_uri, features=tuple(features),
            val_threshold=val_threshold, seed=config.seed,
            rows_per_group=_rows_per_group(config, len(features)),
            max_examples=convert.MAX_REPORTED_BAD_ROWS,
        )
        with memory_scratch(spark) as memory:
            results, total_lines, test_rows = _parse_as_placed(
                spark, config, feed_plan(spark, paths, tmp_uri, memory), output.fs, rule,
                progress, on_bytes)
        progress(f"[convert] {total_lines:,d} lines in {len(results)} chunk(s) "
                 f"({time.perf_counter() - start:.1f} s)")
        output.fs.delete(storage.join(tmp_uri, CHUNKS_DIR))
        rows = {s: sum(r.rows[s] for r in results) for s in SPLITS}
        bad_rows = sum(r.bad_count for r in results)
        examples = [text for _, text in sorted(e for r in results for e in r.bad_examples)]
        examples = examples[: convert.MAX_REPORTED_BAD_ROWS]
        convert.apply_bad_row_policy(bad_rows, examples, config.on_bad_row, BadInputError,
                                     "malformed row(s) in the input", progress)
        if rows["train"] == 0:
            raise BadInputError("no valid training rows left after the test/val split")
        train = Moments.empty(len(features))
        for result in results:
            train = train.merge(result.train)
        mean, std = train.mean.tolist(), train.std.tolist()
        constant = [f for f, s in zip(features, std) if not s > 0]
        if constant:
            progress(f"[convert] warning: constant feature(s) {constant}; using std = 1")
        std = [s if s > 0 else 1.0 for s in std]

        schema = _unischema(features)
        for name in SPLITS:
            if rows[name]:
                # petastorm's schema and row-group index (the tasks wrote the files)
                write_dataset_metadata(
                    spark, storage.join(tmp_uri, name), schema,
                    {f: n for r in results for f, n in r.row_groups.get(name, {}).items()})
                progress(f"[convert] wrote {name}: {rows[name]:,d} rows "
                         f"({time.perf_counter() - start:.1f} s)")
        higgs_fields = {
            "label": LABEL,
            "feature_set": config.features,
            "features": list(features),
            "splits": {s: {"rows": rows[s], "path": s} for s in SPLITS},
            "standardize": {"mean": mean, "std": std, "computed_on": "train"},
        }
        split_rule = {
            "test": f"last {test_rows} lines",
            "val": f"xxhash64(row_index, seed={config.seed}) mod 1e6 < {val_threshold}",
        }
        # Written last: its presence marks the dataset complete.
        output.write_metadata(
            tmp_uri, "hepspark-higgs", higgs_fields,
            source=convert.source_metadata(paths, input_bytes, config.checksum,
                                           lines=total_lines),
            bad_rows=bad_rows, bad_row_examples=examples, split_rule=split_rule,
            config=config,
        )
    return ConvertSummary(
        output=output.uri,
        rows=rows,
        bad_rows=bad_rows,
        bad_row_examples=examples,
        input_bytes=input_bytes,
        seconds=time.perf_counter() - start,
        features=list(features),
    )


def _parse_as_placed(
    spark: "SparkSession",
    config: ConvertConfig,
    plan: FeedPlan,
    fs: storage.HadoopFileSystem,
    rule: Callable[..., SplitRule],
    progress: Callable[[str], None],
    on_bytes: Callable[[int, int], None] | None,
) -> tuple[list[ChunkResult], int, int]:
    """Parse and write every chunk, in parallel with the inflating of compressed inputs:
    (results in input order, total lines, test rows).

    Each chunk is one small Spark job, started as soon as the chunk is placed (its first
    row is known) and surely before the test split: that split is the input's *last* rows,
    so only chunks ending before ``rows_so_far - test_rows(rows_so_far)`` (a lower bound of
    the final test start, which never decreases as rows are added) go early; the tail
    waits for the total."""
    from concurrent.futures import ThreadPoolExecutor

    parallelism = spark.sparkContext.defaultParallelism
    packed_bytes = sum(_file_size(job.uri) for job in plan.packed)
    # compressed MB inflated so far: lines (not a bar: the CLI's Spark task bar is drawn)
    inflate_bar = Progress("inflate", packed_bytes / 1e6, unit="MB", emit=progress, tty=False)
    lock = threading.Lock()
    parsed_bytes = [0, 0]  # [parsed, placed]
    placed: list[tuple[Chunk, int]] = []
    pending: list[tuple[Chunk, SplitRule]] = []
    jobs: list[tuple[Any, list[tuple[Chunk, SplitRule]]]] = []
    in_memory = tuple(f"file://{job.memory_dir}/" for job in plan.packed if job.memory_dir)

    def parsed(batch: list[tuple[Chunk, SplitRule]]) -> None:
        for chunk, _ in batch:
            if in_memory and chunk.uri.startswith(in_memory):  # parsed: free its memory
                os.remove(storage.local_path(chunk.uri))
            elif chunk.uri != chunk.source:  # an inflated chunk: no longer needed
                fs.delete(chunk.uri)
        with lock:
            parsed_bytes[0] += sum(chunk.end - chunk.start for chunk, _ in batch)
            if on_bytes is not None:
                on_bytes(parsed_bytes[0], parsed_bytes[1])

    def dispatch(last: bool = False) -> None:
        """The pending chunks as one Spark job (a task each) once fewer than
        ``parallelism`` jobs run: each job costs the JVM ~70 ms of CPU, a task ~17 ms."""
        running = sum(not future.done() for future, _ in jobs)
        if pending and (last or running < parallelism):
            batch = pending[:]
            pending.clear()
            future = pool.submit(run_tasks, spark, parse_item, batch)
            future.add_done_callback(lambda f: f.exception() is None and parsed(batch))
            jobs.append((future, batch))

    # polled 20 times a second: through the JVM each look costs ~1 ms of its CPU
    local = plan.packed and storage.is_local(plan.packed[0].chunks_uri)
    manifests = storage.LocalFileSystem() if local else fs
    rows = released = 0
    with ThreadPoolExecutor(parallelism + 1, thread_name_prefix="hepspark-parse") as pool:
        try:
            for chunk, lines in feed_chunks(spark, plan, manifests,
                                            on_packed=lambda done: inflate_bar.update(done / 1e6)):
                with lock:
                    parsed_bytes[1] += chunk.end - chunk.start
                placed.append((chunk, lines))
                rows += lines
                safe_start = rows - _test_rows(config, rows)
                while (released < len(placed)
                       and placed[released][0].first_row + placed[released][1] <= safe_start):
                    pending.append((placed[released][0], rule(test_start_row=safe_start)))
                    released += 1
                dispatch()
                for future, _ in jobs:  # a failed parse stops the conversion now
                    if future.done() and future.exception() is not None:
                        raise future.exception()
            if plan.packed:
                inflate_bar.close()
            if rows == 0:
                raise BadInputError(f"input {config.input!r} has no rows")
            test_rows = _test_rows(config, rows)
            if test_rows >= rows:
                raise ValueError(
                    f"test split ({test_rows:,d} rows) would take all {rows:,d} rows; "
                    "use a smaller --test-rows or --test-fraction"
                )
            final_rule = rule(test_start_row=rows - test_rows)
            pending.extend((chunk, final_rule) for chunk, _ in placed[released:])
            dispatch(last=True)
            done = [(chunk, result) for future, batch in jobs
                    for (chunk, _), result in zip(batch, future.result())]
        except BaseException:
            pool.shutdown(cancel_futures=True)  # the running jobs end before the cleanup
            raise
    results = [result for _, result in sorted(done, key=lambda pair: pair[0].first_row)]
    return results, rows, test_rows


def _rows_per_group(config: ConvertConfig, n_features: int) -> int:
    """Parquet rows per row group: ``rows_per_row_group``, else what fits in
    ``row_group_size_mb`` (row_index + label + features)."""
    if config.rows_per_row_group is not None:
        return config.rows_per_row_group
    return max(1, config.row_group_size_mb * (1 << 20) // (8 + 4 * (1 + n_features)))


def _test_rows(config: ConvertConfig, total_lines: int) -> int:
    if config.test_rows is not None:
        return config.test_rows
    if config.test_fraction is not None:
        return max(1, round(config.test_fraction * total_lines))
    if total_lines >= UCI_TEST_MIN_ROWS:
        return UCI_TEST_ROWS
    return max(1, round(DEFAULT_SMALL_TEST_FRACTION * total_lines))
