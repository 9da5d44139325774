"""The ``hepspark`` command line: generate, convert, train, evaluate, and the tools around
them (cluster, MLflow server, benchmarks, reports, pack-env).

One module per command group (:mod:`~hepspark.cli.data`, :mod:`~hepspark.cli.train`,
:mod:`~hepspark.cli.cluster`, :mod:`~hepspark.cli.tracking`, :mod:`~hepspark.cli.bench`,
:mod:`~hepspark.cli.pack_env`), the flag groups they share in :mod:`~hepspark.cli.common`;
the library modules hold no argparse. Every subcommand has ``--help``; ``spark_jobs/*.py``
are thin spark-submit wrappers around the same parser, so flags are identical there.

>>> main(["train", "higgs", "--data", "data/higgs", "--epochs", "3"])
0
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

from hepspark import progress, stopping
from hepspark.cli import bench, cluster, data, pack_env, tracking, train
from hepspark.cli.common import say
from hepspark.logs import configure_logging
from hepspark.session import quiet_submitted_driver, running_under_spark_submit

EXIT_USAGE = 2
EXIT_TRACKING_PENDING = 3  # trained, but MLflow records wait in a pending directory
EXIT_TRAINING_FAILED = 4  # distributed training stopped part-way; the message says how to resume

Adder = Callable[[argparse.ArgumentParser], None]
# command -> {dataset or action: (help, add its flags)}
COMMANDS: dict[str, dict[str, tuple[str, Adder]]] = {
    "generate": {
        "higgs": ("write a toy-MC HIGGS sample in the UCI CSV format", data.add_generate_higgs),
        "jets": ("toy 33x33x2 calorimeter jet images, quenched vs not (seed 000)",
                 data.add_generate_jets),
        "lartpc": ("toy LArTPC single-particle wire-plane images, 5 classes (seed 001)",
                   data.add_generate_lartpc),
    },
    "convert": {
        "higgs": ("HIGGS CSV -> Petastorm Parquet with train/val/test", data.add_convert_higgs),
        "images": ("image files (NPZ/HDF5/ROOT) -> Petastorm Parquet with splits",
                   data.add_convert_images),
    },
    "train": {
        "higgs": ("train the HIGGS DNN and log it to MLflow", train.add_train_higgs),
        "cnn": ("train a zoo CNN on an image dataset and log it to MLflow",
                train.add_train_cnn),
    },
    "evaluate": {"higgs": ("evaluate a trained HIGGS model on a test split",
                           train.add_evaluate_higgs)},
    "models": {"list": ("the CNN zoo with parameter counts for an input shape",
                        train.add_models_list)},
    "cluster": {
        "up": ("start a Spark standalone master + workers on 127.0.0.1", cluster.add_up),
        "down": ("stop the cluster 'up' started (exactly its PIDs)", cluster.add_down),
        "status": ("show the recorded cluster and its registered workers", cluster.add_status),
    },
    "bench": {
        "scaling": ("measure epoch time vs executors x optimizers x backends into MLflow",
                    bench.add_scaling),
        "import-baseline": ("log a GPU baseline measured by benchmarks/gpu_baseline.py",
                            bench.add_import_baseline),
        "exchange": ("time the per-step exchange (Horovod's, torch's Gloo all-reduce; TCP) per link",
                     bench.add_exchange),
        "horovod-timeline": ("where a Horovod step's time goes, from a HOROVOD_TIMELINE file",
                             bench.add_horovod_timeline),
        "bigdl-phases": ("where a BigDL iteration's time goes, from its driver log",
                         bench.add_bigdl_phases),
    },
    "report": {
        "scaling": ("write the scaling report (Markdown, HTML, PNG) of an MLflow experiment",
                    bench.add_report_scaling),
    },
}
COMMAND_HELP = {
    "cluster": ("a Spark standalone cluster on this machine", "ACTION"),
    "bench": ("benchmarks: the scaling sweep and imported baselines", "BENCHMARK"),
    "report": ("reports read back from MLflow", "REPORT"),
    "models": ("the model zoo", "ACTION"),
}
# Commands without a dataset/action level.
SINGLE_COMMANDS: dict[str, tuple[str, Adder]] = {
    "mlflow-server": (
        "run a local MLflow tracking server (sqlite + served artifacts); "
        "'mlflow-server stop --store DIR' stops a --detach one",
        tracking.add_mlflow_server,
    ),
    "mlflow-import": (
        "write the MLflow records a run saved while its server was unreachable",
        tracking.add_mlflow_import,
    ),
    "pack-env": (
        "pack this venv (with hepspark as a wheel) for spark-submit --archives env.tar.gz#env",
        pack_env.add_pack_env,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hepspark",
        description="Distributed deep-learning training and scaling benchmarks on Apache "
        "Spark for physics datasets.",
    )
    add_global_flags(parser, default=None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command, datasets in COMMANDS.items():
        if command in COMMAND_HELP:
            help_text, metavar = COMMAND_HELP[command]
            sub = commands.add_parser(command, help=help_text)
            kinds = sub.add_subparsers(dest="action", required=True, metavar=metavar)
        else:
            sub = commands.add_parser(command, help=f"{command} a dataset's data or model")
            kinds = sub.add_subparsers(dest="dataset", required=True, metavar="DATASET")
        for name, (help_text, add) in datasets.items():
            leaf = kinds.add_parser(name, help=help_text, description=help_text)
            add(leaf)
            add_global_flags(leaf, default=argparse.SUPPRESS)
    for command, (help_text, add) in SINGLE_COMMANDS.items():
        leaf = commands.add_parser(command, help=help_text, description=help_text)
        add(leaf)
        add_global_flags(leaf, default=argparse.SUPPRESS)
    return parser


def add_global_flags(parser: argparse.ArgumentParser, default: object) -> None:
    """--debug and --verbose, on the top-level parser and again on every command, so they
    may follow the command too (as in ``spark-submit spark_jobs/train_higgs.py --verbose``);
    a command's copy defaults to SUPPRESS, leaving the top level's value alone."""
    group = parser.add_argument_group("output")
    group.add_argument("--debug", action="store_true", default=default,
                       help="show full tracebacks on errors")
    group.add_argument("--verbose", action="store_true", default=default,
                       help="show the INFO lines of Spark, BigDL, TensorFlow and MLflow "
                       "(default: their warnings and errors only)")
    group.add_argument("--progress-interval-s", type=float, default=default, metavar="S",
                       help="when stderr is not a terminal, one progress line every S "
                       "seconds per long step (default 15; 0: at every update)")
    group.add_argument("--no-progress", action="store_true", default=default,
                       help="no progress bars or lines")


# Errors that are the user's to fix: one clear line, no traceback (unless --debug).
def _user_errors() -> tuple[type[BaseException], ...]:
    from hepspark.backends.base import EngineUnavailableError
    from hepspark.bench.exchange import ExchangeError
    from hepspark.bench.netns import NetnsUnavailable
    from hepspark.cluster import ClusterError
    from hepspark.data.readers import EpochRowCountError
    from hepspark.mlflow_server import ServerError
    from hepspark.records import OutOfMemoryStop
    from hepspark.tracking import TrackingUnavailableError

    # PermissionError & co.: a path the user gave that cannot be written or read
    return (ValueError, FileNotFoundError, FileExistsError, PermissionError,
            NotADirectoryError, IsADirectoryError, TrackingUnavailableError,
            EpochRowCountError, ClusterError, EngineUnavailableError, ServerError,
            OutOfMemoryStop, ExchangeError, NetnsUnavailable)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(verbose=args.verbose)
    progress.configure(interval_s=args.progress_interval_s, enabled=not args.no_progress)
    if not args.verbose and running_under_spark_submit():
        quiet_submitted_driver()
    stopping.install()  # SIGTERM ends a command as Ctrl-C does; neither is ever lost
    start = time.perf_counter()
    from hepspark.backends.base import TrainingFailedError
    from hepspark.tracking import TrackingSpooledError

    try:
        code = args.handler(args)
    except TrackingSpooledError as exc:
        if args.debug:
            raise
        if exc.outcome is not None:
            say(exc.outcome.format())
        print(f"hepspark: error: {exc}", file=sys.stderr)
        return EXIT_TRACKING_PENDING
    except (*_user_errors(), TrainingFailedError) as exc:
        if args.debug:
            raise
        print(f"hepspark: error: {exc}", file=sys.stderr)
        return EXIT_TRAINING_FAILED if isinstance(exc, TrainingFailedError) else EXIT_USAGE
    except KeyboardInterrupt as exc:
        if args.debug:
            raise
        how = str(exc) or "interrupted"
        print(f"hepspark: {how}: stopped; nothing partial was published", file=sys.stderr)
        return 143 if "SIGTERM" in how else 130
    finally:
        stopping.clear()  # the stop, if any, has reached the top: never raise it again
    if args.command in ("convert", "train"):
        say(f"[{args.command}] done in {time.perf_counter() - start:.1f} s")
    return code

