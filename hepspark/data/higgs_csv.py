"""Write generated HIGGS events as a UCI-format CSV (label first, no header), locally or
in parallel on Spark.

Events are made in fixed chunks of :data:`CHUNK_ROWS`, chunk ``i`` seeded by
``SeedSequence([seed, i])``: the output is the same byte for byte whether the chunks
run in this process or on any number of Spark executors. Executors format and gzip
their chunks; the driver only appends the bytes in order (concatenated gzip members
are one valid gzip file), so 11M rows never sit in the driver's memory. The file is
written under a temporary name and renamed when complete.

>>> write_higgs_csv("higgs.csv.gz", rows=100_000, seed=1)
"""
from __future__ import annotations

import gzip
import io
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from hepspark.data import storage
from hepspark.data.higgs_schema import COLUMNS
from hepspark.progress import Progress

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

CHUNK_ROWS = 100_000
SPARK_MIN_ROWS = 1_000_000  # below this, starting executors costs more than it saves
GZIP_LEVEL = 1  # level 6 is ~4x slower for ~10% smaller files of float text


def chunk_sizes(rows: int) -> list[int]:
    full, rest = divmod(rows, CHUNK_ROWS)
    return [CHUNK_ROWS] * full + ([rest] if rest else [])


def render_chunk(
    index: int, n_rows: int, seed: int, signal_fraction: float, compress: bool
) -> bytes:
    """Events of chunk ``index`` as CSV text (gzip member if ``compress``). Runs on executors."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from hepspark.data.higgs_generator import generate_events

    events = generate_events(n_rows, np.random.SeedSequence([seed, index]), signal_fraction)
    columns = [pa.array(events[:, 0].astype(np.int8))]
    columns += [pa.array(events[:, j]) for j in range(1, events.shape[1])]
    table = pa.Table.from_arrays(columns, names=list(COLUMNS))
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False))
    text = buffer.getvalue()
    return gzip.compress(text, compresslevel=GZIP_LEVEL, mtime=0) if compress else text


def write_higgs_csv(
    output: str,
    rows: int,
    seed: int = 42,
    signal_fraction: float = 0.53,
    spark: "SparkSession | None" = None,
    overwrite: bool = False,
    progress: Callable[[str], None] = print,
) -> dict:
    """Generate ``rows`` events into ``output`` (``.csv`` or ``.csv.gz``).

    With a ``spark`` session the chunks are generated on the executors. Returns a small
    summary (rows, bytes, seconds).
    """
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    if not 0.0 < signal_fraction < 1.0:
        raise ValueError(f"signal_fraction must be in (0, 1), got {signal_fraction}")
    storage.check_new_output(output, overwrite)
    compress = output.endswith(".gz")
    sizes = chunk_sizes(rows)
    start = time.perf_counter()
    tmp = f"{output}.tmp-{os.getpid()}"
    written = 0
    try:
        with open(tmp, "wb") as handle, \
                Progress("generate", rows, "rows", emit=progress) as bar:
            for size, blob in zip(sizes, _chunks(sizes, seed, signal_fraction, compress, spark)):
                handle.write(blob)
                written += len(blob)
                bar.advance(size)
        storage.publish_file(tmp, output, "generate higgs", overwrite)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return {"rows": rows, "bytes": written, "seconds": time.perf_counter() - start,
            "output": os.path.abspath(output)}


def _chunks(sizes, seed, signal_fraction, compress, spark) -> Iterator[bytes]:
    if spark is None:
        for index, n in enumerate(sizes):
            yield render_chunk(index, n, seed, signal_fraction, compress)
        return
    sc = spark.sparkContext
    jobs = list(enumerate(sizes))
    rdd = sc.parallelize(jobs, numSlices=len(jobs)).map(
        lambda job: render_chunk(job[0], job[1], seed, signal_fraction, compress)
    )
    # One chunk per partition, run in waves as wide as the cluster: all cores busy, and
    # the driver holds only one wave of compressed chunks, appended in order.
    wave = max(1, sc.defaultParallelism)
    for first in range(0, len(jobs), wave):
        partitions = list(range(first, min(first + wave, len(jobs))))
        yield from sc.runJob(rdd, lambda it: list(it), partitions)
