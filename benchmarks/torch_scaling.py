"""Torch engine scaling: 1 and 2 ranks of 1 core each vs one Keras (TF) process on 2 cores
and vs Horovod 1 and 2 ranks on the same cores.

    python benchmarks/torch_scaling.py [--rows 300000] [--batch-size 1000] [--epochs 3]

Same split, model (3x300 tanh), optimizer and batch size per rank, all in one run, so the
ratios are measured side by side. Steady-state rows/s (each run's first epoch, which
includes the ranks' start and the first forward pass, is dropped). All rates also as a
fraction of the FLOP ceiling (STACK.md). Needs ``make install-torch``; Horovod is skipped
where it does not import.
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
    parser.add_argument("--no-horovod", action="store_true", help="skip the Horovod runs")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from hepspark.backends import get_backend
    from hepspark.backends.torch_backend import require_torch
    from hepspark.config import EngineSettings, TrainConfig
    from hepspark.data.readers import HiggsDataset
    from hepspark.session import get_spark

    require_torch()
    spark = get_spark("bench-torch", master="local[2]")
    _, data = ensure_dataset(args.workdir, args.rows, spark)
    ds = HiggsDataset(data)
    base = TrainConfig(data=data, optimizer=args.optimizer, batch_size=args.batch_size,
                       epochs=args.epochs)
    ceiling = ceiling_rows_per_s(base.model.num_parameters(len(ds.features)))
    one_thread = EngineSettings(horovod_threads=1)  # each rank pinned to one compute thread

    def run(backend: str, ranks: int, settings=None) -> float:
        records = []
        config = base.with_(backend=backend, num_executors=ranks)
        get_backend(backend, settings).fit(config, ds, records.append)
        rates = ", ".join(f"{r.rows_per_s:,.0f}" for r in records)
        print(f"  {backend} x{ranks}: per-epoch rows/s {rates}", flush=True)
        return steady_rate(records)

    rates = {"keras (TF), 1 process x 2 cores": run("keras", 1)}
    rates["torch, 1 rank x 1 core"] = run("torch", 1, one_thread)
    rates["torch, 2 ranks x 1 core"] = run("torch", 2, one_thread)
    if not args.no_horovod:
        try:
            from hepspark.backends.horovod_backend import require_horovod

            require_horovod()
            rates["horovod, 1 rank x 1 core"] = run("horovod", 1, one_thread)
            rates["horovod, 2 ranks x 1 core"] = run("horovod", 2, one_thread)
        except RuntimeError as exc:
            print(f"  horovod skipped: {exc}")

    print(f"\n{ds.rows('train'):,d} training rows, {base.model.describe()}, batch "
          f"{args.batch_size} per rank, {args.optimizer}; FLOP ceiling at "
          f"{MACHINE_GFLOPS:.0f} GFLOP/s: {ceiling:,.0f} rows/s")
    keras_2 = rates["keras (TF), 1 process x 2 cores"]
    for name, rate in rates.items():
        print(f"{name:<34} {rate:>9,.0f} rows/s  {rate / ceiling:6.1%} of ceiling  "
              f"{rate / keras_2:5.2f} x keras")
    torch_1, torch_2 = rates["torch, 1 rank x 1 core"], rates["torch, 2 ranks x 1 core"]
    print(f"torch 2-rank parallel efficiency: {torch_2 / (2 * torch_1):.2f}")
    if "horovod, 2 ranks x 1 core" in rates:
        hvd_1, hvd_2 = rates["horovod, 1 rank x 1 core"], rates["horovod, 2 ranks x 1 core"]
        print(f"horovod 2-rank parallel efficiency: {hvd_2 / (2 * hvd_1):.2f}")
        print(f"torch / horovod, 1 rank: {torch_1 / hvd_1:.2f};  2 ranks: "
              f"{torch_2 / hvd_2:.2f}")


if __name__ == "__main__":
    main()
