"""Mean and spread of many chunks, merged without a second pass over the data.

Each Spark task summarises its rows as (count, mean, M2 = sum of squared deviations); the
driver merges the summaries with Chan et al.'s pairwise update, which stays accurate where
``E[x^2] - E[x]^2`` would cancel (features with a large mean and a small spread).

>>> total = Moments.of(np.ones((3, 2))).merge(Moments.of(np.zeros((1, 2))))
>>> total.mean, total.std
(array([0.75, 0.75]), array([0.4330127, 0.4330127]))
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Moments:
    count: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, width: int) -> "Moments":
        return cls(0, np.zeros(width), np.zeros(width))

    @classmethod
    def of(cls, values: np.ndarray) -> "Moments":
        """Summary of ``values`` (rows × columns), in float64."""
        if len(values) == 0:
            return cls.empty(values.shape[1])
        mean = values.mean(axis=0, dtype=np.float64)
        deviation = values - mean
        return cls(len(values), mean, np.einsum("ij,ij->j", deviation, deviation))

    def merge(self, other: "Moments") -> "Moments":
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / count)
        return Moments(count, mean, m2)

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (Spark's ``stddev_pop``)."""
        return np.sqrt(self.m2 / self.count) if self.count else np.full_like(self.m2, np.nan)
