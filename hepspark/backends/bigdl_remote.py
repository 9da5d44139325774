"""What BigDL's Spark tasks run in Python: one partition of an image split turned into BigDL
``Sample``s, over a small frozen spec the driver builds (the rest of training runs in
BigDL's JVM; HIGGS rows never pass through Python, see ``bigdl_backend.dense_minibatches``).
Each function imports BigDL inside; nothing but the spec is pickled.

>>> spec = ImageSampleSpec.of(dataset)
>>> frame.rdd.mapPartitions(functools.partial(image_samples, spec))
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


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


def image_samples(spec: ImageSampleSpec, rows: Iterable) -> Iterator[Any]:
    from bigdl.dllib.utils.common import Sample

    scale = np.asarray(spec.pixel_scale, dtype=np.float32)
    for image, label in rows:
        x = np.frombuffer(image, dtype="<f4").reshape(spec.image_shape) / scale
        yield Sample.from_ndarray(x.astype(np.float32),
                                  np.asarray([label + spec.label_offset], dtype=np.float32))
