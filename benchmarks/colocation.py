"""What one-core "nodes" on one machine cost each other, measured without any exchange.

    python benchmarks/colocation.py [--rows 200000] [--batch-size 1000] [--epochs 3]
        [--cpus 0 1] [--horovod | --torch] [--out results/colocation.json]

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

``--torch`` does the same for the torch engine: every phase runs its step (Keras 3 on the
torch backend, one torch thread, :class:`~hepspark.backends.torch_step.TorchStep`), "idle"
with a Gloo process group initialized (torch's Gloo has no background negotiation, so this
should cost nothing) and "all-reduce" with the model in ``DistributedDataParallel``, whose
backward pass all-reduces the gradients as the torch engine's ranks do (no Spark, no
``torchrun``, no reader). ``hepspark report scaling --colocation FILE`` takes either file
as the model's g and x for that engine; files of one engine at several ``--batch-size``
(e.g. 500, 1000, 4000, the sweep's batches) make g and x follow the batch.
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

GROUPS = ("horovod", "torch")
PHASES = ("plain", "idle", "allreduce")
STEPS = {"horovod": "tf_keras step (the Horovod engine's)",
         "torch": "Keras 3 on torch, TorchStep (the torch engine's)"}
IDLE = {"horovod": "Horovod initialized, idle (its background thread negotiates every cycle "
                   "on the core that computes)",
        "torch": "Gloo process group initialized, model not in DDP"}


def _horovod_step(phase, rank, size, sync_dir, x, y):
    """The Horovod engine's step (tf_keras, one TF thread; ``phase`` "idle": Horovod
    initialized, nothing all-reduced; "allreduce": the gradients in one group). Returns
    (step(xb, yb) that blocks until done, the batches' tensor type, close())."""
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

    from hepspark.models.config import DenseNetConfig
    from hepspark.models.keras_dense import build_dense

    model = build_dense(DenseNetConfig(), x.shape[1], keras=tf_keras, seed=1)
    optimizer = tf_keras.optimizers.Adam()
    loss_fn = tf_keras.losses.BinaryCrossentropy()

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        if phase == "allreduce":  # one grouped all-reduce, as the Horovod engine
            tape = hvd.DistributedGradientTape(tape, num_groups=1)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                      model.trainable_variables))
        return loss

    def close():
        if hvd is not None:
            hvd.shutdown()
        if server is not None:
            server.stop()

    return (lambda xb, yb: step(xb, yb).numpy()), tf.constant, close


def _torch_step(phase, rank, size, sync_dir, x, y):
    """The torch engine's step (Keras 3 on torch, one torch thread, TorchStep; "idle": a
    Gloo process group, the model not wrapped; "allreduce": the model in
    DistributedDataParallel, whose backward pass all-reduces the gradients)."""
    os.environ["KERAS_BACKEND"] = "torch"
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    import keras

    from hepspark.backends.optimizers import keras_optimizer
    from hepspark.backends.torch_step import TorchStep
    from hepspark.models.config import DenseNetConfig
    from hepspark.models.keras_dense import build_dense

    if phase != "plain":
        dist.init_process_group("gloo", rank=rank, world_size=size,
                                init_method=f"file://{os.path.join(sync_dir, 'torch-store')}")
    model = build_dense(DenseNetConfig(), x.shape[1], keras=keras, seed=1)
    module = torch.nn.parallel.DistributedDataParallel(model) if phase == "allreduce" else None
    step = TorchStep(keras, model, keras_optimizer(keras, "adam"), "binary_crossentropy",
                     module=module)

    def close():
        # Dropping the DDP model can deadlock in Gloo's teardown (torch 2.13; see
        # hepspark/backends/torch_remote.py). The timings are written: skip the teardown.
        if phase != "plain":
            os._exit(0)

    return (lambda xb, yb: float(step(xb, yb))), torch.from_numpy, close


def worker(cpu: int, rows: int, batch: int, epochs: int, sync_dir: str, out: str,
           phase: str = "plain", rank: int = 0, size: int = 1, group: str = "horovod") -> None:
    """One pinned process: a warm-up epoch, then (once every process is ready) ``epochs``
    timed epochs; writes the step durations (s) as JSON to ``out``. ``group``: whose step
    (the Horovod engine's or the torch engine's); ``phase`` "idle"/"allreduce": this process
    is rank ``rank`` of ``size`` in that engine's group, idle or all-reducing the gradients."""
    os.sched_setaffinity(0, {cpu})
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    from hepspark.data.higgs_generator import generate_events

    events = generate_events(rows, seed=cpu + 1).astype(np.float32)
    x = (events[:, 1:] - events[:, 1:].mean(0)) / events[:, 1:].std(0)
    y = np.ascontiguousarray(events[:, :1])
    make = {"horovod": _horovod_step, "torch": _torch_step}[group]
    step, tensor, close = make(phase, rank, size, sync_dir, x, y)
    batches = [(tensor(x[i:i + batch]), tensor(y[i:i + batch]))
               for i in range(0, rows - batch + 1, batch)]
    for xb, yb in batches:  # warm-up epoch: tracing, allocations
        step(xb, yb)
    open(os.path.join(sync_dir, f"ready-{cpu}"), "w").close()
    while not os.path.exists(os.path.join(sync_dir, "go")):
        time.sleep(0.001)
    durations = []
    for _ in range(epochs):
        for xb, yb in batches:
            start = time.perf_counter()
            step(xb, yb)
            durations.append(time.perf_counter() - start)
    with open(out, "w") as handle:
        json.dump(durations, handle)
    close()


def run_together(cpus: list[int], args, phase: str = "plain") -> list[np.ndarray]:
    """Step durations of one process per CPU in ``cpus``, timed epochs started together."""
    with tempfile.TemporaryDirectory(prefix="hepspark-colocation-") as sync_dir:
        outs = [os.path.join(sync_dir, f"steps-{cpu}.json") for cpu in cpus]
        procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(cpu), out,
                                   sync_dir, "--rows", str(args.rows), "--batch-size",
                                   str(args.batch_size), "--epochs", str(args.epochs),
                                   "--phase", phase, "--rank", str(rank),
                                   "--size", str(len(cpus)),
                                   "--group", args.group or "horovod"],
                                  # TensorFlow's C++ start-up lines come before the
                                  # worker's own setting takes effect
                                  env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
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
    engines = parser.add_mutually_exclusive_group()
    engines.add_argument("--horovod", action="store_const", const="horovod", dest="group",
                         help="also: the processes as Horovod ranks, idle and all-reducing")
    engines.add_argument("--torch", action="store_const", const="torch", dest="group",
                         help="the torch engine's step throughout (Keras 3 on torch), and "
                         "also: the processes as a Gloo process group, idle and in DDP")
    parser.add_argument("--out", help="also write the numbers as JSON here")
    parser.add_argument("--worker", nargs=3, metavar=("CPU", "OUT", "SYNC_DIR"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=PHASES, default="plain", help=argparse.SUPPRESS)
    parser.add_argument("--group", choices=GROUPS, help=argparse.SUPPRESS)  # a worker's
    parser.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        cpu, out, sync_dir = args.worker
        worker(int(cpu), args.rows, args.batch_size, args.epochs, sync_dir, out, args.phase,
               args.rank, args.size, args.group)
        return
    if len(set(args.cpus)) < 2 or not set(args.cpus) <= os.sched_getaffinity(0):
        raise SystemExit(f"--cpus needs at least two of this process's CPUs "
                         f"({sorted(os.sched_getaffinity(0))}), got {args.cpus}")

    alone = run_together(args.cpus[:1], args)[0]
    phases = {"side_by_side": run_together(args.cpus, args)}
    group = args.group
    if group:
        phases[f"{group}_idle"] = run_together(args.cpus, args, "idle")
        phases[f"{group}_allreduce"] = run_together(args.cpus, args, "allreduce")
    result = {"rows": args.rows, "batch_size": args.batch_size, "epochs": args.epochs,
              "cpus": args.cpus, "step": STEPS[group or "horovod"], "alone": stats_ms(alone)}
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
          + f", {result['step']}" + ("" if group else ", no exchange"))
    print(f"{'step time (ms)':28s} {'mean':>8s} {'median':>8s} {'p90':>8s}")
    for name in ("alone", *phases):
        s = result[name]
        print(f"{name.replace('_', ' '):28s} {s['mean_ms']:8.2f} {s['median_ms']:8.2f} "
              f"{s['p90_ms']:8.2f}")
    print(f"co-location slowdown: x{result['slowdown_mean']:.3f} (mean), "
          f"x{result['slowdown_median']:.3f} (median)")
    print(f"straggler wait per synchronous step (mean of the slowest - mean): "
          f"{result['straggler_wait_ms']:.2f} ms")
    if group:
        idle, full = result[f"{group}_idle"], result[f"{group}_allreduce"]
        base = result["side_by_side"]
        result[f"{group}_idle_slowdown_mean"] = idle["mean_ms"] / base["mean_ms"]
        result[f"{group}_allreduce_ms"] = full["mean_ms"] - idle["mean_ms"]
        print(f"{IDLE[group]}: x{result[f'{group}_idle_slowdown_mean']:.3f} on the compute "
              f"(mean; median x{idle['median_ms'] / base['median_ms']:.3f})")
        print(f"the all-reduce adds {result[f'{group}_allreduce_ms']:.2f} ms per step (mean; "
              f"median {full['median_ms'] - idle['median_ms']:.2f} ms); the full step is "
              f"x{full['mean_ms'] / result['alone']['mean_ms']:.3f} of one process alone")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
