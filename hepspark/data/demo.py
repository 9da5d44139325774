"""The embedded default's dataset: a generated HIGGS-like sample, converted once into the
cache directory and reused (what ``make demo`` / a bare ``spark_jobs/train_higgs.py`` train).

>>> ensure_demo_dataset("~/.cache/hepspark", 200_000, master=None)
'~/.cache/hepspark/higgs-demo-200000'
"""
from __future__ import annotations

import os
from collections.abc import Callable

DEFAULT_DEMO_ROWS = 200_000


SMALL_SAMPLE_ROWS = 100_000
SMALL_SAMPLE_ROW_GROUPS = 32


def small_sample_row_group(rows: int) -> int | None:
    """Rows per row group for a generated sample under ``SMALL_SAMPLE_ROWS``: 32 groups, so
    a tiny-batch probe on 2..16 nodes has a shard per rank (one 8 MB row group holds 67,000
    rows, a whole 6,000-row sample). None (the default size) from there on, so the samples
    the kept measurements used keep their layout."""
    if rows >= SMALL_SAMPLE_ROWS:
        return None
    return max(1, -(-rows // SMALL_SAMPLE_ROW_GROUPS))


def ensure_demo_dataset(
    cache_dir: str, rows: int, master: str | None, bigdl: bool = False,
    progress: Callable[[str], None] = print, driver_memory: str | None = None,
) -> str:
    """The embedded default's dataset: generated and converted once, then reused.
    ``driver_memory``: the session's driver heap (``EngineSettings.driver_memory``)."""
    from hepspark.data import storage
    from hepspark.data.higgs_convert import ConvertConfig, convert_higgs
    from hepspark.data.higgs_csv import write_higgs_csv

    csv_path = os.path.join(cache_dir, f"higgs-demo-{rows}.csv.gz")
    dataset = os.path.join(cache_dir, f"higgs-demo-{rows}")
    if os.path.exists(os.path.join(dataset, storage.METADATA_FILE)):
        progress(f"[demo] using the cached dataset {dataset}")
        return dataset
    from hepspark.session import get_spark

    # The session made here is the one training reuses, so it gets BigDL's jars if needed.
    spark = get_spark("hepspark-train-higgs", master=master, bigdl=bigdl,
                      driver_memory=driver_memory)
    if not os.path.exists(csv_path):
        progress(f"[demo] generating {rows:,d} HIGGS-like events into {csv_path}")
        write_higgs_csv(csv_path, rows, seed=42, spark=None, progress=progress)
    progress(f"[demo] converting {csv_path} to a Petastorm dataset")
    summary = convert_higgs(spark, ConvertConfig(
        input=csv_path, output=dataset, overwrite=True,
        rows_per_row_group=small_sample_row_group(rows)), progress=progress)
    progress(summary.format())
    return dataset
