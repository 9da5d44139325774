"""``hepspark bench scaling|import-baseline`` and ``hepspark report scaling``: the scaling
sweep (:mod:`hepspark.bench.sweep`), imported GPU baselines and the report read back from
MLflow (:mod:`hepspark.report.scaling`)."""
from __future__ import annotations

import argparse
import os

from hepspark.bench.sweep import BATCH_SCALINGS, DEFAULT_BACKENDS, SweepConfig, run_sweep
from hepspark.bench.sweep_tasks import IMAGE_DATASETS, IMAGE_SWEEP_ROWS, TASKS
from hepspark.cli.common import cache_dir
from hepspark.cpusets import parse_cpus, worker_cpu_sets
from hepspark.report.scaling import HIGGS_TRAIN_ROWS, write_scaling_report


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def add_scaling(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="converted dataset directory (HIGGS, or images with "
                        "--task cnn); without it a generated sample is made once in --cache-dir "
                        "and reused")
    parser.add_argument("--task", choices=tuple(TASKS), default="higgs",
                        help="higgs: the DNN (default); cnn: the zoo models of --models on "
                        "image data")
    parser.add_argument("--models", type=_names, default=("basic_cnn",),
                        help="--task cnn: comma-separated zoo models, a family with a depth "
                        "for vgg/resnet, 'b' for bottleneck, '_v2' (e.g. basic_cnn,vgg16,"
                        "resnet,resnet29b; default basic_cnn; 'hepspark models list')")
    parser.add_argument("--dataset", choices=IMAGE_DATASETS,
                        help="--task cnn without --data: generate jets (default) or lartpc images")
    parser.add_argument("--demo-rows", type=int,
                        help="rows of the generated dataset without --data (HIGGS 200,000; "
                        f"images {IMAGE_SWEEP_ROWS:,d})")
    parser.add_argument("--cache-dir", help=f"where generated datasets live ({cache_dir()})")
    parser.add_argument("--backends", type=_names, default=DEFAULT_BACKENDS,
                        help="comma-separated, among bigdl,horovod,torch (default "
                        "bigdl,horovod; torch needs 'make install-torch')")
    parser.add_argument("--executors", type=_ints, default=(1, 2),
                        help="node counts to measure, e.g. 1,2,4 (default 1,2)")
    parser.add_argument("--optimizers", type=_names,
                        help="comma-separated; an engine without one skips it, saying so "
                        "(default: the seed protocol: HIGGS sgd,adam,adamax,adadelta,adagrad; "
                        "CNN nadam, adam on bigdl which has no nadam)")
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs per run; the first is reported apart (warm-up) (default 3)")
    parser.add_argument("--batch-size", type=_ints, dest="batch_sizes",
                        help="rows per step per executor (see --batch-scaling); several, e.g. "
                        "500,2000, let the report split per-row and per-step cost (default "
                        "1000; CNN 128)")
    parser.add_argument("--batch-scaling", choices=BATCH_SCALINGS, default="per-executor",
                        help="per-executor: each executor takes --batch-size rows per step "
                        "(global batch grows with N); global: the global batch is fixed")
    parser.add_argument("--cores-per-executor", type=int, default=1)
    pinning = parser.add_mutually_exclusive_group()
    pinning.add_argument(
        "--cpus-per-worker", type=int,
        help="isolated nodes: pin each node (worker, executors, Python workers, threads) to "
        "this many CPUs of its own, and the Keras baselines to 1 node's and all nodes' CPUs; "
        "sets --cores-per-executor")
    pinning.add_argument(
        "--worker-cpus", nargs="+", type=parse_cpus, metavar="CPUS",
        help="isolated nodes on these CPU lists, node i on the i-th (e.g. --worker-cpus 0 1)")
    parser.add_argument("--driver-cpus", type=parse_cpus, default=(),
                        help="pin the jobs' driver here (default: where the sweep may run); a "
                        "placement given here is its own measurement: '--executors 1 "
                        "--worker-cpus 0 --driver-cpus 0' measures what the driver costs a "
                        "node whose core it shares (the report's h)")
    parser.add_argument("--link", default="loopback",
                        help="the link the nodes exchange over: loopback (default, as it is) or "
                        "loopback-<R>gbit/-<R>mbit: lo shaped to that rate with tc tbf while "
                        "the sweep runs (root; both directions share it); the report predicts "
                        "these runs from 'hepspark bench exchange --links ...,loopback-1gbit'")
    parser.add_argument("--features", choices=("all", "low", "high"), default="all")
    parser.add_argument("--no-baseline", action="store_false", dest="baseline",
                        help="skip the Keras single-process baseline runs")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--master", help="use this Spark master for every node count "
                       "(default: start a standalone cluster of N workers on 127.0.0.1 per N)")
    where.add_argument("--local", action="store_true",
                       help="run in local[N x cores] instead of a standalone cluster")
    parser.add_argument("--worker-memory", default="2g", help="memory of each started worker")
    parser.add_argument("--experiment", help="MLflow experiment (default higgs-scaling; "
                        "cnn-scaling with --task cnn)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default as for train)")
    parser.add_argument("--rerun", action="store_true",
                        help="measure again combinations already finished in the experiment")
    parser.add_argument("--log-dir", help="job logs (default ~/.cache/hepspark/scaling/EXP)")
    parser.add_argument("--job-timeout", type=float, default=3600.0, dest="job_timeout_s",
                        help="seconds before a job is killed and counted failed (3600)")
    parser.add_argument("--train-arg", action="append", default=[], dest="train_args",
                        metavar="ARG", help="extra argument for every training job, repeatable "
                        "(e.g. --train-arg=--width --train-arg=64)")
    parser.add_argument("--submit-arg", action="append", default=[], dest="submit_args",
                        metavar="ARG", help="extra spark-submit argument, repeatable "
                        "(e.g. --submit-arg=--driver-memory --submit-arg=4g)")
    parser.add_argument("--report", metavar="DIR",
                        help="write the scaling report of the experiment here afterwards")
    parser.set_defaults(handler=run_scaling)


def run_scaling(args: argparse.Namespace) -> int:
    names = {f for f in SweepConfig.__dataclass_fields__}
    values = {k: v for k, v in vars(args).items() if k in names}
    for name in ("train_args", "submit_args"):
        values[name] = tuple(values[name])
    values["experiment"] = args.experiment or f"{args.task}-scaling"
    values["cache_dir"] = args.cache_dir or cache_dir()
    if args.cpus_per_worker is not None or args.worker_cpus:
        sets = worker_cpu_sets(max(args.executors), args.cpus_per_worker, args.worker_cpus or ())
        values.update(worker_cpus=tuple(sets), cores_per_executor=len(sets[0]))
    else:
        values["worker_cpus"] = ()
    config = SweepConfig(**values)
    outcome = run_sweep(config, progress=lambda m: print(m, flush=True))
    print(outcome.format(), flush=True)
    if args.report:
        report = write_scaling_report(config.experiment, args.report, config.tracking_uri)
        print(f"[scaling] report: {report}", flush=True)
    else:
        print(f"[scaling] report: hepspark report scaling --experiment {config.experiment} "
              "--output scaling-report", flush=True)
    return 1 if outcome.failed else 0


def add_import_baseline(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="JSON written by benchmarks/gpu_baseline.py --output "
                        "(HIGGS) or benchmarks/cnn_zoo.py --output (one run per zoo model)")
    parser.add_argument("--experiment", default="higgs-scaling", help="MLflow experiment")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default as for train)")
    parser.set_defaults(handler=run_import_baseline)


def run_import_baseline(args: argparse.Namespace) -> int:
    from hepspark.bench.baseline import import_baselines

    run_ids = import_baselines(args.file, args.experiment, args.tracking_uri)
    print(f"[baseline] {args.file} logged as run(s) {', '.join(run_ids)} in experiment "
          f"{args.experiment!r}")
    return 0


def add_report_scaling(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--experiment", default="higgs-scaling", help="MLflow experiment")
    parser.add_argument("--output", default="scaling-report", help="report directory")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default as for train)")
    parser.add_argument("--epoch-rows", type=int, default=HIGGS_TRAIN_ROWS,
                        help="rows of the epoch the model predicts (default: HIGGS, 10.5M)")
    parser.add_argument("--max-nodes", type=int, default=64, help="predict up to this many")
    parser.add_argument("--bandwidth-gbps", type=float, default=10.0,
                        help="assumed network bandwidth between nodes (default 10)")
    parser.add_argument("--latency-us", type=float, default=50.0,
                        help="assumed network latency per message (default 50)")
    parser.add_argument("--bigdl-fetch-latency-ms", type=float, default=1.0,
                        help="assumed extra cost of one BigDL block-manager fetch (default 1)")
    parser.add_argument("--context", metavar="TEXT",
                        help="how the runs were measured (the machine, what else ran on it), "
                        "printed first in the report, e.g. 'quiet 2-core VM, nothing else "
                        "running'")
    parser.add_argument("--target-auc", type=float,
                        help="validation AUC for the time-to-target plot (default: the target "
                        "the runs logged, else 0.78)")
    parser.add_argument("--exchange", dest="exchange_file", metavar="FILE",
                        help="links measured by 'hepspark bench exchange' (replaces the assumed "
                        "bandwidth and latency)")
    parser.add_argument("--link", default="veth-10gbit",
                        help="the measured link of --exchange to predict over (veth-10gbit)")
    parser.add_argument("--colocation", dest="group_cost_files", metavar="FILE",
                        action="append", default=[],
                        help="'python benchmarks/colocation.py --horovod|--torch --out FILE': "
                        "what one rank of that engine's group costs a one-core node, measured "
                        "apart (the model's g and x terms); once per engine, or once per run: "
                        "repeated runs at one --batch-size are averaged, several batch sizes "
                        "interpolated")
    parser.add_argument("--step-curve", dest="step_curve_files", metavar="FILE",
                        action="append", default=[],
                        help="'python benchmarks/step_curve.py --horovod|--torch --out FILE': "
                        "that engine's step time against the batch size, measured apart (the "
                        "model's time per row follows it instead of being constant); once per "
                        "engine")
    parser.add_argument("--no-mlflow-artifacts", action="store_false", dest="log_to_mlflow",
                        help="do not log the report back to MLflow")
    parser.set_defaults(handler=run_report_scaling)


def run_report_scaling(args: argparse.Namespace) -> int:
    options = {k: getattr(args, k) for k in ("epoch_rows", "max_nodes", "bandwidth_gbps",
                                             "latency_us", "bigdl_fetch_latency_ms",
                                             "log_to_mlflow", "target_auc", "exchange_file",
                                             "link", "group_cost_files", "step_curve_files",
                                             "context")}
    if args.max_nodes < 1 or args.epoch_rows < 1:
        raise ValueError("--max-nodes and --epoch-rows must be >= 1")
    path = write_scaling_report(args.experiment, args.output, args.tracking_uri, **options)
    print(f"[report] {path}\n[report] {os.path.join(os.path.dirname(path), 'report.html')}")
    return 0


def add_exchange(parser: argparse.ArgumentParser) -> None:
    from hepspark.bench.exchange import CNN_PARAMS, DEFAULT_LINKS, ENGINES, HIGGS_DNN_PARAMS

    parser.add_argument("--output", default="exchange.json", help="JSON for 'report scaling "
                        "--exchange' (default exchange.json)")
    parser.add_argument("--links", type=_names, default=DEFAULT_LINKS,
                        help="comma-separated among loopback, veth, veth-<R>gbit, veth-<R>mbit, "
                        "loopback-<R>gbit (lo itself shaped, as 'bench scaling --link' trains "
                        "over) (veth and shaped links need root: ip netns, tc) (default "
                        + ",".join(DEFAULT_LINKS) + ")")
    parser.add_argument("--sizes", type=_ints, default=(HIGGS_DNN_PARAMS, CNN_PARAMS),
                        dest="sizes_floats", help="float32 tensor sizes to all-reduce (default: "
                        f"the HIGGS DNN's {HIGGS_DNN_PARAMS} and VGG16-on-jets' {CNN_PARAMS})")
    parser.add_argument("--engines", type=_names, default=None,
                        help=f"whose all-reduce to time, among {','.join(ENGINES)} (default: "
                        "horovod, and torch where it is installed)")
    parser.add_argument("--repeats", type=int, default=50, help="all-reduces per size (50)")
    parser.add_argument("--bulk-mb", type=int, default=32, help="MiB per TCP bulk send (32)")
    parser.add_argument("--timeout", type=float, default=300.0, dest="timeout_s",
                        help="seconds per process pair before it is stopped (300)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an --output this command wrote before")
    parser.set_defaults(handler=run_exchange)


def run_exchange(args: argparse.Namespace) -> int:
    from hepspark.bench.exchange import ExchangeConfig, default_engines
    from hepspark.bench.exchange import run_exchange as measure

    config = ExchangeConfig(output=args.output, links=args.links, sizes_floats=args.sizes_floats,
                            repeats=args.repeats, bulk_mb=args.bulk_mb, timeout_s=args.timeout_s,
                            overwrite=args.overwrite,
                            engines=args.engines or default_engines())
    measure(config, progress=lambda m: print(m, flush=True))
    link = "veth-10gbit" if "veth-10gbit" in config.links else config.links[-1]
    print(f"[exchange] {args.output}: use it with 'hepspark report scaling --exchange "
          f"{args.output} --link {link}'", flush=True)
    return 0


def _add_skip(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--skip", type=float, default=1 / 3, dest="skip_fraction",
                        help=f"fraction of the first {what} left out as warm-up (default 1/3)")


def _skip_fraction(args: argparse.Namespace) -> float:
    if not 0 <= args.skip_fraction < 1:
        raise ValueError(f"--skip must be in [0, 1), got {args.skip_fraction:g}")
    return args.skip_fraction


def add_horovod_timeline(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("timeline", help="the file a run wrote with HOROVOD_TIMELINE=FILE set "
                        "(rank 0 writes it; ranks get the driver's HOROVOD_* variables)")
    _add_skip(parser, "steps")
    parser.set_defaults(handler=run_horovod_timeline)


def run_horovod_timeline(args: argparse.Namespace) -> int:
    from hepspark.bench.horovod_timeline import format_summary, summarize

    print(format_summary(summarize(args.timeline, _skip_fraction(args))), flush=True)
    return 0


def add_bigdl_phases(parser: argparse.ArgumentParser) -> None:
    from hepspark.bench.bigdl_phases import DRIVER_OPTION

    parser.add_argument("log", help="a BigDL job's driver output, run with the driver option "
                        f"{DRIVER_OPTION} (e.g. 'bench scaling --submit-arg=--driver-java-"
                        "options --submit-arg=OPTION': the job log it keeps)")
    _add_skip(parser, "iterations")
    parser.set_defaults(handler=run_bigdl_phases)


def run_bigdl_phases(args: argparse.Namespace) -> int:
    from hepspark.bench.bigdl_phases import format_summary, summarize

    print(format_summary(summarize(args.log, _skip_fraction(args))), flush=True)
    return 0
