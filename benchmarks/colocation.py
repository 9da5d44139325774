"""What one-core "nodes" on one machine cost each other, measured without any exchange.

    python benchmarks/colocation.py [--rows 200000] [--batch-size 1000] [--epochs 3]
        [--cpus 0 1] [--out results/colocation.json]

The HIGGS DNN (3x300 tanh, Adam, ``tf_keras`` as on the Horovod ranks) trains on in-memory
generated events, one process per CPU, each pinned to its CPU with one TensorFlow thread,
every step timed (one compiled step per call): first one process alone, then one per CPU at
the same time (started together after a warm-up epoch). Nothing is exchanged, so what
changes between the two is what the nodes cost each other by sharing the machine (memory
bandwidth, caches, clocks), which separate machines would not. Printed:

- the step time alone and side by side (mean, median, p90) and their ratio: the per-node
  cost of co-location, a term of the scaling model measured in isolation (issue #16 item 5);
- the straggler wait a synchronous step would add: the mean over steps of the slowest
  process's step time minus the mean step time (steps paired by index, as an all-reduce
  pairs them).

With the Gloo all-reduce of ``hepspark bench exchange`` and a one-node Horovod run, these
predict a two-node Horovod step from parts that never ran together.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def worker(cpu: int, rows: int, batch: int, epochs: int, sync_dir: str, out: str) -> None:
    """One pinned process: a warm-up epoch, then (once every process is ready) ``epochs``
    timed epochs; writes the step durations (s) as JSON to ``out``."""
    os.sched_setaffinity(0, {cpu})
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import tf_keras

    from hepspark.data.higgs_generator import generate_events
    from hepspark.models.config import DenseNetConfig
    from hepspark.models.keras_dense import build_dense

    events = generate_events(rows, seed=cpu + 1).astype(np.float32)
    x = (events[:, 1:] - events[:, 1:].mean(0)) / events[:, 1:].std(0)
    y = events[:, :1]
    model = build_dense(DenseNetConfig(), x.shape[1], keras=tf_keras, seed=1)
    optimizer = tf_keras.optimizers.Adam()
    loss_fn = tf_keras.losses.BinaryCrossentropy()

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                      model.trainable_variables))
        return loss

    batches = [(tf.constant(x[i:i + batch]), tf.constant(y[i:i + batch]))
               for i in range(0, rows - batch + 1, batch)]
    for xb, yb in batches:  # warm-up epoch: tracing, allocations
        step(xb, yb).numpy()
    open(os.path.join(sync_dir, f"ready-{cpu}"), "w").close()
    while not os.path.exists(os.path.join(sync_dir, "go")):
        time.sleep(0.001)
    durations = []
    for _ in range(epochs):
        for xb, yb in batches:
            start = time.perf_counter()
            step(xb, yb).numpy()
            durations.append(time.perf_counter() - start)
    with open(out, "w") as handle:
        json.dump(durations, handle)


def run_together(cpus: list[int], args) -> list[np.ndarray]:
    """Step durations of one process per CPU in ``cpus``, timed epochs started together."""
    with tempfile.TemporaryDirectory(prefix="hepspark-colocation-") as sync_dir:
        outs = [os.path.join(sync_dir, f"steps-{cpu}.json") for cpu in cpus]
        procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(cpu), out,
                                   sync_dir, "--rows", str(args.rows), "--batch-size",
                                   str(args.batch_size), "--epochs", str(args.epochs)])
                 for cpu, out in zip(cpus, outs)]
        while not all(os.path.exists(os.path.join(sync_dir, f"ready-{c}")) for c in cpus):
            if any(p.poll() not in (None, 0) for p in procs):
                raise SystemExit("a worker failed before its timed epochs (see above)")
            time.sleep(0.05)
        open(os.path.join(sync_dir, "go"), "w").close()
        if any(p.wait() != 0 for p in procs):
            raise SystemExit("a worker failed (see above)")
        return [np.array(json.load(open(out))) for out in outs]


def stats_ms(steps: np.ndarray) -> dict[str, float]:
    return {"mean_ms": 1e3 * float(steps.mean()), "median_ms": 1e3 * float(np.median(steps)),
            "p90_ms": 1e3 * float(np.percentile(steps, 90))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cpus", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", help="also write the numbers as JSON here")
    parser.add_argument("--worker", nargs=3, metavar=("CPU", "OUT", "SYNC_DIR"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        cpu, out, sync_dir = args.worker
        worker(int(cpu), args.rows, args.batch_size, args.epochs, sync_dir, out)
        return
    if len(set(args.cpus)) < 2 or not set(args.cpus) <= os.sched_getaffinity(0):
        raise SystemExit(f"--cpus needs at least two of this process's CPUs "
                         f"({sorted(os.sched_getaffinity(0))}), got {args.cpus}")

    alone = run_together(args.cpus[:1], args)[0]
    together = run_together(args.cpus, args)
    steps = min(len(t) for t in together)
    paired = np.stack([t[:steps] for t in together])
    slowest = paired.max(axis=0)
    mean_together = float(paired.mean())
    result = {
        "rows": args.rows, "batch_size": args.batch_size, "epochs": args.epochs,
        "cpus": args.cpus, "steps": steps,
        "alone": stats_ms(alone),
        "side_by_side": stats_ms(paired.ravel()),
        "slowdown_mean": mean_together / float(alone.mean()),
        "slowdown_median": float(np.median(paired)) / float(np.median(alone)),
        "straggler_wait_ms": 1e3 * (float(slowest.mean()) - mean_together),
    }
    print(f"\n{len(args.cpus)} pinned one-core processes on CPUs {args.cpus}, "
          f"{args.rows:,d} rows, batch {args.batch_size}, {args.epochs} timed epochs, "
          "no exchange")
    print(f"{'step time (ms)':28s} {'mean':>8s} {'median':>8s} {'p90':>8s}")
    for name in ("alone", "side_by_side"):
        s = result[name]
        print(f"{name.replace('_', ' '):28s} {s['mean_ms']:8.2f} {s['median_ms']:8.2f} "
              f"{s['p90_ms']:8.2f}")
    print(f"co-location slowdown: x{result['slowdown_mean']:.3f} (mean), "
          f"x{result['slowdown_median']:.3f} (median)")
    print(f"straggler wait per synchronous step (mean of the slowest - mean): "
          f"{result['straggler_wait_ms']:.2f} ms")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
