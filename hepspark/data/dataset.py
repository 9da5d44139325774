"""What every converted dataset shares: split metadata, sharding, shuffled epochs, row-count
checks, the Petastorm reader and the ``tf.data`` wrapper.

A *kind* of dataset subclasses :class:`PetastormDataset` and says only what differs: its
``format`` (the ``hepspark_dataset.json`` format it opens), the Petastorm ``columns`` it
reads, how a batch of those columns becomes arrays (:meth:`~PetastormDataset.decode_columns`)
and how a whole split is loaded. :class:`~hepspark.data.readers.HiggsDataset` adds the
feature columns and standardization, :class:`~hepspark.data.image_dataset.ImageDataset`
image decoding and weights.

Petastorm 0.13.1's default thread pool sometimes yields an *empty epoch without error* (a
race in ``ThreadPool.get_results``, STACK.md), so epochs use the ``dummy`` (in-process)
pool by default and every epoch's row count is checked against the Parquet footers.

>>> ds = HiggsDataset("data/higgs")                      # any PetastormDataset subclass
>>> ds.shard_rows("train", shard=1, num_shards=4)        # row groups 1, 5, 9, ...
>>> batches = ds.iter_batches("train", 256, shuffle=True, seed=1, shard=1, num_shards=4)
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np

from hepspark.data import storage
from hepspark.data.petastorm_compat import close_reader, quiet_petastorm

READER_POOLS = ("dummy", "process", "thread")
# How an epoch reads its row groups: Petastorm (the Spark engines' reader), or pyarrow
# directly (the torch engine's ranks: no Petastorm there, the same row groups and order).
READERS = ("petastorm", "pyarrow")
# Split names of a dataset whose metadata does not name them (HIGGS).
DEFAULT_SPLITS = ("train", "val", "test")

Batch = tuple[np.ndarray, ...]


class EpochRowCountError(RuntimeError):
    """An epoch delivered a different number of rows than the dataset holds."""


class PetastormDataset:
    """A dataset directory written by ``hepspark convert`` (its ``hepspark_dataset.json``).

    Subclasses set ``format``, ``description`` (and ``how_to_create``) and
    ``shuffle_buffer_min_rows``, and implement :attr:`columns` and :meth:`decode_columns`.
    """

    format: ClassVar[str]
    description: ClassVar[str]  # "PATH is not <description> (format ...)<how_to_create>"
    how_to_create: ClassVar[str] = ""
    # Rows mixed before slicing shuffled batches (at least 4 batches): shuffling within
    # one row group only would keep neighbouring rows of the file together.
    shuffle_buffer_min_rows: ClassVar[int]

    def __init__(self, path: str) -> None:
        self.uri = storage.to_uri(path)
        self.metadata = storage.read_metadata(self.uri)
        if self.metadata.get("format") != self.format:
            raise ValueError(
                f"{path} is not {self.description} (format {self.metadata.get('format')})"
                + self.how_to_create
            )
        train, validation, test = DEFAULT_SPLITS
        self.train_split: str = self.metadata.get("train_split", train)
        self.validation_split: str = self.metadata.get("validation_split", validation)
        self.test_split: str = self.metadata.get("test_split", test)
        self._row_groups: dict[str, list[int]] = {}

    # ------------------------------------------------------------------- what a kind adds
    @property
    def columns(self) -> list[str]:
        """The Petastorm columns an epoch reads."""
        raise NotImplementedError

    def decode_columns(self, columns: Mapping[str, Any]) -> Batch:
        """One batch of raw ``columns`` (name → values) → the arrays the kind yields."""
        raise NotImplementedError

    # ---------------------------------------------------------------------- split metadata
    @property
    def name(self) -> str:
        return os.path.basename(self.uri.rstrip("/"))

    def split_rows(self) -> dict[str, int]:
        """Rows per split, as stored (empty splits included)."""
        return {s: v["rows"] for s, v in self.metadata["splits"].items()}

    def rows(self, split: str) -> int:
        return int(self.split_metadata(split)["rows"])

    def split_uri(self, split: str) -> str:
        return storage.join(self.uri, self.split_metadata(split)["path"])

    def split_metadata(self, split: str) -> dict:
        """The stored entry of a non-empty split (rows, path, and what the kind keeps)."""
        splits = self.metadata["splits"]
        if split not in splits:
            raise ValueError(f"split must be one of {sorted(splits)}, got {split!r}")
        if splits[split]["rows"] == 0:
            raise ValueError(f"split {split!r} of {self.uri} is empty")
        return splits[split]

    # ---------------------------------------------------------------------------- sharding
    def row_group_sizes(self, split: str) -> list[int]:
        """Rows per row group, in the order Petastorm enumerates them (files sorted by path)."""
        if split not in self._row_groups:
            self._row_groups[split] = parquet_row_group_sizes(self.split_uri(split))
        return self._row_groups[split]

    def shard_rows(self, split: str, shard: int = 0, num_shards: int = 1) -> int:
        """Rows a shard reads: Petastorm gives row group ``i`` to shard ``i % num_shards``."""
        check_shard(shard, num_shards)
        sizes = self.row_group_sizes(split)
        if len(sizes) < num_shards:
            raise ValueError(
                f"split {split!r} has {len(sizes)} row groups, fewer than {num_shards} shards; "
                "convert with a smaller --row-group-size-mb"
            )
        return sum(sizes[shard::num_shards])

    # ------------------------------------------------------------------------- whole splits
    def read_table(self, split: str):
        """The whole split as a ``pyarrow.Table`` of :attr:`columns`, in file order; raises
        :class:`EpochRowCountError` if it does not hold the rows the metadata says."""
        import pyarrow.fs
        import pyarrow.parquet as pq

        filesystem, root = pyarrow.fs.FileSystem.from_uri(self.split_uri(split))
        table = pq.read_table(root, columns=self.columns, filesystem=filesystem)
        if table.num_rows != self.rows(split):
            raise EpochRowCountError(
                f"read {table.num_rows} rows of {split}, expected {self.rows(split)}"
            )
        return table

    # ---------------------------------------------------------------------------- epochs
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
        reader_pool: str = "dummy",
        max_batches: int | None = None,
        reader: str = "petastorm",
    ) -> Iterator[Batch]:
        """One epoch of batches (the arrays :meth:`decode_columns` makes), optionally one
        shard of the split. ``reader="pyarrow"`` reads the shard's row groups with pyarrow
        (``reader_pool`` is then unused): the same sharding rule, no Petastorm.

        Shuffling is by row group (Petastorm) and within a buffer of row groups (here).
        Raises :class:`EpochRowCountError` if the epoch did not deliver every row of the
        shard. ``max_batches`` stops early (no row-count check then).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if reader_pool not in READER_POOLS:
            raise ValueError(f"reader_pool must be one of {READER_POOLS}, got {reader_pool!r}")
        if reader not in READERS:
            raise ValueError(f"reader must be one of {READERS}, got {reader!r}")
        batches = self._epoch(split, batch_size, shuffle, seed, shard, num_shards, drop_last,
                              reader_pool if reader == "petastorm" else reader)
        if max_batches is not None:
            batches = itertools.islice(batches, max_batches)
        yield from batches

    def _epoch(self, split, batch_size, shuffle, seed, shard, num_shards, drop_last,
               reader_pool) -> Iterator[Batch]:
        expected = self.shard_rows(split, shard, num_shards)
        rng = np.random.default_rng(seed)
        delivered = 0
        pending: list[Batch] = []
        buffer_rows = max(4 * batch_size, self.shuffle_buffer_min_rows) if shuffle else batch_size

        def mix() -> Batch:
            parts = tuple(np.concatenate(column) for column in zip(*pending))
            if shuffle:
                order = rng.permutation(len(parts[0]))
                parts = tuple(p[order] for p in parts)
            return parts

        for batch in self._row_groups_of(split, shuffle, seed, shard, num_shards, reader_pool):
            delivered += len(batch[0])
            pending.append(batch)
            if sum(len(p[0]) for p in pending) < buffer_rows:
                continue
            parts = mix()
            n_full = len(parts[0]) // batch_size * batch_size
            yield from _slices(tuple(p[:n_full] for p in parts), batch_size)
            pending = [tuple(p[n_full:] for p in parts)]
        if delivered != expected:
            raise EpochRowCountError(
                f"epoch of {self.split_uri(split)} (shard {shard}/{num_shards}) delivered "
                f"{delivered} rows, expected {expected}"
            )
        if sum(len(p[0]) for p in pending):
            parts = mix()
            keep = len(parts[0]) // batch_size * batch_size if drop_last else len(parts[0])
            yield from _slices(tuple(p[:keep] for p in parts), batch_size)

    def _row_groups_of(self, split, shuffle, seed, shard, num_shards,
                       reader_pool) -> Iterator[Batch]:
        if reader_pool == "pyarrow":
            yield from self._arrow_row_groups_of(split, shuffle, seed, shard, num_shards)
            return
        from petastorm import make_batch_reader

        sharding = {"cur_shard": shard, "shard_count": num_shards} if num_shards > 1 else {}
        with quiet_petastorm():
            reader = make_batch_reader(
                self.split_uri(split), schema_fields=self.columns, reader_pool_type=reader_pool,
                workers_count=2 if reader_pool != "dummy" else 1,
                shuffle_row_groups=shuffle, seed=seed, num_epochs=1, **sharding,
            )
        try:
            for batch in reader:
                yield self.decode_columns(batch._asdict())
        finally:
            close_reader(reader)


    def _arrow_row_groups_of(self, split, shuffle, seed, shard,
                             num_shards) -> Iterator[Batch]:
        """The shard's row groups read with pyarrow: row group ``i`` (Petastorm's order,
        :func:`parquet_row_groups`) to shard ``i % num_shards``, in a seeded random order
        when ``shuffle``."""
        import pyarrow.parquet as pq

        filesystem, groups = parquet_row_groups(self.split_uri(split))
        mine = groups[shard::num_shards]
        if shuffle:
            mine = [mine[i] for i in np.random.default_rng(seed).permutation(len(mine))]
        for path, index in mine:
            with filesystem.open_input_file(path) as handle:
                table = pq.ParquetFile(handle).read_row_group(index, columns=self.columns)
            yield self.decode_columns({name: table.column(name).to_numpy()
                                       for name in self.columns})


def parquet_row_groups(uri: str) -> tuple[Any, list[tuple[str, int]]]:
    """The filesystem of a Parquet dataset and its row groups as ``(file, index)``, in the
    order Petastorm enumerates them (files sorted by path)."""
    import pyarrow.fs
    import pyarrow.parquet as pq

    filesystem, root = pyarrow.fs.FileSystem.from_uri(uri)
    infos = filesystem.get_file_info(pyarrow.fs.FileSelector(root))
    groups = []
    for path in sorted(i.path for i in infos if i.path.endswith(".parquet")):
        with filesystem.open_input_file(path) as handle:
            count = pq.ParquetFile(handle).metadata.num_row_groups
        groups += [(path, index) for index in range(count)]
    return filesystem, groups


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


def check_shard(shard: int, num_shards: int) -> None:
    """Refuse a shard index outside ``0 .. num_shards - 1``."""
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(f"need 0 <= shard < num_shards, got shard={shard}, num_shards={num_shards}")


def _slices(parts: Batch, batch_size: int) -> Iterator[Batch]:
    """Consecutive batches of ``batch_size`` rows; the last one may be shorter."""
    for start in range(0, len(parts[0]), batch_size):
        yield tuple(p[start : start + batch_size] for p in parts)


def epochs_tf_dataset(
    dataset: PetastormDataset,
    split: str,
    batch_size: int,
    output_signature: tuple,
    transform: Callable[[Batch], Batch] | None = None,
    **kwargs: Any,
):
    """A ``tf.data.Dataset`` over one epoch of ``dataset.iter_batches(split, batch_size,
    **kwargs)`` per iteration, each batch passed through ``transform``.

    Each iteration re-opens the reader (shuffled anew when ``shuffle`` is set; seed + epoch
    keeps runs reproducible). Its cardinality is the shard's batch count (at most
    ``max_batches``).

    >>> spec = (tf.TensorSpec((None, 28), tf.float32), tf.TensorSpec((None,), tf.float32))
    >>> tfds = epochs_tf_dataset(ds, "train", 512, spec, shuffle=True, seed=0)
    >>> model.fit(tfds, epochs=3)
    """
    import tensorflow as tf

    epochs = itertools.count()
    base_seed = kwargs.pop("seed", None)

    def generator():
        epoch = next(epochs)
        seed = None if base_seed is None else base_seed + epoch
        for batch in dataset.iter_batches(split, batch_size, seed=seed, **kwargs):
            yield transform(batch) if transform else batch

    rows = dataset.shard_rows(split, kwargs.get("shard", 0), kwargs.get("num_shards", 1))
    n_batches = rows // batch_size if kwargs.get("drop_last") else -(-rows // batch_size)
    if kwargs.get("max_batches") is not None:
        n_batches = min(n_batches, kwargs["max_batches"])
    tfds = tf.data.Dataset.from_generator(generator, output_signature=output_signature)
    # A known length lets Keras show a real per-epoch progress bar and end epochs cleanly.
    return tfds.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(2)
