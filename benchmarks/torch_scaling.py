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

from common import engine_bench, engine_parser


def main() -> None:
    parser = engine_parser(__doc__)
    parser.add_argument("--no-horovod", action="store_true", help="skip the Horovod runs")
    args = parser.parse_args()

    from hepspark.backends.torch_backend import require_torch
    from hepspark.config import EngineSettings

    require_torch()
    bench = engine_bench(args, "bench-torch")
    run = bench.run
    one_thread = EngineSettings(horovod_threads=1)  # each rank pinned to one compute thread

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

    print(f"\n{bench.describe()}")
    keras_2 = rates["keras (TF), 1 process x 2 cores"]
    for name, rate in rates.items():
        print(f"{name:<34} {rate:>9,.0f} rows/s  {rate / bench.ceiling:6.1%} of ceiling  "
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
