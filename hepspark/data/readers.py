"""Read a converted HIGGS dataset for training: Petastorm batches → standardized numpy.

- :class:`HiggsDataset` is the HIGGS kind of :class:`~hepspark.data.dataset.PetastormDataset`
  (split metadata, shards, shuffled epochs with row-count checks, the Petastorm reader): it
  adds the feature columns and the standardization of the train split.
- :meth:`HiggsDataset.iter_batches` streams one epoch of ``(x, y)`` batches, optionally one
  shard of it (rank / world size); :meth:`HiggsDataset.load` reads a whole split into
  memory (validation and test sets).
- :func:`make_tf_dataset` wraps epochs as a ``tf.data.Dataset``.

>>> ds = HiggsDataset("data/higgs", features="all")
>>> for x, y in ds.iter_batches("train", batch_size=1000, shuffle=True, seed=1):
...     pass
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hepspark.data.dataset import (
    EpochRowCountError,  # noqa: F401 (callers import it from here, as before the base)
    PetastormDataset,
    epochs_tf_dataset,
)
from hepspark.data.higgs_schema import LABEL, feature_set


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


class HiggsDataset(PetastormDataset):
    """A converted HIGGS dataset, restricted to a feature set (``all``, ``low``, ``high``)."""

    format = "hepspark-higgs"
    description = "a HIGGS dataset"
    shuffle_buffer_min_rows = 200_000

    def __init__(self, path: str, features: str | None = None) -> None:
        super().__init__(path)
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
        self.standardizer = Standardizer(
            np.asarray(stats["mean"], np.float32)[index], np.asarray(stats["std"], np.float32)[index]
        )

    def __repr__(self) -> str:
        return (f"HiggsDataset({self.uri!r}, features={self.feature_set!r}, "
                f"rows={self.split_rows()})")

    @property
    def columns(self) -> list[str]:
        return [LABEL, *self.features]

    def decode_columns(self, columns: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """Raw columns → ``(x float32 [n, F], y float32 [n])``, not standardized."""
        x = np.column_stack([columns[f] for f in self.features]).astype(np.float32, copy=False)
        return x, np.asarray(columns[LABEL], np.float32)

    def iter_batches(
        self,
        split: str,
        batch_size: int,
        *,
        standardize: bool = True,
        **kwargs: Any,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch of ``(x float32 [B, F], y float32 [B])`` batches from Petastorm;
        ``x`` standardized unless ``standardize=False``. The other keywords (``shuffle``,
        ``seed``, ``shard``, ``num_shards``, ``drop_last``, ``reader_pool``,
        ``max_batches``) are :meth:`PetastormDataset.iter_batches`'.

        >>> ds = HiggsDataset("data/higgs", features="low")
        >>> for x, y in ds.iter_batches("train", 1000, shuffle=True, seed=1, num_shards=2):
        ...     pass
        """
        for x, y in super().iter_batches(split, batch_size, **kwargs):
            yield (self.standardizer(x) if standardize else x), y

    def load(self, split: str, standardize: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The whole split in memory, in file order: ``(x [N, F], y [N])``."""
        table = self.read_table(split)
        x, y = self.decode_columns({name: table.column(name).to_numpy() for name in self.columns})
        return (self.standardizer(x) if standardize else x), y


def make_tf_dataset(dataset: HiggsDataset, split: str, batch_size: int, **kwargs: Any):
    """A ``tf.data.Dataset`` over one epoch of :meth:`HiggsDataset.iter_batches`.

    Each iteration of the returned dataset re-opens the reader (one epoch, shuffled anew
    when ``shuffle`` is set; seed + epoch keeps runs reproducible).
    """
    import tensorflow as tf

    signature = (
        tf.TensorSpec(shape=(None, len(dataset.features)), dtype=tf.float32),
        tf.TensorSpec(shape=(None,), dtype=tf.float32),
    )
    return epochs_tf_dataset(dataset, split, batch_size, signature, **kwargs)
