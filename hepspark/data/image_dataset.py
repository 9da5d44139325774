"""Read a converted image dataset for training: Petastorm batches → numpy image tensors.

:class:`ImageDataset` is the image counterpart of
:class:`~hepspark.data.readers.HiggsDataset`: it opens a dataset directory (its
``hepspark_dataset.json``), knows the image shape, classes, splits (``train``/``val``/
``test``, or ``train``/``test_a``/``test_b`` for LArTPC) and streams epochs of
``(images, labels, weights)`` batches, optionally one shard (rank / world size) of a split,
checking every epoch's row count (Petastorm 0.13.1 can return empty epochs silently).

* Pixels are divided by the per-channel standard deviation of the train split's pixels
  (``pixel_scale``; no mean shift, so empty cells stay exactly 0: the images stay sparse).
* Weights are multiplied by one constant so that they average 1 over the train split
  (the seed's "normalized physical weights"); the same constant applies to every split.

>>> ds = ImageDataset("data/jets")
>>> for x, y, w in ds.iter_batches("train", batch_size=128, shuffle=True, seed=1):
...     pass
>>> x.shape[1:], ds.num_classes
((33, 33, 2), 2)
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import numpy as np

from hepspark.data import storage
from hepspark.data.petastorm_compat import close_reader, quiet_petastorm
from hepspark.data.readers import (
    READER_POOLS,
    EpochRowCountError,
    _check_shard,
    parquet_row_group_sizes,
)

Batch = tuple[np.ndarray, np.ndarray, np.ndarray]
COLUMNS = ["label", "weight", "image"]


class ImageDataset:
    """A dataset written by ``hepspark convert images``."""

    def __init__(self, path: str) -> None:
        self.uri = storage.to_uri(path)
        self.metadata = storage.read_metadata(self.uri)
        if self.metadata.get("format") != "hepspark-images":
            raise ValueError(
                f"{path} is not an image dataset (format {self.metadata.get('format')}); "
                "create one with 'hepspark convert images'"
            )
        self.kind: str = self.metadata["kind"]
        self.image_shape: tuple[int, int, int] = tuple(self.metadata["image_shape"])
        self.class_names: list[str] = list(self.metadata["class_names"])
        self.num_classes: int = int(self.metadata["num_classes"])
        self.train_split: str = self.metadata["train_split"]
        self.validation_split: str = self.metadata["validation_split"]
        self.test_split: str = self.metadata["test_split"]
        std = np.asarray(self.metadata["pixel_stats"]["std"], np.float32)
        self.pixel_scale = np.where(std > 0, std, 1.0).astype(np.float32)
        train = self._split(self.train_split)
        self.weight_scale = float(train["rows"] / max(sum(train["class_weight_sums"]), 1e-30))
        self._row_groups: dict[str, list[int]] = {}

    def __repr__(self) -> str:
        rows = {s: v["rows"] for s, v in self.metadata["splits"].items()}
        return (f"ImageDataset({self.uri!r}, kind={self.kind!r}, image_shape="
                f"{self.image_shape}, classes={self.class_names}, rows={rows})")

    @property
    def name(self) -> str:
        return os.path.basename(self.uri.rstrip("/"))

    @property
    def features(self) -> list[str]:
        """One input: the image (backends log ``len(features)``)."""
        return ["image"]

    def rows(self, split: str) -> int:
        return int(self._split(split)["rows"])

    def split_uri(self, split: str) -> str:
        return storage.join(self.uri, self._split(split)["path"])

    def class_counts(self, split: str) -> list[int]:
        return list(self._split(split)["class_counts"])

    def _split(self, split: str) -> dict:
        splits = self.metadata["splits"]
        if split not in splits:
            raise ValueError(f"split must be one of {sorted(splits)}, got {split!r}")
        if splits[split]["rows"] == 0:
            raise ValueError(f"split {split!r} of {self.uri} is empty")
        return splits[split]

    def row_group_sizes(self, split: str) -> list[int]:
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

    # ------------------------------------------------------------------------ decoding
    def decode(self, image_bytes, label, weight) -> Batch:
        """Raw columns → ``(x float32 [n, H, W, C] scaled, y int32 [n], w float32 [n])``."""
        n = len(label)
        blob = b"".join(image_bytes)
        x = np.frombuffer(blob, dtype="<f4").reshape(n, *self.image_shape)
        x = x / self.pixel_scale  # a new float32 array (frombuffer's is read-only)
        return (x.astype(np.float32, copy=False), np.asarray(label, np.int32),
                (np.asarray(weight, np.float32) * self.weight_scale).astype(np.float32))

    def load(self, split: str) -> Batch:
        """The whole split in memory, in file order."""
        import pyarrow.fs
        import pyarrow.parquet as pq

        filesystem, root = pyarrow.fs.FileSystem.from_uri(self.split_uri(split))
        table = pq.read_table(root, columns=COLUMNS, filesystem=filesystem)
        if table.num_rows != self.rows(split):
            raise EpochRowCountError(
                f"read {table.num_rows} rows of {split}, expected {self.rows(split)}")
        images = table.column("image").combine_chunks()
        # One copy of the pixel bytes: the binary array's data buffer, offsets checked.
        offsets = np.frombuffer(images.buffers()[1], np.int32)[images.offset:
                                                              images.offset + len(images) + 1]
        row_bytes = int(np.prod(self.image_shape)) * 4
        if not np.array_equal(np.diff(offsets), np.full(len(images), row_bytes)):
            raise ValueError(f"{split}: image rows are not {row_bytes} bytes each")
        data = np.frombuffer(images.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
        x = data.view("<f4").reshape(len(images), *self.image_shape) / self.pixel_scale
        y = table.column("label").to_numpy().astype(np.int32)
        w = table.column("weight").to_numpy().astype(np.float32) * self.weight_scale
        return x.astype(np.float32, copy=False), y, w.astype(np.float32)

    # ------------------------------------------------------------------------ streaming
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
    ) -> Iterator[Batch]:
        """One epoch of ``(x, y, w)`` batches; shuffled by row group and within a buffer.

        Raises :class:`EpochRowCountError` if the epoch did not deliver every row of the
        shard. ``max_batches`` stops early (no row-count check then).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if reader_pool not in READER_POOLS:
            raise ValueError(f"reader_pool must be one of {READER_POOLS}, got {reader_pool!r}")
        batches = self._batches(split, batch_size, shuffle, seed, shard, num_shards, drop_last,
                                reader_pool)
        if max_batches is not None:
            batches = itertools.islice(batches, max_batches)
        yield from batches

    def _batches(self, split, batch_size, shuffle, seed, shard, num_shards, drop_last,
                 reader_pool) -> Iterator[Batch]:
        expected = self.shard_rows(split, shard, num_shards)
        rng = np.random.default_rng(seed)
        delivered = 0
        pending: list[Batch] = []
        # Images are ~10 kB each: a buffer of a few thousand mixes row groups well enough.
        buffer_rows = max(4 * batch_size, 4096) if shuffle else batch_size

        def mix() -> Batch:
            parts = [np.concatenate([p[i] for p in pending]) for i in range(3)]
            if shuffle:
                order = rng.permutation(len(parts[1]))
                parts = [p[order] for p in parts]
            return parts[0], parts[1], parts[2]

        for batch in self._row_groups_of(split, shuffle, seed, shard, num_shards, reader_pool):
            delivered += len(batch[1])
            pending.append(batch)
            if sum(len(p[1]) for p in pending) < buffer_rows:
                continue
            x, y, w = mix()
            n_full = len(y) // batch_size * batch_size
            yield from _slices(x[:n_full], y[:n_full], w[:n_full], batch_size)
            pending = [(x[n_full:], y[n_full:], w[n_full:])]
        if delivered != expected:
            raise EpochRowCountError(
                f"epoch of {self.split_uri(split)} (shard {shard}/{num_shards}) delivered "
                f"{delivered} rows, expected {expected}"
            )
        if sum(len(p[1]) for p in pending):
            x, y, w = mix()
            keep = len(y) // batch_size * batch_size if drop_last else len(y)
            yield from _slices(x[:keep], y[:keep], w[:keep], batch_size)

    def _row_groups_of(self, split, shuffle, seed, shard, num_shards, reader_pool):
        from petastorm import make_batch_reader

        sharding = {"cur_shard": shard, "shard_count": num_shards} if num_shards > 1 else {}
        with quiet_petastorm():
            reader = make_batch_reader(
                self.split_uri(split), schema_fields=COLUMNS, reader_pool_type=reader_pool,
                workers_count=2 if reader_pool != "dummy" else 1,
                shuffle_row_groups=shuffle, seed=seed, num_epochs=1, **sharding,
            )
        try:
            for batch in reader:
                yield self.decode(batch.image, batch.label, batch.weight)
        finally:
            close_reader(reader)


def _slices(x, y, w, batch_size) -> Iterator[Batch]:
    for start in range(0, len(y), batch_size):
        stop = start + batch_size
        yield x[start:stop], y[start:stop], w[start:stop]


def make_image_tf_dataset(dataset: ImageDataset, split: str, batch_size: int,
                          one_hot: bool = False, **kwargs):
    """A ``tf.data.Dataset`` of ``(x, y, sample_weight)`` over one epoch per iteration of
    :meth:`ImageDataset.iter_batches` (shuffled anew each epoch when ``shuffle``: seed +
    epoch). ``one_hot`` turns labels into float one-hot rows (categorical loss), else
    binary labels come as float ``[n]`` and K-class labels as int ``[n]``."""
    import tensorflow as tf

    epoch = {"n": 0}
    base_seed = kwargs.pop("seed", None)
    k = dataset.num_classes
    binary = k == 2

    def generator():
        seed = None if base_seed is None else base_seed + epoch["n"]
        epoch["n"] += 1
        for x, y, w in dataset.iter_batches(split, batch_size, seed=seed, **kwargs):
            if binary:
                yield x, y.astype(np.float32), w
            elif one_hot:
                yield x, np.eye(k, dtype=np.float32)[y], w
            else:
                yield x, y, w

    if binary:
        label_spec = tf.TensorSpec(shape=(None,), dtype=tf.float32)
    elif one_hot:
        label_spec = tf.TensorSpec(shape=(None, k), dtype=tf.float32)
    else:
        label_spec = tf.TensorSpec(shape=(None,), dtype=tf.int32)
    signature = (
        tf.TensorSpec(shape=(None, *dataset.image_shape), dtype=tf.float32),
        label_spec,
        tf.TensorSpec(shape=(None,), dtype=tf.float32),
    )
    rows = dataset.shard_rows(split, kwargs.get("shard", 0), kwargs.get("num_shards", 1))
    n_batches = rows // batch_size if kwargs.get("drop_last") else -(-rows // batch_size)
    if kwargs.get("max_batches") is not None:
        n_batches = min(n_batches, kwargs["max_batches"])
    tfds = tf.data.Dataset.from_generator(generator, output_signature=signature)
    return tfds.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(2)
