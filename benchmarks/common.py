"""Shared pieces of the benchmarks: the FLOP ceiling of STACK.md, data preparation and the
side-by-side engine runs (:func:`engine_bench`)."""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from typing import Any

# fp32 matmul throughput measured on the 2-core reference machine (STACK.md).
MACHINE_GFLOPS = float(os.environ.get("HEPSPARK_MACHINE_GFLOPS", "178"))


def flops_per_row(n_params: int) -> float:
    """Forward (2 flops per weight) + backward (4 per weight) of a dense network."""
    return 6.0 * n_params


def ceiling_rows_per_s(n_params: int) -> float:
    return MACHINE_GFLOPS * 1e9 / flops_per_row(n_params)


def pyarrow_convert_s(path: str, out: str, one_core: bool = False) -> tuple[float, float]:
    """(wall, CPU) seconds of pyarrow's ``read_csv`` (one thread) + ``write_table`` of a
    HIGGS CSV: the ingest reference. ``one_core``: in a child process pinned to one core.
    Unpinned, the "single-thread" read is not one core: its I/O thread inflates a ``.gz``
    beside the parser (1.5 cores busy on the 11M-event file), so its speed is not a
    per-core speed."""
    if one_core:
        import json
        import subprocess
        import sys

        here = os.path.dirname(os.path.abspath(__file__))
        core = min(os.sched_getaffinity(0))
        code = (f"import os, json, sys; os.sched_setaffinity(0, {{{core}}}); "
                f"sys.path.insert(0, {here!r}); from common import pyarrow_convert_s; "
                f"print(json.dumps(pyarrow_convert_s({path!r}, {out!r})))")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True)
        wall, cpu = json.loads(done.stdout.strip().splitlines()[-1])
        return wall, cpu
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from hepspark.data.higgs_schema import COLUMNS

    cpu = time.process_time()
    start = time.perf_counter()
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=list(COLUMNS), use_threads=False),
        convert_options=pacsv.ConvertOptions(column_types={c: "float32" for c in COLUMNS}),
    )
    pq.write_table(table, out)
    wall = time.perf_counter() - start
    return wall, time.process_time() - cpu


def ensure_dataset(workdir: str, rows: int, spark, compress: bool = False) -> tuple[str, str]:
    """(csv_path, dataset_dir) of a generated sample, made once per workdir."""
    from hepspark.data.higgs_convert import ConvertConfig, convert_higgs
    from hepspark.data.higgs_csv import write_higgs_csv
    from hepspark.data.storage import METADATA_FILE

    os.makedirs(workdir, exist_ok=True)
    csv = os.path.join(workdir, f"higgs-{rows}.csv" + (".gz" if compress else ""))
    data = os.path.join(workdir, f"higgs-{rows}")
    if not os.path.exists(csv):
        write_higgs_csv(csv, rows, seed=1, spark=spark, progress=lambda _: None)
    if not os.path.exists(os.path.join(data, METADATA_FILE)):
        convert_higgs(spark, ConvertConfig(input=csv, output=data, overwrite=True),
                      progress=lambda _: None)
    return csv, data


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def steady_rate(records) -> float:
    """Steady-state rows/s of a run: the median epoch after the first (which includes
    tracing, the weight broadcast, the ranks' start)."""
    import numpy as np

    rates = [r.rows_per_s for r in records[1:]] or [records[0].rows_per_s]
    return float(np.median(rates))


def engine_parser(doc: str) -> argparse.ArgumentParser:
    """The flags of the side-by-side engine benchmarks (one HIGGS sample, one config)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--batch-size", type=int, default=1000, help="per rank")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--workdir", default="/tmp/hepspark-bench")
    return parser


@dataclass(frozen=True)
class EngineBench:
    """Engines trained one after the other on the same sample, split, model, optimizer and
    batch size per rank, so that their rates are measured side by side in one run."""

    dataset: Any  # HiggsDataset
    base: Any  # TrainConfig: everything but the backend and the ranks
    ceiling: float  # rows/s at MACHINE_GFLOPS

    def run(self, backend: str, ranks: int, settings: Any = None) -> float:
        """Train ``backend`` on ``ranks`` ranks; prints every epoch's rate and returns the
        steady-state rows/s."""
        from hepspark.backends import get_backend

        records: list = []
        config = self.base.with_(backend=backend, num_executors=ranks)
        get_backend(backend, settings).fit(config, self.dataset, records.append)
        rates = ", ".join(f"{r.rows_per_s:,.0f}" for r in records)
        print(f"  {backend} x{ranks}: per-epoch rows/s {rates}", flush=True)
        return steady_rate(records)

    def describe(self) -> str:
        base = self.base
        return (f"{self.dataset.rows('train'):,d} training rows, {base.model.describe()}, batch "
                f"{base.batch_size} per rank, {base.optimizer}; FLOP ceiling at "
                f"{MACHINE_GFLOPS:.0f} GFLOP/s: {self.ceiling:,.0f} rows/s")


def engine_bench(args: argparse.Namespace, app_name: str) -> EngineBench:
    """A local[2] session and the generated sample of ``engine_parser``'s flags."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from hepspark.cli.common import spark_session
    from hepspark.config import TrainConfig
    from hepspark.data.readers import HiggsDataset

    spark = spark_session(app_name, "local[2]")
    _, data = ensure_dataset(args.workdir, args.rows, spark)
    dataset = HiggsDataset(data)
    base = TrainConfig(data=data, optimizer=args.optimizer, batch_size=args.batch_size,
                       epochs=args.epochs)
    return EngineBench(dataset=dataset, base=base,
                       ceiling=ceiling_rows_per_s(base.model.num_parameters(len(dataset.features))))
