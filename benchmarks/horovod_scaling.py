"""Horovod-on-Spark scaling: 1 and 2 ranks of 1 core each vs one Keras process on 2 cores.

    python benchmarks/horovod_scaling.py [--rows 300000] [--batch-size 1000] [--epochs 3]

Same split, model (3x300 tanh), optimizer and batch size per rank, in one run. Steady-state
rows/s (each run's first epoch, which includes graph tracing and the weight broadcast, is
dropped). Targets (issue #5): 2-rank parallel efficiency >= 90%, and Horovod 2x1 core >= 90%
of Keras on 2 cores. All rates also as a fraction of the FLOP ceiling (STACK.md).
"""
from __future__ import annotations

from common import engine_bench, engine_parser


def main() -> None:
    args = engine_parser(__doc__).parse_args()

    from hepspark.config import EngineSettings

    bench = engine_bench(args, "bench-horovod")
    one_thread = EngineSettings(horovod_threads=1)  # each rank pinned to one compute thread

    keras_2 = bench.run("keras", 1)  # one process, TensorFlow on both cores
    hvd_1 = bench.run("horovod", 1, one_thread)
    hvd_2 = bench.run("horovod", 2, one_thread)

    print(f"\n{bench.describe()}")
    for name, rate in (("keras, 1 process x 2 cores", keras_2),
                       ("horovod, 1 rank x 1 core", hvd_1),
                       ("horovod, 2 ranks x 1 core", hvd_2)):
        print(f"{name:<30} {rate:>9,.0f} rows/s  {rate / bench.ceiling:6.1%} of ceiling")
    print(f"2-rank parallel efficiency (target >= 0.90): {hvd_2 / (2 * hvd_1):.2f}")
    print(f"horovod 2x1 / keras 1x2   (target >= 0.90): {hvd_2 / keras_2:.2f}")


if __name__ == "__main__":
    main()
