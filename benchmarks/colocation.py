"""What one-core "nodes" on one machine cost each other, measured without any exchange.

    python benchmarks/colocation.py [--rows 200000] [--batch-size 1000] [--epochs 3]
        [--cpus 0 1] [--horovod] [--out results/colocation.json]

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

``--horovod`` adds two side-by-side phases in which the processes are Horovod ranks (Gloo,
launched by hand as ``horovodrun`` would, no Spark, no reader): first Horovod initialized
but idle (the same local step, nothing all-reduced: what Horovod's background thread,
which negotiates with the other rank every cycle, costs the compute on its core), then the
full synchronous step (the gradients all-reduced in one group, as the Horovod engine does).
The steps from "side by side" to "idle" to "all-reduce" split a two-node Horovod step into
co-location, Horovod's background cost and the exchange, each measured.
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

PHASES = ("plain", "horovod-idle", "horovod-allreduce")


def worker(cpu: int, rows: int, batch: int, epochs: int, sync_dir: str, out: str,
           phase: str = "plain", rank: int = 0, size: int = 1) -> None:
    """One pinned process: a warm-up epoch, then (once every process is ready) ``epochs``
    timed epochs; writes the step durations (s) as JSON to ``out``. ``phase`` "horovod-*":
    this process is Horovod rank ``rank`` of ``size``, idle or all-reducing the gradients."""
    os.sched_setaffinity(0, {cpu})
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    hvd = server = None
    if phase != "plain":
        from hepspark.bench.exchange_remote import join_gloo_ranks

        server = join_gloo_ranks(rank, size, "127.0.0.1", os.path.join(sync_dir, "port"))
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    if phase != "plain":
        import horovod.tensorflow as hvd

        hvd.init()
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
        if phase == "horovod-allreduce":  # one grouped all-reduce, as the Horovod engine
            tape = hvd.DistributedGradientTape(tape, num_groups=1)
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
    if hvd is not None:
        hvd.shutdown()
    if server is not None:
        server.stop()


def run_together(cpus: list[int], args, phase: str = "plain") -> list[np.ndarray]:
    """Step durations of one process per CPU in ``cpus``, timed epochs started together."""
    with tempfile.TemporaryDirectory(prefix="hepspark-colocation-") as sync_dir:
        outs = [os.path.join(sync_dir, f"steps-{cpu}.json") for cpu in cpus]
        procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(cpu), out,
                                   sync_dir, "--rows", str(args.rows), "--batch-size",
                                   str(args.batch_size), "--epochs", str(args.epochs),
                                   "--phase", phase, "--rank", str(rank),
                                   "--size", str(len(cpus))])
                 for rank, (cpu, out) in enumerate(zip(cpus, outs))]
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
    parser.add_argument("--horovod", action="store_true",
                        help="also: the processes as Horovod ranks, idle and all-reducing")
    parser.add_argument("--out", help="also write the numbers as JSON here")
    parser.add_argument("--worker", nargs=3, metavar=("CPU", "OUT", "SYNC_DIR"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=PHASES, default="plain", help=argparse.SUPPRESS)
    parser.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        cpu, out, sync_dir = args.worker
        worker(int(cpu), args.rows, args.batch_size, args.epochs, sync_dir, out, args.phase,
               args.rank, args.size)
        return
    if len(set(args.cpus)) < 2 or not set(args.cpus) <= os.sched_getaffinity(0):
        raise SystemExit(f"--cpus needs at least two of this process's CPUs "
                         f"({sorted(os.sched_getaffinity(0))}), got {args.cpus}")

    alone = run_together(args.cpus[:1], args)[0]
    phases = {"side_by_side": run_together(args.cpus, args)}
    if args.horovod:
        phases["horovod_idle"] = run_together(args.cpus, args, "horovod-idle")
        phases["horovod_allreduce"] = run_together(args.cpus, args, "horovod-allreduce")
    result = {"rows": args.rows, "batch_size": args.batch_size, "epochs": args.epochs,
              "cpus": args.cpus, "alone": stats_ms(alone)}
    for name, together in phases.items():
        steps = min(len(t) for t in together)
        paired = np.stack([t[:steps] for t in together])
        result[name] = stats_ms(paired.ravel())
        result[name]["straggler_wait_ms"] = 1e3 * (float(paired.max(axis=0).mean())
                                                   - float(paired.mean()))
    result["steps"] = steps
    result["slowdown_mean"] = result["side_by_side"]["mean_ms"] / result["alone"]["mean_ms"]
    result["slowdown_median"] = (result["side_by_side"]["median_ms"]
                                 / result["alone"]["median_ms"])
    result["straggler_wait_ms"] = result["side_by_side"]["straggler_wait_ms"]
    print(f"\n{len(args.cpus)} pinned one-core processes on CPUs {args.cpus}, "
          f"{args.rows:,d} rows, batch {args.batch_size}, {args.epochs} timed epochs"
          + ("" if args.horovod else ", no exchange"))
    print(f"{'step time (ms)':28s} {'mean':>8s} {'median':>8s} {'p90':>8s}")
    for name in ("alone", *phases):
        s = result[name]
        print(f"{name.replace('_', ' '):28s} {s['mean_ms']:8.2f} {s['median_ms']:8.2f} "
              f"{s['p90_ms']:8.2f}")
    print(f"co-location slowdown: x{result['slowdown_mean']:.3f} (mean), "
          f"x{result['slowdown_median']:.3f} (median)")
    print(f"straggler wait per synchronous step (mean of the slowest - mean): "
          f"{result['straggler_wait_ms']:.2f} ms")
    if args.horovod:
        idle, full = result["horovod_idle"], result["horovod_allreduce"]
        base = result["side_by_side"]
        result["horovod_idle_slowdown_mean"] = idle["mean_ms"] / base["mean_ms"]
        result["horovod_allreduce_ms"] = full["mean_ms"] - idle["mean_ms"]
        print(f"Horovod initialized, idle: x{result['horovod_idle_slowdown_mean']:.3f} on the "
              f"compute (mean; median x{idle['median_ms'] / base['median_ms']:.3f}): its "
              "background thread on the core that computes")
        print(f"the all-reduce adds {result['horovod_allreduce_ms']:.2f} ms per step (mean; "
              f"median {full['median_ms'] - idle['median_ms']:.2f} ms); the full step is "
              f"x{full['mean_ms'] / result['alone']['mean_ms']:.3f} of one process alone")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
