"""Scaling sweep + report in one go, with the ratios printed side by side.

    python benchmarks/scaling.py [--rows 250000] [--executors 1,2] [--optimizers sgd,adam]
                                 [--epochs 3] [--local] [--workdir /tmp/hepspark-bench]

Makes (once) a generated HIGGS sample, runs ``hepspark bench scaling`` on it (a standalone
cluster of N workers on 127.0.0.1 per node count, or ``--local``), imports the GPU baselines
kept in ``benchmarks/results/`` (measured on a lent GPU machine with gpu_baseline.py), writes
the report and prints, per backend and optimizer: epoch time at each N, parallel efficiency
T(1)/(N T(N)) (target 0.90 at N=2) and N executors against the single-process Keras epoch on
the same machine (target 0.5 for BigDL, 0.9 for Horovod, issues #4/#5).
"""
from __future__ import annotations

import argparse
import glob
import os

import numpy as np
from common import ensure_dataset

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--executors", default="1,2")
    parser.add_argument("--optimizers", default="sgd,adam,adamax,adadelta,adagrad")
    parser.add_argument("--backends", default="bigdl,horovod")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--local", action="store_true")
    parser.add_argument("--rerun", action="store_true")
    parser.add_argument("--workdir", default="/tmp/hepspark-bench")
    parser.add_argument("--experiment", default="higgs-scaling-bench")
    args = parser.parse_args()

    from hepspark.bench.baseline import import_baseline
    from hepspark.bench.sweep import SweepConfig, run_sweep
    from hepspark.report.runs import load_runs
    from hepspark.report.scaling import write_scaling_report
    from hepspark.session import get_spark

    spark = get_spark("hepspark-bench-scaling", master="local[*]")
    _, data = ensure_dataset(args.workdir, args.rows, spark)
    spark.stop()
    uri = f"sqlite:///{os.path.join(args.workdir, 'scaling-mlflow.db')}"
    config = SweepConfig(data=data, backends=tuple(args.backends.split(",")),
                         executors=tuple(int(n) for n in args.executors.split(",")),
                         optimizers=tuple(args.optimizers.split(",")),
                         epochs=args.epochs, local=args.local, experiment=args.experiment,
                         tracking_uri=uri, rerun=args.rerun,
                         log_dir=os.path.join(args.workdir, "scaling-logs"))
    outcome = run_sweep(config, progress=lambda m: print(m, flush=True))
    print(outcome.format())
    runs = load_runs(args.experiment, uri)
    if not any(r.backend == "keras-gpu" for r in runs):
        for path in sorted(glob.glob(os.path.join(HERE, "results", "gpu_baseline_*.json"))):
            import_baseline(path, args.experiment, uri)
    report = write_scaling_report(args.experiment, os.path.join(args.workdir, "scaling-report"),
                                  uri)
    runs = load_runs(args.experiment, uri)
    keras = [r.epoch_time_s for r in runs if r.backend == "keras"]
    keras_t = float(np.median(keras)) if keras else float("nan")
    print(f"\nKeras, 1 process on this machine: {keras_t:.2f} s per epoch")
    print(f"{'backend optimizer':22s} {'N':>3s} {'epoch s':>8s} {'efficiency':>10s} "
          f"{'Keras/ours':>10s}")
    for r in sorted((r for r in runs if r.backend in ("bigdl", "horovod")),
                    key=lambda r: (r.backend, r.optimizer, r.nodes)):
        one = next((o for o in runs if (o.backend, o.optimizer, o.nodes)
                    == (r.backend, r.optimizer, 1)), None)
        eff = one.epoch_time_s / (r.nodes * r.epoch_time_s) if one else float("nan")
        print(f"{r.backend + ' ' + r.optimizer:22s} {r.nodes:3d} {r.epoch_time_s:8.2f} "
              f"{eff:10.2f} {keras_t / r.epoch_time_s:10.2f}")
    print(f"\nreport: {report}")


if __name__ == "__main__":
    main()
