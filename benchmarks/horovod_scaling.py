"""Horovod-on-Spark scaling: 1 and 2 ranks of 1 core each vs one Keras process on 2 cores.

    python benchmarks/horovod_scaling.py [--rows 300000] [--batch-size 1000] [--epochs 3]

Same split, model (3x300 tanh), optimizer and batch size per rank, in one run. Steady-state
rows/s (each run's first epoch, which includes graph tracing and the weight broadcast, is
dropped). Targets (issue #5): 2-rank parallel efficiency >= 90%, and Horovod 2x1 core >= 90%
of Keras on 2 cores. All rates also as a fraction of the FLOP ceiling (STACK.md).
"""
from __future__ import annotations

import argparse
import os

from common import MACHINE_GFLOPS, ceiling_rows_per_s, ensure_dataset, steady_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--batch-size", type=int, default=1000, help="per rank")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--workdir", default="/tmp/hepspark-bench")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from hepspark.backends import get_backend
    from hepspark.backends.horovod_backend import THREADS_ENV
    from hepspark.config import TrainConfig
    from hepspark.data.readers import HiggsDataset
    from hepspark.session import get_spark

    spark = get_spark("bench-horovod", master="local[2]")
    _, data = ensure_dataset(args.workdir, args.rows, spark)
    ds = HiggsDataset(data)
    base = TrainConfig(data=data, optimizer=args.optimizer, batch_size=args.batch_size,
                       epochs=args.epochs)
    ceiling = ceiling_rows_per_s(base.model.num_parameters(len(ds.features)))

    def run(backend: str, ranks: int) -> float:
        records = []
        config = base.with_(backend=backend, num_executors=ranks)
        get_backend(backend).fit(config, ds, records.append)
        rates = ", ".join(f"{r.rows_per_s:,.0f}" for r in records)
        print(f"  {backend} x{ranks}: per-epoch rows/s {rates}", flush=True)
        return steady_rate(records)

    keras_2 = run("keras", 1)  # one process, TensorFlow on both cores
    os.environ[THREADS_ENV] = "1"  # each rank pinned to one compute thread
    hvd_1 = run("horovod", 1)
    hvd_2 = run("horovod", 2)

    print(f"\n{ds.rows('train'):,d} training rows, {base.model.describe()}, batch "
          f"{args.batch_size} per rank, {args.optimizer}; FLOP ceiling at "
          f"{MACHINE_GFLOPS:.0f} GFLOP/s: {ceiling:,.0f} rows/s")
    for name, rate in (("keras, 1 process x 2 cores", keras_2),
                       ("horovod, 1 rank x 1 core", hvd_1),
                       ("horovod, 2 ranks x 1 core", hvd_2)):
        print(f"{name:<30} {rate:>9,.0f} rows/s  {rate / ceiling:6.1%} of ceiling")
    print(f"2-rank parallel efficiency (target >= 0.90): {hvd_2 / (2 * hvd_1):.2f}")
    print(f"horovod 2x1 / keras 1x2   (target >= 0.90): {hvd_2 / keras_2:.2f}")


if __name__ == "__main__":
    main()
