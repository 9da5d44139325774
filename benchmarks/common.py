"""Shared pieces of the benchmarks: the FLOP ceiling of STACK.md and data preparation."""
from __future__ import annotations

import os
import time

# fp32 matmul throughput measured on the 2-core reference machine (STACK.md).
MACHINE_GFLOPS = float(os.environ.get("HEPSPARK_MACHINE_GFLOPS", "178"))


def flops_per_row(n_params: int) -> float:
    """Forward (2 flops per weight) + backward (4 per weight) of a dense network."""
    return 6.0 * n_params


def ceiling_rows_per_s(n_params: int) -> float:
    return MACHINE_GFLOPS * 1e9 / flops_per_row(n_params)


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
