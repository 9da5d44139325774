"""How BigDL holds a training split in memory, decided before any data is read.

BigDL caches the split on each executor as one JVM ``ArraySample`` per row: the row's floats
in one ``float[]`` (features then label) plus two ``int[][]`` shape arrays and the object
headers. Measured with BigDL 2.4.0 on OpenJDK 17 (1M HIGGS rows, 28 features, local[2]):
about 290 bytes per row, 2.6x the 112 bytes of data; :data:`SAMPLE_FIXED_BYTES` +
4 bytes per float reproduces it. That cache lives in Spark's storage memory
(``(heap - 300 MiB) * spark.memory.fraction``, which Spark reports per executor): when the
split fits, it is cached in memory (``DRAM``); when it does not, BigDL's ``DISK_AND_DRAM``
keeps the samples on local disk and holds one random 1/n slice in memory at a time (n
passes over the disk copy per epoch); when even that would take more than
:data:`MAX_SLICES` slices, the run is refused with the memory it needs.

>>> plan = plan_cache(rows_per_executor=10_000_000, floats_per_row=29,
...                   storage_bytes=2_388_236_697)
>>> plan.level, plan.slices
('DISK_AND_DRAM', 2)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# JVM bytes per cached row besides its floats: ArraySample header and fields, the float[]
# header, featureSize and labelSize (int[][] of one int[] each), the reference to it
SAMPLE_FIXED_BYTES = 170
# the share of storage memory the cache may take: the rest stays for shuffle blocks, the
# validation and broadcast copies of the model, and the error of the estimate
CACHE_SHARE = 0.8
# beyond this many slices each epoch re-reads the disk copy too often to be worth it
MAX_SLICES = 8
# Spark keeps this much heap out of its unified memory (spark.memory: reserved memory)
SPARK_RESERVED_BYTES = 300 * 1024 * 1024
DEFAULT_MEMORY_FRACTION = 0.6


def sample_bytes(floats_per_row: int) -> int:
    """JVM bytes one cached BigDL sample of ``floats_per_row`` floats takes."""
    return SAMPLE_FIXED_BYTES + 4 * floats_per_row


@dataclass(frozen=True)
class CachePlan:
    """Where BigDL keeps the training split: ``DRAM`` (all in memory) or ``DISK_AND_DRAM``
    with ``slices`` slices (1/slices of it in memory at a time)."""

    level: str
    slices: int
    bytes_needed: int  # per executor, the whole split in memory
    bytes_available: int  # per executor, the cache's share of storage memory

    def params(self) -> dict[str, object]:
        return {"bigdl_cache": self.level if self.level == "DRAM" else
                f"{self.level}/{self.slices}",
                "bigdl_cache_mb_needed": round(self.bytes_needed / 1e6),
                "bigdl_cache_mb_available": round(self.bytes_available / 1e6)}


def plan_cache(rows_per_executor: int, floats_per_row: int, storage_bytes: int,
               memory_flag: str = "--executor-memory", memory_fraction: float =
               DEFAULT_MEMORY_FRACTION) -> CachePlan:
    """The cache for ``rows_per_executor`` rows of ``floats_per_row`` floats (features and
    label) on executors with ``storage_bytes`` of Spark storage memory each. Raises
    ValueError (before any data is read), naming the memory needed and ``memory_flag``, when even
    :data:`MAX_SLICES` slices do not fit."""
    needed = rows_per_executor * sample_bytes(floats_per_row)
    available = int(storage_bytes * CACHE_SHARE)
    if needed <= available:
        return CachePlan("DRAM", 1, needed, available)
    slices = max(2, math.ceil(needed / max(available, 1)))
    if slices > MAX_SLICES:
        # the heap at which the split fits in 1/MAX_SLICES slices
        heap = needed / MAX_SLICES / CACHE_SHARE / memory_fraction + SPARK_RESERVED_BYTES
        raise ValueError(
            f"BigDL needs about {needed / 2**30:.1f} GiB per executor to cache "
            f"{rows_per_executor:,} training rows ({sample_bytes(floats_per_row)} bytes each) "
            f"and has {available / 2**30:.2f} GiB of storage memory, too little even in "
            f"{MAX_SLICES} disk-backed slices: give it at least {math.ceil(heap / 2**30)}g "
            f"({memory_flag})"
        )
    return CachePlan("DISK_AND_DRAM", slices, needed, available)
