"""An engine's training step against the batch size: one pinned process, nothing else.

    python benchmarks/step_curve.py --horovod|--torch [--batch-sizes 250,500,1000,2000,4000,8000]
        [--rows 200000] [--epochs 3] [--cpu 0] [--out results/step_curve_horovod.json]

The HIGGS DNN's step of one engine (``--horovod``: tf_keras, as on a Horovod rank;
``--torch``: Keras 3 on torch, the torch engine's ``TorchStep``), one thread, pinned to one
CPU, on in-memory generated events, every step timed after a warm-up epoch
(``benchmarks/colocation.py``'s "alone" phase), once per batch size. Printed per batch: the
step time and the time per row, against the row time at the reference batch.

Why: the scaling model's compute term takes the time per row as a constant (``T/S = a·B +
b``), and it is not: a batch of 4000 x 300 activations (4.8 MB a layer) no longer fits the
cache, while larger matrix products run closer to the core's peak. Which wins depends on the
engine. ``hepspark report scaling --step-curve FILE`` (once per engine) lets the model scale
its per-row cost by this curve, measured apart from Spark and the reader, so a sweep at two
batch sizes predicts a third (issue #16, item 5).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from colocation import STEPS, run_together, stats_ms

FORMAT = "hepspark-step-curve/1"


def batch_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}"
                                         ) from None
    if len(sizes) < 2 or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"need two or more batch sizes >= 1, got {text!r}")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    engines = parser.add_mutually_exclusive_group(required=True)
    engines.add_argument("--horovod", action="store_const", const="horovod", dest="group",
                         help="the Horovod engine's step (tf_keras)")
    engines.add_argument("--torch", action="store_const", const="torch", dest="group",
                         help="the torch engine's step (Keras 3 on torch, TorchStep)")
    parser.add_argument("--batch-sizes", type=batch_sizes, default="250,500,1000,2000,4000,8000",
                        help="rows per step to time (default: %(default)s)")
    parser.add_argument("--rows", type=int, default=200_000,
                        help="generated events held in memory (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per batch size")
    parser.add_argument("--cpu", type=int, default=min(os.sched_getaffinity(0)),
                        help="the CPU the process is pinned to (default: %(default)s)")
    parser.add_argument("--out", help="also write the curve as JSON here")
    args = parser.parse_args()
    if args.cpu not in os.sched_getaffinity(0):
        raise SystemExit(f"--cpu {args.cpu} is not one of this process's CPUs "
                         f"({sorted(os.sched_getaffinity(0))})")
    if args.batch_sizes[-1] > args.rows:
        raise SystemExit(f"--batch-sizes: {args.batch_sizes[-1]} is more than --rows "
                         f"{args.rows}")

    points = []
    for batch in args.batch_sizes:
        run = argparse.Namespace(rows=args.rows, batch_size=batch, epochs=args.epochs,
                                 group=args.group)
        steps = run_together([args.cpu], run)[0]
        points.append({"batch_size": batch, "steps": len(steps), **stats_ms(steps)})
        print(f"batch {batch:6d}: {points[-1]['mean_ms']:8.2f} ms per step", file=sys.stderr,
              flush=True)
    reference = min(points, key=lambda p: abs(p["batch_size"] - 1000))
    per_row_ref = reference["mean_ms"] / reference["batch_size"]
    print(f"\n{STEPS[args.group]}, CPU {args.cpu}, {args.rows:,d} rows, {args.epochs} timed "
          "epochs per batch size")
    print(f"{'batch':>6s} {'mean ms':>9s} {'median ms':>10s} {'µs per row':>11s} "
          f"{'per row vs ' + str(reference['batch_size']):>18s}")
    for p in points:
        per_row = p["mean_ms"] / p["batch_size"]
        print(f"{p['batch_size']:6d} {p['mean_ms']:9.2f} {p['median_ms']:10.2f} "
              f"{1e3 * per_row:11.2f} {'x%.3f' % (per_row / per_row_ref):>18s}")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"format": FORMAT, "engine": args.group, "step": STEPS[args.group],
                       "rows": args.rows, "epochs": args.epochs, "cpu": args.cpu,
                       "points": points}, handle, indent=1)


if __name__ == "__main__":
    main()
