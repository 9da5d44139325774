"""Read a converted HIGGS dataset for training: Petastorm batches → standardized numpy.

- :class:`HiggsDataset` opens a dataset directory (its ``hepspark_dataset.json``) and knows
  the features, the split sizes and the standardization of the train split.
- :meth:`HiggsDataset.iter_batches` streams one epoch of ``(x, y)`` batches through
  Petastorm's ``make_batch_reader``, optionally one shard of it (rank / world size).
  Petastorm 0.13.1's default thread pool sometimes yields an *empty epoch without error*
  (a race in ``ThreadPool.get_results``, STACK.md), so we use the ``dummy`` (in-process)
  pool and check the row count of every epoch against the Parquet footers.
- :meth:`HiggsDataset.load` reads a whole split into memory (validation and test sets).
- :func:`make_tf_dataset` wraps an epoch iterator as a ``tf.data.Dataset``.

>>> ds = HiggsDataset("data/higgs", features="all")
>>> for x, y in ds.iter_batches("train", batch_size=1000, shuffle=True, seed=1):
...     pass
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from hepspark.data import storage
from hepspark.data.higgs_schema import LABEL, feature_set
from hepspark.data.petastorm_compat import close_reader, quiet_petastorm

READER_POOLS = ("dummy", "process", "thread")


class EpochRowCountError(RuntimeError):
    """An epoch delivered a different number of rows than the dataset holds."""


@dataclass(frozen=True)
class Standardizer:
    """``(x - mean) / std`` with the train-split statistics stored in the dataset."""

    mean: np.ndarray
    std: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32, copy=False)

    def to_dict(self, features: list[str]) -> dict:
        return {"features": features, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "Standardizer":
        return cls(np.asarray(data["mean"], np.float32), np.asarray(data["std"], np.float32))


class HiggsDataset:
    """A converted HIGGS dataset, restricted to a feature set (``all``, ``low``, ``high``)."""

    def __init__(self, path: str, features: str | None = None) -> None:
        self.uri = storage.to_uri(path)
        self.metadata = storage.read_metadata(self.uri)
        if self.metadata.get("format") != "hepspark-higgs":
            raise ValueError(f"{path} is not a HIGGS dataset (format {self.metadata.get('format')})")
        stored = list(self.metadata["features"])
        wanted = list(feature_set(features)) if features else stored
        missing = [f for f in wanted if f not in stored]
        if missing:
            raise ValueError(
                f"features {missing} are not stored in {path} (it holds the "
                f"'{self.metadata['feature_set']}' set); convert with --features all"
            )
        self.feature_set = features or self.metadata["feature_set"]
        self.features = wanted
        index = [stored.index(f) for f in wanted]
        stats = self.metadata["standardize"]
        self._row_groups: dict[str, list[int]] = {}
        self.standardizer = Standardizer(
            np.asarray(stats["mean"], np.float32)[index], np.asarray(stats["std"], np.float32)[index]
        )

    def __repr__(self) -> str:
        rows = {s: v["rows"] for s, v in self.metadata["splits"].items()}
        return f"HiggsDataset({self.uri!r}, features={self.feature_set!r}, rows={rows})"

    @property
    def name(self) -> str:
        return os.path.basename(self.uri.rstrip("/"))

    def rows(self, split: str) -> int:
        return int(self._split(split)["rows"])

    def split_uri(self, split: str) -> str:
        return storage.join(self.uri, self._split(split)["path"])

    def _split(self, split: str) -> dict:
        splits = self.metadata["splits"]
        if split not in splits:
            raise ValueError(f"split must be one of {sorted(splits)}, got {split!r}")
        if splits[split]["rows"] == 0:
            raise ValueError(f"split {split!r} of {self.uri} is empty")
        return splits[split]

    def row_group_sizes(self, split: str) -> list[int]:
        """Rows per row group, in the order Petastorm enumerates them (files sorted by path)."""
        if split not in self._row_groups:
            self._row_groups[split] = parquet_row_group_sizes(self.split_uri(split))
        return self._row_groups[split]

    def shard_rows(self, split: str, shard: int = 0, num_shards: int = 1) -> int:
        """Rows a shard reads: Petastorm gives row group ``i`` to shard ``i % num_shards``."""
        _check_shard(shard, num_shards)
        sizes = self.row_group_sizes(split)
        if len(sizes) < num_shards:
            raise ValueError(
                f"split {split!r} has {len(sizes)} row groups, fewer than {num_shards} shards; "
                "convert with a smaller --row-group-size-mb"
            )
        return sum(sizes[shard::num_shards])

    def iter_batches(
        self,
        split: str,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int | None = None,
        shard: int = 0,
        num_shards: int = 1,
        drop_last: bool = False,
        standardize: bool = True,
        reader_pool: str = "dummy",
        max_batches: int | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch of ``(x float32 [B, F], y float32 [B])`` batches from Petastorm.

        Shuffling is by row group (Petastorm) and within a buffer of row groups (here).
        Raises :class:`EpochRowCountError` if the epoch did not deliver every row of the
        shard. ``max_batches`` stops early (no row-count check then).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if reader_pool not in READER_POOLS:
            raise ValueError(f"reader_pool must be one of {READER_POOLS}, got {reader_pool!r}")
        batches = self._raw_batches(
            split, batch_size, shuffle, seed, shard, num_shards, drop_last, reader_pool
        )
        if max_batches is not None:
            batches = itertools.islice(batches, max_batches)
        for x, y in batches:
            yield (self.standardizer(x) if standardize else x), y

    def _raw_batches(
        self, split, batch_size, shuffle, seed, shard, num_shards, drop_last, reader_pool
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        expected = self.shard_rows(split, shard, num_shards)
        rng = np.random.default_rng(seed)
        delivered = 0
        pending_x: list[np.ndarray] = []
        pending_y: list[np.ndarray] = []
        # Several row groups are mixed before slicing batches: shuffling within one row
        # group only would keep neighbouring rows of the file together.
        buffer_rows = max(4 * batch_size, 200_000) if shuffle else batch_size

        def mix() -> tuple[np.ndarray, np.ndarray]:
            xs, ys = np.concatenate(pending_x), np.concatenate(pending_y)
            if shuffle:
                order = rng.permutation(len(ys))
                xs, ys = xs[order], ys[order]
            return xs, ys

        for x, y in self._iter_row_groups(split, shuffle, seed, shard, num_shards, reader_pool):
            delivered += len(y)
            pending_x.append(x)
            pending_y.append(y)
            if sum(len(p) for p in pending_y) < buffer_rows:
                continue
            xs, ys = mix()
            n_full = len(ys) // batch_size * batch_size
            yield from _slices(xs[:n_full], ys[:n_full], batch_size)
            pending_x, pending_y = [xs[n_full:]], [ys[n_full:]]
        if delivered != expected:
            raise EpochRowCountError(
                f"epoch of {self.split_uri(split)} (shard {shard}/{num_shards}) delivered "
                f"{delivered} rows, expected {expected}"
            )
        if sum(len(p) for p in pending_y):
            xs, ys = mix()
            keep = len(ys) // batch_size * batch_size if drop_last else len(ys)
            yield from _slices(xs[:keep], ys[:keep], batch_size)

    def _iter_row_groups(self, split, shuffle, seed, shard, num_shards, reader_pool):
        from petastorm import make_batch_reader

        sharding = {"cur_shard": shard, "shard_count": num_shards} if num_shards > 1 else {}
        with quiet_petastorm():
            reader = make_batch_reader(
                self.split_uri(split),
                schema_fields=[LABEL, *self.features],
                reader_pool_type=reader_pool,
                workers_count=2 if reader_pool != "dummy" else 1,
                shuffle_row_groups=shuffle,
                seed=seed,
                num_epochs=1,
                **sharding,
            )
        try:
            for batch in reader:
                columns = batch._asdict()
                x = np.column_stack([columns[f] for f in self.features]).astype(
                    np.float32, copy=False
                )
                yield x, np.asarray(columns[LABEL], np.float32)
        finally:
            close_reader(reader)

    def load(self, split: str, standardize: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The whole split in memory, in file order: ``(x [N, F], y [N])``."""
        import pyarrow.fs
        import pyarrow.parquet as pq

        filesystem, root = pyarrow.fs.FileSystem.from_uri(self.split_uri(split))
        table = pq.read_table(root, columns=[LABEL, *self.features], filesystem=filesystem)
        x = np.column_stack([table.column(f).to_numpy() for f in self.features]).astype(
            np.float32, copy=False
        )
        y = table.column(LABEL).to_numpy().astype(np.float32, copy=False)
        if len(y) != self.rows(split):
            raise EpochRowCountError(f"read {len(y)} rows of {split}, expected {self.rows(split)}")
        return (self.standardizer(x) if standardize else x), y


def parquet_row_group_sizes(uri: str) -> list[int]:
    """Rows per row group of a Parquet dataset, in the order Petastorm enumerates them
    (files sorted by path)."""
    import pyarrow.fs
    import pyarrow.parquet as pq

    filesystem, root = pyarrow.fs.FileSystem.from_uri(uri)
    infos = filesystem.get_file_info(pyarrow.fs.FileSelector(root))
    files = sorted(i.path for i in infos if i.path.endswith(".parquet"))
    sizes = []
    for path in files:
        meta = pq.ParquetFile(filesystem.open_input_file(path)).metadata
        sizes += [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    return sizes


def _slices(
    x: np.ndarray, y: np.ndarray, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Consecutive batches of ``batch_size`` rows; the last one may be shorter."""
    for start in range(0, len(y), batch_size):
        yield x[start : start + batch_size], y[start : start + batch_size]


def _check_shard(shard: int, num_shards: int) -> None:
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(f"need 0 <= shard < num_shards, got shard={shard}, num_shards={num_shards}")


def make_tf_dataset(dataset: HiggsDataset, split: str, batch_size: int, **kwargs):
    """A ``tf.data.Dataset`` over one epoch of :meth:`HiggsDataset.iter_batches`.

    Each iteration of the returned dataset re-opens the reader (one epoch, shuffled anew
    when ``shuffle`` is set; seed + epoch keeps runs reproducible).
    """
    import tensorflow as tf

    n_features = len(dataset.features)
    epoch = {"n": 0}
    base_seed = kwargs.pop("seed", None)

    def generator():
        seed = None if base_seed is None else base_seed + epoch["n"]
        epoch["n"] += 1
        yield from dataset.iter_batches(split, batch_size, seed=seed, **kwargs)

    signature = (
        tf.TensorSpec(shape=(None, n_features), dtype=tf.float32),
        tf.TensorSpec(shape=(None,), dtype=tf.float32),
    )
    rows = dataset.shard_rows(split, kwargs.get("shard", 0), kwargs.get("num_shards", 1))
    n_batches = rows // batch_size if kwargs.get("drop_last") else -(-rows // batch_size)
    tfds = tf.data.Dataset.from_generator(generator, output_signature=signature)
    # A known length lets Keras show a real per-epoch progress bar and end epochs cleanly.
    return tfds.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(2)
