"""HIGGS CSV (UCI layout) → Petastorm Parquet dataset with train / val / test splits.

Everything heavy runs in the JVM (text scan, split, cast, validation, statistics), so the
11M-row file converts at Spark speed. Row order is recovered exactly — it defines the UCI
test split (the last 500,000 rows) and the line numbers in error messages — from each
row's file, its file block and ``monotonically_increasing_id`` (sequential within a task).

Layout written::

    DIR/train, DIR/val, DIR/test    Petastorm datasets, one float32 column per feature
    DIR/hepspark_dataset.json       features, row counts, standardization, source, checksum

>>> cfg = ConvertConfig(input="HIGGS.csv.gz", output="data/higgs")
>>> summary = convert_higgs(get_spark(), cfg)
>>> summary.rows
{'train': ..., 'val': ..., 'test': ...}
"""
from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from hepspark.data import convert, storage
from hepspark.data.higgs_schema import COLUMNS, LABEL, UCI_TEST_ROWS, feature_set
from hepspark.data.petastorm_compat import quiet_petastorm

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SPLITS = ("train", "val", "test")
# Files with fewer rows than this get a test *fraction* by default instead of the UCI
# 500,000 rows (which would leave nothing to train on).
UCI_TEST_MIN_ROWS = 5_000_000
DEFAULT_SMALL_TEST_FRACTION = 0.1
# Spark's string -> double cast follows Java's Double.parseDouble: it also accepts "1.0d",
# "2f", hex floats ("0x1p3") and strips control characters such as NUL. A good line holds
# only the characters of plain decimal numbers; one regex per line keeps that cheap.
GOOD_LINE_CHARS = r"^[0-9eE.+\-, \t\r]*$"
PLAIN_NUMBER = r"^[ \t\r]*[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?[ \t\r]*$"
FLOAT32_MAX = float(np.finfo(np.float32).max)


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

    def __post_init__(self) -> None:
        feature_set(self.features)
        convert.check_convert_options(self.on_bad_row, self.row_group_size_mb)
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


def _read_lines_with_position(spark: "SparkSession", paths: list[str]) -> "DataFrame":
    """Text lines with ``line`` (1-based, per file) and ``row_index`` (0-based, global).

    Files are ordered as given (sorted by name); inside a file, lines are ordered by the
    block they come from and by ``monotonically_increasing_id``, which counts up within a
    task. Per-block counts are collected (a handful of rows) to turn that into positions.
    """
    from pyspark.sql import functions as F

    raw = spark.read.text(paths).select(
        "value",
        F.col("_metadata.file_path").alias("file"),
        F.col("_metadata.file_block_start").alias("block"),
        F.monotonically_increasing_id().alias("mid"),
    )
    blocks = (
        raw.groupBy("file", "block")
        .agg(F.min("mid").alias("first_mid"), F.count(F.lit(1)).alias("n"))
        .collect()
    )
    file_order = {_norm(p): i for i, p in enumerate(paths)}
    blocks.sort(key=lambda r: (file_order.get(_norm(r["file"]), len(paths)), r["file"], r["block"]))
    offsets, global_offset, line_offset, current_file = [], 0, 0, None
    for b in blocks:
        if b["file"] != current_file:
            current_file, line_offset = b["file"], 0
        offsets.append((b["file"], b["block"], b["first_mid"], line_offset, global_offset))
        line_offset += b["n"]
        global_offset += b["n"]
    offset_df = spark.createDataFrame(
        offsets, "file string, block long, first_mid long, line_offset long, row_offset long"
    )
    within = F.col("mid") - F.col("first_mid")
    return raw.join(F.broadcast(offset_df), ["file", "block"]).select(
        "value",
        "file",
        (F.col("line_offset") + within + 1).alias("line"),
        (F.col("row_offset") + within).alias("row_index"),
    )


def _norm(uri: str) -> str:
    # Spark reports file:/a/b or file:///a/b depending on version; compare paths only.
    return storage.local_path(uri) if uri.startswith("file:") else uri


def _fields():
    """Column expressions of a text line: its comma-split parts, each field trimmed, and
    each field cast to double (NULL where it is not a number)."""
    from pyspark.sql import functions as F

    parts = F.split(F.col("value"), ",")
    raw = [F.trim(parts.getItem(i)) for i in range(len(COLUMNS))]
    return parts, raw, [r.cast("double") for r in raw]


def _parse(lines: "DataFrame") -> "DataFrame":
    """Split and cast in the JVM, with one cheap ``bad`` flag per row.

    The sum of all 29 values (as stored, float32) is NULL if any field is missing or not a
    number, and NaN or infinite if any is, or overflows float32: one expression instead of
    29 per-field checks (which cost 4x the parse itself). One regex per line refuses what
    only Java's number syntax accepts. Messages are built later, by
    :func:`_explain_bad_rows`, for bad rows only.
    """
    from pyspark.sql import functions as F

    parts, _, nums = _fields()
    stored = [num.cast("float") for num in nums]
    total = stored[0].cast("double")
    for value in stored[1:]:
        total = total + value.cast("double")
    bad = (
        (F.size(parts) != len(COLUMNS))
        | total.isNull()
        | F.isnan(total)
        | (F.abs(total) == float("inf"))
        | ~nums[0].isin(0.0, 1.0)
        | ~F.col("value").rlike(GOOD_LINE_CHARS)
    )
    return lines.select(
        "value",
        "file",
        "line",
        "row_index",
        bad.alias("bad"),
        *[value.alias(name) for value, name in zip(stored, COLUMNS)],
    )


def _explain_bad_rows(bad_rows: "DataFrame") -> "DataFrame":
    """``file``, ``line`` and an ``error`` naming the first offending field, per bad row."""
    from pyspark.sql import functions as F

    n_expected = len(COLUMNS)
    parts, raw, num = _fields()
    error = F.when(
        F.size(parts) != n_expected,
        F.format_string(f"expected {n_expected} comma-separated fields, found %d", F.size(parts)),
    )
    for i, name in enumerate(COLUMNS):
        error = error.when(
            num[i].isNull(), F.format_string(f"field {i + 1} ({name}): not a number: '%s'", raw[i])
        )
    for i, name in enumerate(COLUMNS):
        error = error.when(
            F.isnan(num[i]) | (F.abs(num[i]) == float("inf")),
            F.format_string(f"field {i + 1} ({name}): %s is not finite", raw[i]),
        )
    for i, name in enumerate(COLUMNS):
        error = error.when(
            F.abs(num[i]) > FLOAT32_MAX,
            F.format_string(f"field {i + 1} ({name}): %s is beyond the float32 range", raw[i]),
        )
    for i, name in enumerate(COLUMNS):
        error = error.when(
            ~parts.getItem(i).rlike(PLAIN_NUMBER),
            F.format_string(f"field {i + 1} ({name}): not a plain decimal number: '%s'", raw[i]),
        )
    error = error.otherwise(
        F.format_string("field 1 (label): must be 0 or 1, found %s", raw[0])
    )
    return bad_rows.select("file", "line", "row_index", error.alias("error"))


def row_verdicts(spark: "SparkSession", input: str) -> list[dict]:
    """Every line of the (small) input as the converter judges it, in order: ``file``,
    ``line``, ``row_index``, ``bad``, the stored values and, for bad lines, the ``error``
    that ``hepspark convert higgs`` reports - the conversion's own expressions (for tests
    and for checking a file)."""
    from pyspark.sql import functions as F

    lines = _read_lines_with_position(spark, resolve_inputs(input))
    rows = [r.asDict() for r in _parse(lines).drop("value").orderBy("row_index").collect()]
    # Messages for the bad rows only, as in convert_higgs. (Joined here, not in Spark: a
    # join of these two plans makes Catalyst's constraint propagation exhaust the heap.)
    errors = dict(
        _explain_bad_rows(_parse(lines).filter(F.col("bad"))).select("row_index", "error")
        .collect()
    )
    for row in rows:
        row["error"] = errors.get(row["row_index"])
    return rows


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


# How a truncated or corrupt compressed input shows in the executor's Java error (Hadoop's
# codecs: gzip, bzip2, zstd ...); it reaches the driver as a Py4JJavaError.
_DAMAGED_INPUT_MARKERS = ("java.io.EOFException", "Unexpected end of input stream",
                          "java.util.zip.ZipException", "Not in GZIP format",
                          "incorrect header check", "invalid block type",
                          "invalid distance", "Corrupt GZIP trailer")


def convert_higgs(
    spark: "SparkSession",
    config: ConvertConfig,
    progress: Callable[[str], None] = print,
) -> ConvertSummary:
    """Convert HIGGS CSV file(s) into a Petastorm dataset; see the module docstring. A
    compressed input that ends early or is corrupt is a :class:`BadInputError`."""
    try:
        return _convert_higgs(spark, config, progress)
    except Exception as exc:
        text = str(exc)
        marker = next((m for m in _DAMAGED_INPUT_MARKERS if m in text), None)
        if marker is None:
            raise
        detail = next(line.strip() for line in text.splitlines() if marker in line)
        detail = detail.split("): ", 1)[-1][:200]  # drop Spark's "Lost task ... (TID n)"
        raise BadInputError(
            f"input {config.input}: truncated or corrupt compressed file ({detail}); "
            "re-copy or re-download it (check it with 'gzip -t FILE')"
        ) from exc


def _convert_higgs(
    spark: "SparkSession",
    config: ConvertConfig,
    progress: Callable[[str], None],
) -> ConvertSummary:
    from petastorm.etl.dataset_metadata import materialize_dataset
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    start = time.perf_counter()
    features = feature_set(config.features)
    paths = resolve_inputs(config.input)
    output = convert.DatasetOutput(spark, config.output, overwrite=config.overwrite,
                                   progress=progress)
    input_bytes = convert.local_input_bytes(paths)
    progress(f"[convert] reading {len(paths)} file(s), {input_bytes / 1e6:,.1f} MB")

    lines = _read_lines_with_position(spark, paths)
    parallelism = spark.sparkContext.defaultParallelism
    if lines.rdd.getNumPartitions() < parallelism:
        # A .gz file is one partition: spread the lines so that parsing and writing use
        # every core (row_index keeps the order that the splits depend on).
        lines = lines.repartition(parallelism)
    # One cached, parsed copy (numbers only, not the text) feeds the statistics pass and
    # the three writers.
    parsed = _parse(lines).drop("value").persist(StorageLevel.MEMORY_AND_DISK)
    try:
        total_lines = parsed.count()
        if total_lines == 0:
            raise BadInputError(f"input {config.input!r} has no rows")
        progress(f"[convert] {total_lines:,d} lines parsed ({time.perf_counter() - start:.1f} s)")
        test_rows = _test_rows(config, total_lines)
        if test_rows >= total_lines:
            raise ValueError(
                f"test split ({test_rows:,d} rows) would take all {total_lines:,d} rows; "
                "use a smaller --test-rows or --test-fraction"
            )
        val_threshold = int(round(config.val_fraction * 1_000_000))
        split = (
            F.when(F.col("bad"), F.lit("bad"))
            .when(F.col("row_index") >= total_lines - test_rows, F.lit("test"))
            .when(
                F.pmod(F.xxhash64(F.col("row_index"), F.lit(config.seed)), F.lit(1_000_000))
                < val_threshold,
                F.lit("val"),
            )
            .otherwise(F.lit("train"))
        )
        labelled = parsed.withColumn("split", split)

        stats = (
            labelled.groupBy("split")
            .agg(
                F.count(F.lit(1)).alias("rows"),
                *[F.avg(f).alias(f"mean_{i}") for i, f in enumerate(features)],
                *[F.stddev_pop(f).alias(f"std_{i}") for i, f in enumerate(features)],
            )
            .collect()
        )
        by_split = {r["split"]: r for r in stats}
        bad_rows = by_split["bad"]["rows"] if "bad" in by_split else 0
        examples = []
        if bad_rows:
            first_bad = (
                # Rare path: re-read the text of the bad rows only to say what is wrong.
                _explain_bad_rows(_parse(lines).filter(F.col("bad")))
                .orderBy("row_index")
                .limit(convert.MAX_REPORTED_BAD_ROWS)
                .collect()
            )
            examples = [f"{_norm(r['file'])}:{r['line']}: {r['error']}" for r in first_bad]
            convert.apply_bad_row_policy(bad_rows, examples, config.on_bad_row, BadInputError,
                                         "malformed row(s) in the input", progress)
        if "train" not in by_split:
            raise BadInputError("no valid training rows left after the test/val split")
        train = by_split["train"]
        mean = [float(train[f"mean_{i}"]) for i in range(len(features))]
        std = [float(train[f"std_{i}"]) for i in range(len(features))]
        constant = [f for f, s in zip(features, std) if not s > 0]
        if constant:
            progress(f"[convert] warning: constant feature(s) {constant}; using std = 1")
        std = [s if s > 0 else 1.0 for s in std]
        rows = {s: int(by_split[s]["rows"]) if s in by_split else 0 for s in SPLITS}

        schema = _unischema(features)
        columns = ["row_index", LABEL, *features]
        with output.build() as tmp_uri:
            for name in SPLITS:
                if rows[name] == 0:
                    continue
                t0 = time.perf_counter()
                # One file per cached partition, sorted by row_index; readers
                # shard by row group (row_group_size_mb), so the file count does not matter.
                part = (
                    labelled.filter(F.col("split") == name)
                    .select(*columns)
                    .sortWithinPartitions("row_index")
                )
                split_uri = storage.join(tmp_uri, name)
                with quiet_petastorm(), materialize_dataset(
                    spark, split_uri, schema, config.row_group_size_mb
                ):
                    part.write.mode("overwrite").parquet(split_uri)
                progress(
                    f"[convert] wrote {name}: {rows[name]:,d} rows "
                    f"({time.perf_counter() - t0:.1f} s)"
                )
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
    finally:
        parsed.unpersist()
    return ConvertSummary(
        output=output.uri,
        rows=rows,
        bad_rows=bad_rows,
        bad_row_examples=examples,
        input_bytes=input_bytes,
        seconds=time.perf_counter() - start,
        features=list(features),
    )


def _test_rows(config: ConvertConfig, total_lines: int) -> int:
    if config.test_rows is not None:
        return config.test_rows
    if config.test_fraction is not None:
        return max(1, round(config.test_fraction * total_lines))
    if total_lines >= UCI_TEST_MIN_ROWS:
        return UCI_TEST_ROWS
    return max(1, round(DEFAULT_SMALL_TEST_FRACTION * total_lines))
