"""Read a converted image dataset for training: Petastorm batches → numpy image tensors.

:class:`ImageDataset` is the image kind of :class:`~hepspark.data.dataset.PetastormDataset`
(split metadata, shards, shuffled epochs with row-count checks, the Petastorm reader): it
knows the image shape, classes, splits (``train``/``val``/``test``, or
``train``/``test_a``/``test_b`` for LArTPC) and decodes ``(images, labels, weights)``
batches.

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

from collections.abc import Mapping
from typing import Any

import numpy as np

from hepspark.data.dataset import PetastormDataset, epochs_tf_dataset

Batch = tuple[np.ndarray, np.ndarray, np.ndarray]
COLUMNS = ["label", "weight", "image"]


class ImageDataset(PetastormDataset):
    """A dataset written by ``hepspark convert images``."""

    format = "hepspark-images"
    description = "an image dataset"
    how_to_create = "; create one with 'hepspark convert images'"
    # Images are ~10 kB each: a buffer of a few thousand mixes row groups well enough.
    shuffle_buffer_min_rows = 4096

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.kind: str = self.metadata["kind"]
        self.image_shape: tuple[int, int, int] = tuple(self.metadata["image_shape"])
        self.class_names: list[str] = list(self.metadata["class_names"])
        self.num_classes: int = int(self.metadata["num_classes"])
        std = np.asarray(self.metadata["pixel_stats"]["std"], np.float32)
        self.pixel_scale = np.where(std > 0, std, 1.0).astype(np.float32)
        train = self.split_metadata(self.train_split)
        self.weight_scale = float(train["rows"] / max(sum(train["class_weight_sums"]), 1e-30))

    def __repr__(self) -> str:
        return (f"ImageDataset({self.uri!r}, kind={self.kind!r}, image_shape="
                f"{self.image_shape}, classes={self.class_names}, rows={self.split_rows()})")

    @property
    def features(self) -> list[str]:
        """One input: the image (backends log ``len(features)``)."""
        return ["image"]

    @property
    def columns(self) -> list[str]:
        return COLUMNS

    def class_counts(self, split: str) -> list[int]:
        return list(self.split_metadata(split)["class_counts"])

    # ------------------------------------------------------------------------ decoding
    def decode(self, image_bytes, label, weight) -> Batch:
        """Raw columns → ``(x float32 [n, H, W, C] scaled, y int32 [n], w float32 [n])``."""
        n = len(label)
        blob = b"".join(image_bytes)
        x = np.frombuffer(blob, dtype="<f4").reshape(n, *self.image_shape)
        x = x / self.pixel_scale  # a new float32 array (frombuffer's is read-only)
        return (x.astype(np.float32, copy=False), np.asarray(label, np.int32),
                (np.asarray(weight, np.float32) * self.weight_scale).astype(np.float32))

    def decode_columns(self, columns: Mapping[str, Any]) -> Batch:
        return self.decode(columns["image"], columns["label"], columns["weight"])

    def load(self, split: str) -> Batch:
        """The whole split in memory, in file order."""
        table = self.read_table(split)
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


def make_image_tf_dataset(dataset: ImageDataset, split: str, batch_size: int,
                          one_hot: bool = False, **kwargs: Any):
    """A ``tf.data.Dataset`` of ``(x, y, sample_weight)`` over one epoch per iteration of
    :meth:`ImageDataset.iter_batches` (shuffled anew each epoch when ``shuffle``: seed +
    epoch). ``one_hot`` turns labels into float one-hot rows (categorical loss), else
    binary labels come as float ``[n]`` and K-class labels as int ``[n]``."""
    import tensorflow as tf

    k = dataset.num_classes
    if k == 2:
        label_spec = tf.TensorSpec(shape=(None,), dtype=tf.float32)
        transform = lambda b: (b[0], b[1].astype(np.float32), b[2])  # noqa: E731
    elif one_hot:
        label_spec = tf.TensorSpec(shape=(None, k), dtype=tf.float32)
        transform = lambda b: (b[0], np.eye(k, dtype=np.float32)[b[1]], b[2])  # noqa: E731
    else:
        label_spec = tf.TensorSpec(shape=(None,), dtype=tf.int32)
        transform = None
    signature = (
        tf.TensorSpec(shape=(None, *dataset.image_shape), dtype=tf.float32),
        label_spec,
        tf.TensorSpec(shape=(None,), dtype=tf.float32),
    )
    return epochs_tf_dataset(dataset, split, batch_size, signature, transform, **kwargs)
