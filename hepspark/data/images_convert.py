"""Image files (NPZ / HDF5 / ROOT) → Petastorm Parquet dataset, on Spark.

The driver only reads file headers (row counts, shapes) and cuts the files into work
units of at most ``UNIT_ROWS`` rows; executors read the pixels. Two passes over the
input: the first validates every row (finite pixels and weights, integer labels in
range -- for ``generic``, class indices below ``MAX_GENERIC_CLASSES`` --, weights >= 0)
and gathers per-split class counts, weight sums and per-channel pixel statistics; the
second writes every split in one partitioned write. Splits are fixed per row by a hash of
its global index and the seed, so they do not depend on how the work is partitioned.

Layout written::

    DIR/<split>            Petastorm datasets: row_index (int64), label (int32),
                           weight (float32), image (bytes: float32 little-endian, H x W x C
                           row-major), one row per image
    DIR/hepspark_dataset.json   kind, class names, image shape, split row counts, class
                           counts, weight sums, pixel statistics, source files

Images are stored as raw bytes, not through a per-row codec: a batch decodes with one
``numpy.frombuffer`` (STACK.md: per-row NdarrayCodec decoding is the bottleneck, and
``make_batch_reader`` drops FixedSizeList columns).

>>> summary = convert_images(get_spark(), ImageConvertConfig("jets.h5", "data/jets", "jets"))
>>> summary.rows
{'train': ..., 'val': ..., 'test': ...}
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hepspark.data import convert, storage
from hepspark.data.image_files import (
    ArrayNames,
    ImageFile,
    UnreadableFileError,
    resolve_image_files,
)
from hepspark.data.petastorm_compat import quiet_petastorm

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

KINDS = ("jets", "lartpc", "generic")
UNIT_ROWS = 2_048  # rows per work unit (and per Arrow batch sent to the JVM)
# --kind generic takes its classes from the labels: 0..MAX_GENERIC_CLASSES-1. A larger
# label is a code (a PDG id such as 1000010020), not a class index; counting classes up to
# it made every executor build arrays of that length, and int32 wrapped labels >= 2**31.
MAX_GENERIC_CLASSES = 1000
FORMAT = "hepspark-images"


def split_names(kind: str) -> tuple[str, str, str]:
    """(train, validation, test) split names: LArTPC follows the seed's train / test A
    (epoch selection) / test B (final numbers)."""
    return ("train", "test_a", "test_b") if kind == "lartpc" else ("train", "val", "test")


def default_class_names(kind: str) -> tuple[str, ...] | None:
    if kind == "jets":
        from hepspark.data.jet_images import CLASS_NAMES
    elif kind == "lartpc":
        from hepspark.data.lartpc_images import CLASS_NAMES
    else:
        return None
    return CLASS_NAMES


class BadImageError(ValueError):
    """Malformed input rows; the message names file, row and field."""


@dataclass(frozen=True)
class ImageConvertConfig:
    """What ``hepspark convert images`` does; built from CLI flags, logged verbatim."""

    input: str
    output: str
    kind: str = "generic"
    images_key: str = "images"
    labels_key: str = "labels"
    weights_key: str | None = "weights"  # None: every weight is 1
    val_fraction: float = 0.1  # LArTPC: test A
    test_fraction: float = 0.2  # LArTPC: test B
    seed: int = 42
    on_bad_row: str = "fail"
    overwrite: bool = False
    row_group_size_mb: int = 8
    checksum: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        convert.check_convert_options(self.on_bad_row, self.row_group_size_mb)
        if not 0 <= self.val_fraction < 1 or not 0 < self.test_fraction < 1:
            raise ValueError("need 0 <= val_fraction < 1 and 0 < test_fraction < 1, got "
                             f"{self.val_fraction} and {self.test_fraction}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must leave rows to train on, got "
                             f"{self.val_fraction} + {self.test_fraction}")

    @property
    def names(self) -> ArrayNames:
        return ArrayNames(self.images_key, self.labels_key, self.weights_key)


@dataclass
class ImageConvertSummary(convert.DatasetSummary):
    """What ``hepspark convert images`` wrote (images per split)."""

    row_unit = "images"
    split_width = 6

    @property
    def images_per_s(self) -> float:
        total = sum(self.rows.values()) + self.bad_rows
        return total / self.seconds if self.seconds > 0 else float("nan")

    def rate(self) -> str:
        return f"{self.images_per_s:,.0f} images/s"


# ------------------------------------------------------------------- executor-side work
def assign_splits(row_index: np.ndarray, seed: int, val_fraction: float,
                  test_fraction: float) -> np.ndarray:
    """0 train, 1 validation, 2 test per global row index (a SplitMix64 hash: the same
    row gets the same split however the input is cut into work units)."""
    with np.errstate(over="ignore"):
        z = row_index.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return np.where(u < test_fraction, 2, np.where(u < test_fraction + val_fraction, 1, 0))


def _read_unit(unit: dict, names: ArrayNames, num_classes: int | None):
    """Read a work unit and flag its bad rows: (images, labels int32, weights, row_index,
    bad mask, first messages)."""
    images, labels, weights = ImageFile(unit["path"], names).read(unit["start"], unit["stop"])
    n = len(labels)
    row_index = unit["offset"] + np.arange(n, dtype=np.int64)
    if weights is None:
        weights = np.ones(n, np.float32)
    label_values = labels.astype(np.float64)
    integral = np.isfinite(label_values) & (label_values == np.round(label_values))
    if num_classes is not None:
        out_of_range = integral & ((label_values < 0) | (label_values >= num_classes))
        range_text = f"{names.labels}: outside 0..{num_classes - 1}"
    else:
        out_of_range = integral & ((label_values < 0) | (label_values >= MAX_GENERIC_CLASSES))
        range_text = (f"{names.labels}: outside 0..{MAX_GENERIC_CLASSES - 1}, the class "
                      "indices --kind generic takes (map particle codes to 0..K-1 first)")
    checks = [
        (~np.isfinite(images.reshape(n, -1)).all(axis=1), f"{names.images}: NaN or inf pixel",
         None),
        (~integral, f"{names.labels}: not an integer", labels),
        (out_of_range, range_text, labels),
        (~np.isfinite(weights), f"{names.weights}: NaN or inf", weights),
        (np.isfinite(weights) & (weights < 0), f"{names.weights}: negative", weights),
    ]
    bad = np.zeros(n, bool)
    messages = []
    for mask, text, values in checks:
        for i in np.flatnonzero(mask & ~bad)[:convert.MAX_REPORTED_BAD_ROWS]:
            found = "" if values is None else f" (found {values[i]})"
            messages.append((int(row_index[i]),
                             f"{unit['path']}: row {unit['start'] + i}: {text}{found}"))
        bad |= mask
    safe_labels = np.where(bad, 0, np.where(integral, label_values, 0)).astype(np.int32)
    return images, safe_labels, weights.astype(np.float32), row_index, bad, messages


def _unit_stats(unit, names, num_classes, seed, val_fraction, test_fraction) -> dict:
    """Pass 1 on an executor: bad rows, and per split: class counts, weight sums, and
    per-channel pixel sum, sum of squares and maximum."""
    images, labels, weights, row_index, bad, messages = _read_unit(unit, names, num_classes)
    split = assign_splits(row_index, seed, val_fraction, test_fraction)
    good = ~bad
    channels = images.shape[-1]
    stats = {"bad": int(bad.sum()), "messages": messages[:convert.MAX_REPORTED_BAD_ROWS],
             "max_label": int(labels[good].max()) if good.any() else -1, "splits": {}}
    for s in range(3):
        sel = good & (split == s)
        pixels = images[sel].reshape(-1, channels).astype(np.float64)
        stats["splits"][s] = {
            "labels": np.bincount(labels[sel], minlength=1).tolist(),
            "weights": np.bincount(labels[sel], weights=weights[sel], minlength=1).tolist(),
            "pixel_sum": pixels.sum(axis=0).tolist(),
            "pixel_sq": (pixels**2).sum(axis=0).tolist(),
            "pixel_max": (pixels.max(axis=0) if len(pixels) else np.zeros(channels)).tolist(),
            "pixels": int(pixels.shape[0]),
        }
    return stats


def _unit_batches(batches, names, num_classes, seed, val_fraction, test_fraction):
    """Pass 2 (``mapInArrow``): the good rows of each unit, with their split, as Arrow."""
    import pyarrow as pa

    for batch in batches:
        for unit in batch.to_pylist():
            images, labels, weights, row_index, bad, _ = _read_unit(unit, names, num_classes)
            keep = ~bad
            if not keep.any():
                continue
            split = assign_splits(row_index[keep], seed, val_fraction, test_fraction)
            images = np.ascontiguousarray(images[keep], dtype="<f4")
            n = len(images)
            row_bytes = images[0].nbytes
            offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * row_bytes).tobytes())
            blob = pa.Array.from_buffers(pa.binary(), n, [None, offsets,
                                                          pa.py_buffer(images.tobytes())])
            yield pa.RecordBatch.from_arrays(
                [pa.array(split.astype(np.int32)), pa.array(row_index[keep]),
                 pa.array(labels[keep]), pa.array(weights[keep]), blob],
                names=["split", "row_index", "label", "weight", "image"],
            )


# ---------------------------------------------------------------------------- the driver
def _unischema():
    from petastorm.codecs import ScalarCodec
    from petastorm.unischema import Unischema, UnischemaField
    from pyspark.sql.types import BinaryType, FloatType, IntegerType, LongType

    return Unischema("ImageSchema", [
        UnischemaField("row_index", np.int64, (), ScalarCodec(LongType()), False),
        UnischemaField("label", np.int32, (), ScalarCodec(IntegerType()), False),
        UnischemaField("weight", np.float32, (), ScalarCodec(FloatType()), False),
        UnischemaField("image", np.bytes_, (), ScalarCodec(BinaryType()), False),
    ])


def _work_units(files: list[ImageFile]) -> list[dict]:
    units, offset = [], 0
    for f in files:
        # .npz members decompress whole, so an .npz file is one unit; HDF5/ROOT slice.
        step = f.rows if f.path.endswith(".npz") else UNIT_ROWS
        for start in range(0, f.rows, max(step, 1)):
            stop = min(start + step, f.rows)
            units.append({"path": f.path, "start": start, "stop": stop,
                          "offset": offset + start})
        offset += f.rows
    return units


def convert_images(
    spark: "SparkSession",
    config: ImageConvertConfig,
    progress: Callable[[str], None] = print,
) -> ImageConvertSummary:
    """Convert image file(s) into a Petastorm dataset; see the module docstring."""
    from petastorm.etl.dataset_metadata import materialize_dataset

    start = time.perf_counter()
    paths = resolve_image_files(config.input)
    files = [ImageFile(p, config.names) for p in paths]
    shapes = {f.image_shape for f in files}
    if len(shapes) > 1:
        first = files[0]
        other = next(f for f in files if f.image_shape != first.image_shape)
        raise BadImageError(f"image shapes differ: {first.path} has {first.image_shape}, "
                            f"{other.path} has {other.image_shape}")
    image_shape = files[0].image_shape
    total = sum(f.rows for f in files)
    if total == 0:
        raise BadImageError(f"input {config.input!r} has no images")
    output = convert.DatasetOutput(spark, config.output, overwrite=config.overwrite,
                                   progress=progress)
    fs = output.fs
    input_bytes = convert.local_input_bytes(paths)
    progress(f"[convert] {len(files)} file(s), {total:,d} images of {image_shape}, "
             f"{input_bytes / 1e6:,.1f} MB")

    names = config.names
    class_names = default_class_names(config.kind)
    num_classes = len(class_names) if class_names else None
    fractions = (config.seed, config.val_fraction, config.test_fraction)
    units = _work_units(files)
    sc = spark.sparkContext
    with _executor_read_errors():
        stats = sc.parallelize(units, len(units)).map(
            lambda unit: _unit_stats(unit, names, num_classes, *fractions)
        ).collect()
    bad_rows = sum(s["bad"] for s in stats)
    examples = [m for _, m in sorted(m for s in stats for m in s["messages"])]
    examples = examples[:convert.MAX_REPORTED_BAD_ROWS]
    convert.apply_bad_row_policy(bad_rows, examples, config.on_bad_row, BadImageError,
                                 "malformed image row(s)", progress)
    if num_classes is None:
        num_classes = max(s["max_label"] for s in stats) + 1
        class_names = tuple(str(i) for i in range(num_classes))
    split_meta = _merge_stats(stats, num_classes, image_shape[-1], config.kind)
    progress(f"[convert] validated {total:,d} images ({time.perf_counter() - start:.1f} s)")
    train_name = split_names(config.kind)[0]
    if split_meta[train_name]["rows"] == 0:
        raise BadImageError("no valid training rows left after the split")

    from pyspark.sql import Row

    units_df = spark.createDataFrame([Row(**u) for u in units]).repartition(len(units))
    schema = _unischema()
    frame = units_df.mapInArrow(
        lambda batches: _unit_batches(batches, names, num_classes, *fractions),
        "split int, row_index long, label int, weight float, image binary",
    )
    present = [(i, n) for i, n in enumerate(split_names(config.kind)) if split_meta[n]["rows"]]
    with output.build() as tmp_uri:
        # One pass writes every split (partitioned by split), then each partition is
        # renamed to its split's directory and given its Petastorm metadata.
        t0 = time.perf_counter()
        staging = storage.join(tmp_uri, "_all")
        first_uri = storage.join(tmp_uri, present[0][1])
        with quiet_petastorm(), _executor_read_errors():
            with materialize_dataset(spark, first_uri, schema, config.row_group_size_mb):
                frame.sortWithinPartitions("split", "row_index").write.partitionBy(
                    "split").option("compression", "zstd").parquet(staging)
                for index, name in present:
                    fs.rename(storage.join(staging, f"split={index}"),
                              storage.join(tmp_uri, name))
            for _, name in present[1:]:
                with materialize_dataset(spark, storage.join(tmp_uri, name), schema,
                                         config.row_group_size_mb):
                    pass  # the files are written: only the metadata is generated here
        fs.delete(staging)
        progress("[convert] wrote " + ", ".join(
            f"{name}: {split_meta[name]['rows']:,d}" for _, name in present)
            + f" images ({time.perf_counter() - t0:.1f} s)")
        train, val, test = split_names(config.kind)
        image_fields = {
            "kind": config.kind,
            "class_names": list(class_names),
            "num_classes": num_classes,
            "image_shape": list(image_shape),
            "image_encoding": "float32 little-endian bytes, H x W x C row-major",
            "train_split": train,
            "validation_split": val,
            "test_split": test,
            "splits": split_meta,
            "pixel_stats": split_meta[train].pop("pixel_stats"),
        }
        split_rule = (f"splitmix64(row_index, seed={config.seed}): "
                      f"u < {config.test_fraction} -> {test}, "
                      f"u < {config.test_fraction + config.val_fraction:.6g} -> {val}")
        for name in (val, test):
            split_meta[name].pop("pixel_stats")
        output.write_metadata(  # last: marks the dataset complete
            tmp_uri, FORMAT, image_fields,
            source=convert.source_metadata(paths, input_bytes, config.checksum, rows=total),
            bad_rows=bad_rows, bad_row_examples=examples, split_rule=split_rule, config=config,
        )
    return ImageConvertSummary(
        output=output.uri,
        rows={name: split_meta[name]["rows"] for name in split_names(config.kind)},
        bad_rows=bad_rows,
        bad_row_examples=examples,
        input_bytes=input_bytes,
        seconds=time.perf_counter() - start,
    )


@contextlib.contextmanager
def _executor_read_errors():
    """An input file an executor could not read (``UnreadableFileError`` in its Python
    worker) reaches the driver inside a Spark error with the worker's traceback; raise it
    here as itself: one line naming the file and rows."""
    try:
        yield
    except Exception as exc:
        marker = f"{UnreadableFileError.__name__}: "
        line = next((ln for ln in str(exc).splitlines() if marker in ln), None)
        if line is None:
            raise
        raise UnreadableFileError(line.split(marker, 1)[1].strip()) from exc


def _merge_stats(stats: list[dict], num_classes: int, channels: int, kind: str) -> dict:
    """Per split: rows, class counts, class weight sums, per-channel pixel mean/std/max."""
    merged = {}
    for index, name in enumerate(split_names(kind)):
        counts = np.zeros(num_classes, np.int64)
        weights = np.zeros(num_classes)
        pixel_sum, pixel_sq, pixel_max = np.zeros(channels), np.zeros(channels), np.zeros(channels)
        pixels = 0
        for s in stats:
            part = s["splits"][index]
            counts[: len(part["labels"])] += part["labels"]
            weights[: len(part["weights"])] += part["weights"]
            pixel_sum += part["pixel_sum"]
            pixel_sq += part["pixel_sq"]
            pixel_max = np.maximum(pixel_max, part["pixel_max"])
            pixels += part["pixels"]
        mean = pixel_sum / max(pixels, 1)
        std = np.sqrt(np.maximum(pixel_sq / max(pixels, 1) - mean**2, 0.0))
        merged[name] = {
            "rows": int(counts.sum()),
            "path": name,
            "class_counts": counts.tolist(),
            "class_weight_sums": weights.tolist(),
            "pixel_stats": {"mean": mean.tolist(), "std": std.tolist(),
                            "max": pixel_max.tolist()},
        }
    return merged
