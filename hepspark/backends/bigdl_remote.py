"""What BigDL's Spark tasks run in Python: one partition of a Parquet split turned into BigDL
``Sample``s, over a small frozen spec the driver builds (the rest of training runs in
BigDL's JVM). Each function imports BigDL inside; nothing but the spec is pickled.

>>> spec = DenseSampleSpec.of(dataset)
>>> frame.rdd.mapPartitions(functools.partial(dense_samples, spec))
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class DenseSampleSpec:
    """HIGGS rows (features..., label) standardized with the train split's statistics."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, dataset: Any) -> "DenseSampleSpec":
        return cls(tuple(float(v) for v in dataset.standardizer.mean),
                   tuple(float(v) for v in dataset.standardizer.std))


@dataclass(frozen=True)
class ImageSampleSpec:
    """(image bytes, label) rows: HWC float32 scaled as the ImageDataset reader scales
    them; label [y] for two classes, [y + 1] for K (BigDL's class labels start at 1)."""

    image_shape: tuple[int, ...]
    pixel_scale: tuple[float, ...]  # per channel (or one value)
    label_offset: float

    @classmethod
    def of(cls, dataset: Any) -> "ImageSampleSpec":
        return cls(tuple(int(v) for v in dataset.image_shape),
                   tuple(float(v) for v in np.ravel(dataset.pixel_scale)),
                   0.0 if dataset.num_classes == 2 else 1.0)


def dense_samples(spec: DenseSampleSpec, rows: Iterable) -> Iterator[Any]:
    from bigdl.dllib.utils.common import Sample

    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    for row in rows:
        x = (np.asarray(row[:-1], dtype=np.float32) - mean) / std
        yield Sample.from_ndarray(x, np.asarray([row[-1]], dtype=np.float32))


def image_samples(spec: ImageSampleSpec, rows: Iterable) -> Iterator[Any]:
    from bigdl.dllib.utils.common import Sample

    scale = np.asarray(spec.pixel_scale, dtype=np.float32)
    for image, label in rows:
        x = np.frombuffer(image, dtype="<f4").reshape(spec.image_shape) / scale
        yield Sample.from_ndarray(x.astype(np.float32),
                                  np.asarray([label + spec.label_offset], dtype=np.float32))
