"""Keras backend (Petastorm streaming) vs plain in-memory ``model.fit`` on numpy arrays.

    python benchmarks/higgs_train.py [--rows 500000] [--batch-size 1000] [--epochs 3] [--repeats 2]

Same split, model (3x300 tanh), optimizer and batch size, in one run; both as a fraction
of the machine's FLOP ceiling (STACK.md). Target (issue #3): ours >= 80% of in-memory.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
from common import MACHINE_GFLOPS, ceiling_rows_per_s, ensure_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per repeat (the first "
                        "of each is dropped: it includes graph tracing)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--workdir", default="/tmp/hepspark-bench")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from hepspark.cli.common import spark_session

    spark = spark_session("bench-train", "local[*]")
    _, data = ensure_dataset(args.workdir, args.rows, spark)
    spark.stop()

    import keras

    from hepspark.backends import get_backend
    from hepspark.backends.optimizers import keras_optimizer
    from hepspark.config import TrainConfig
    from hepspark.data.readers import HiggsDataset
    from hepspark.models.keras_dense import build_dense

    ds = HiggsDataset(data)
    config = TrainConfig(data=data, optimizer=args.optimizer, batch_size=args.batch_size,
                         epochs=args.epochs)
    n_params = config.model.num_parameters(len(ds.features))
    ceiling = ceiling_rows_per_s(n_params)

    x, y = ds.load("train")
    plain: list[float] = []
    ours: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            plain.append(len(y) / (time.perf_counter() - self.t))

    # Alternate the two, --repeats times: this machine's speed drifts by tens of percent
    # over a minute, and alternating exposes both to the same drift.
    for _ in range(args.repeats):
        # 1. plain Keras on in-memory numpy arrays
        keras.utils.set_random_seed(1)
        model = build_dense(config.model, x.shape[1], keras=keras, seed=1)
        model.compile(optimizer=keras_optimizer(keras, args.optimizer),
                      loss="binary_crossentropy")
        start = len(plain)
        model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0,
                  shuffle=True, callbacks=[Clock()])
        del plain[start]  # the first epoch of a fresh model includes graph tracing
        # 2. our backend, streaming from Petastorm
        records = []
        get_backend("keras").fit(config, ds, records.append)
        ours += [r.rows_per_s for r in records[1:]]

    best_plain, best_ours = max(plain), max(ours)
    median_plain, median_ours = float(np.median(plain)), float(np.median(ours))
    print(f"\n{len(y):,d} training rows, model {config.model.describe()} ({n_params:,d} params), "
          f"batch {args.batch_size}, {args.optimizer}")
    print(f"FLOP ceiling at {MACHINE_GFLOPS:.0f} GFLOP/s: {ceiling:,.0f} rows/s")
    print(f"{'plain keras model.fit (numpy in memory)':<42} "
          + " ".join(f"{r:>9,.0f}" for r in plain) + f"  rows/s per epoch; best "
          f"{best_plain:,.0f} = {best_plain / ceiling:.0%} of ceiling")
    print(f"{'hepspark keras backend (petastorm feed)':<42} "
          + " ".join(f"{r:>9,.0f}" for r in ours) + f"  rows/s per epoch; best "
          f"{best_ours:,.0f} = {best_ours / ceiling:.0%} of ceiling")
    print(f"ratio hepspark / plain (target >= 0.80): best {best_ours / best_plain:.2f}, "
          f"median {median_ours / median_plain:.2f}")


if __name__ == "__main__":
    main()
