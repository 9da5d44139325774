"""Scaling sweep + report in one go, with the ratios printed side by side.

    python benchmarks/scaling.py [--rows 250000] [--executors 1,2] [--optimizers sgd,adam]
                                 [--epochs 3] [--local] [--workdir /tmp/hepspark-bench]
                                 [--task cnn --models basic_cnn,vgg16,resnet [--rows 10000]]

Makes (once) a generated HIGGS sample, runs ``hepspark bench scaling`` on it (a standalone
cluster of N workers on 127.0.0.1 per node count, or ``--local``), imports the GPU baselines
kept in ``benchmarks/results/`` (measured on a lent GPU machine with gpu_baseline.py), writes
the report and prints, per backend and optimizer: epoch time at each N, parallel efficiency
T(1)/(N T(N)) (target 0.90 at N=2) and N executors against the single-process Keras epoch on
the same machine (target 0.5 for BigDL, 0.9 for Horovod, issues #4/#5).

``--task cnn``: the zoo models of ``--models`` on generated jet images (the sweep makes
``--rows`` of them once), the seed protocol's Nadam (Adam on BigDL), and the GPU results of
``benchmarks/cnn_zoo.py`` kept as ``results/cnn_zoo_gpu*.json``; one line per model.
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
    parser.add_argument("--task", choices=("higgs", "cnn"), default="higgs")
    parser.add_argument("--models", default="basic_cnn,vgg16,resnet", help="--task cnn")
    parser.add_argument("--rows", type=int, help="HIGGS events (250,000) or images (10,000)")
    parser.add_argument("--executors", default="1,2")
    parser.add_argument("--optimizers", help="default: the seed protocol of the task")
    parser.add_argument("--backends", default="bigdl,horovod")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--local", action="store_true")
    parser.add_argument("--rerun", action="store_true")
    parser.add_argument("--workdir", default="/tmp/hepspark-bench")
    parser.add_argument("--experiment", help="default: TASK-scaling-bench")
    args = parser.parse_args()
    cnn = args.task == "cnn"
    experiment = args.experiment or f"{args.task}-scaling-bench"

    from hepspark.bench.baseline import import_baselines
    from hepspark.bench.sweep import SweepConfig, run_sweep
    from hepspark.cli.common import spark_session
    from hepspark.report.runs import load_runs
    from hepspark.report.scaling import write_scaling_report

    data = None  # --task cnn: the sweep generates its jets once in the workdir
    if not cnn:
        spark = spark_session("hepspark-bench-scaling", "local[*]")
        _, data = ensure_dataset(args.workdir, args.rows or 250_000, spark)
        spark.stop()
    uri = f"sqlite:///{os.path.join(args.workdir, 'scaling-mlflow.db')}"
    config = SweepConfig(data=data, task=args.task, models=tuple(args.models.split(",")),
                         demo_rows=args.rows if cnn else None, cache_dir=args.workdir,
                         backends=tuple(args.backends.split(",")),
                         executors=tuple(int(n) for n in args.executors.split(",")),
                         optimizers=tuple(args.optimizers.split(",")) if args.optimizers
                         else None,
                         epochs=args.epochs, local=args.local, experiment=experiment,
                         tracking_uri=uri, rerun=args.rerun,
                         log_dir=os.path.join(args.workdir, "scaling-logs"))
    outcome = run_sweep(config, progress=lambda m: print(m, flush=True))
    print(outcome.format())
    runs = load_runs(experiment, uri)
    if not any(r.backend == "keras-gpu" for r in runs):
        pattern = "cnn_zoo_gpu*.json" if cnn else "gpu_baseline_*.json"
        for path in sorted(glob.glob(os.path.join(HERE, "results", pattern))):
            import_baselines(path, experiment, uri)
    report = write_scaling_report(experiment, os.path.join(args.workdir, "scaling-report"), uri)
    runs = load_runs(experiment, uri)
    for model in sorted({r.model for r in runs if r.backend in ("keras", "bigdl", "horovod")}):
        mine = [r for r in runs if r.model == model]
        keras = [r.epoch_time_s for r in mine if r.backend == "keras"]
        keras_t = float(np.median(keras)) if keras else float("nan")
        print(f"\n{model or 'HIGGS DNN'}: Keras, 1 process on this machine: {keras_t:.2f} s "
              "per epoch")
        print(f"{'backend optimizer':22s} {'N':>3s} {'epoch s':>8s} {'efficiency':>10s} "
              f"{'Keras/ours':>10s}")
        for r in sorted((r for r in mine if r.backend in ("bigdl", "horovod")),
                        key=lambda r: (r.backend, r.optimizer, r.nodes)):
            one = next((o for o in mine if (o.backend, o.optimizer, o.nodes)
                        == (r.backend, r.optimizer, 1)), None)
            eff = one.epoch_time_s / (r.nodes * r.epoch_time_s) if one else float("nan")
            print(f"{r.backend + ' ' + r.optimizer:22s} {r.nodes:3d} {r.epoch_time_s:8.2f} "
                  f"{eff:10.2f} {keras_t / r.epoch_time_s:10.2f}")
    print(f"\nreport: {report}")


if __name__ == "__main__":
    main()
