"""Spark SQL's ``xxhash64`` in numpy, so executor-side Python assigns the same splits as
the Spark expression ``pmod(xxhash64(row_index, seed), 1000000)`` always did.

Spark's ``xxhash64(c1, c2)`` starts from seed 42 and hashes each column with the previous
hash as its seed: a ``long`` with ``XXH64.hashLong``, an ``int`` with ``XXH64.hashInt``
(org.apache.spark.sql.catalyst.expressions.XXH64).

>>> pmod_xxhash64(np.array([0, 1]), seed=42, modulus=1_000_000)
array([...])
"""
from __future__ import annotations

import numpy as np

SPARK_HASH_SEED = 42
_P1 = np.uint64(0x9E3779B185EBCA87)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P3 = np.uint64(0x165667B19E3779F9)
_P4 = np.uint64(0x85EBCA77C2B2AE63)
_P5 = np.uint64(0x27D4EB2F165667C5)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


def _fmix(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * _P2
    h = h ^ (h >> np.uint64(29))
    h = h * _P3
    return h ^ (h >> np.uint64(32))


def _hash_long(values: np.ndarray, seed: np.ndarray) -> np.ndarray:
    h = seed + _P5 + np.uint64(8)
    h = h ^ (_rotl(values * _P2, 31) * _P1)
    return _fmix(_rotl(h, 27) * _P1 + _P4)


def _hash_int(value: int, seed: np.ndarray) -> np.ndarray:
    h = seed + _P5 + np.uint64(4)
    h = h ^ (np.uint64(value & 0xFFFFFFFF) * _P1)
    return _fmix(_rotl(h, 23) * _P2 + _P3)


def pmod_xxhash64(row_index: np.ndarray, seed: int, modulus: int) -> np.ndarray:
    """``pmod(xxhash64(row_index AS long, seed AS int), modulus)`` per element (int64)."""
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as Java's long does
        longs = np.asarray(row_index, dtype=np.int64).view(np.uint64)
        h = _hash_long(longs, np.full(longs.shape, SPARK_HASH_SEED, dtype=np.uint64))
        h = _hash_int(seed, h)
    return np.mod(h.view(np.int64), modulus)
