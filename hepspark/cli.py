"""The ``hepspark`` command line: generate, convert, train, evaluate.

Every subcommand has ``--help``. ``spark_jobs/*.py`` are thin spark-submit wrappers
around the same parsers, so flags are identical under ``spark-submit``.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence

DEFAULT_DEMO_ROWS = 200_000
EXIT_USAGE = 2
EXIT_TRACKING_PENDING = 3  # trained, but MLflow records wait in a pending directory
EXIT_TRAINING_FAILED = 4  # distributed training stopped part-way; the message says how to resume


def _cache_dir() -> str:
    return os.environ.get("HEPSPARK_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "hepspark"
    )


def _say(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------- generate
def add_generate_higgs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, required=True, help="number of events to write")
    parser.add_argument("--output", required=True, help="output FILE.csv or FILE.csv.gz")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument(
        "--signal-fraction", type=float, default=0.53,
        help="fraction of signal events (default 0.53, as in the UCI file)",
    )
    parser.add_argument(
        "--engine", choices=("auto", "local", "spark"), default="auto",
        help="where events are made: this process, Spark executors, or auto "
        "(Spark from 1,000,000 rows; default)",
    )
    parser.add_argument("--master", help="Spark master URL (default: local[*] or spark-submit's)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    parser.set_defaults(handler=run_generate_higgs)


def run_generate_higgs(args: argparse.Namespace) -> int:
    from hepspark.data.higgs_csv import SPARK_MIN_ROWS, write_higgs_csv

    use_spark = args.engine == "spark" or (args.engine == "auto" and args.rows >= SPARK_MIN_ROWS)
    spark = None
    if use_spark:
        from hepspark.session import get_spark

        spark = get_spark("hepspark-generate-higgs", master=args.master)
    summary = write_higgs_csv(
        args.output, args.rows, seed=args.seed, signal_fraction=args.signal_fraction,
        spark=spark, overwrite=args.overwrite, progress=_say,
    )
    _say(
        f"wrote {summary['rows']:,d} events to {summary['output']} "
        f"({summary['bytes'] / 1e6:,.1f} MB, {summary['seconds']:.1f} s)"
    )
    return 0


# ---------------------------------------------------------------------------- convert
def add_convert_higgs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="HIGGS .csv or .csv.gz file, or a glob")
    parser.add_argument("--output", required=True, help="output dataset directory or URI")
    split = parser.add_mutually_exclusive_group()
    split.add_argument(
        "--test-rows", type=int,
        help="the last N rows form the test set (default: 500,000 as in the UCI convention "
        "for files of 5M rows or more, else the last 10%%)",
    )
    split.add_argument("--test-fraction", type=float, help="the last fraction F of rows is test")
    parser.add_argument(
        "--val-fraction", type=float, default=0.05,
        help="fraction of the non-test rows held out for validation (default 0.05)",
    )
    parser.add_argument(
        "--features", choices=("all", "low", "high"), default="all",
        help="which features to store (default all 28)",
    )
    parser.add_argument(
        "--on-bad-row", choices=("fail", "skip"), default="fail",
        help="malformed rows stop the conversion (default) or are skipped and counted",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    parser.add_argument("--seed", type=int, default=42, help="seed of the validation split")
    parser.add_argument(
        "--row-group-size-mb", type=int, default=8,
        help="Parquet row-group size; smaller gives more shards for many ranks (default 8)",
    )
    parser.add_argument("--no-checksum", action="store_true", help="skip the input sha256")
    parser.add_argument("--master", help="Spark master URL (default: local[*] or spark-submit's)")
    parser.set_defaults(handler=run_convert_higgs)


def run_convert_higgs(args: argparse.Namespace) -> int:
    from hepspark.data.higgs_convert import ConvertConfig, convert_higgs
    from hepspark.session import get_spark

    config = ConvertConfig(
        input=args.input, output=args.output, test_rows=args.test_rows,
        test_fraction=args.test_fraction, val_fraction=args.val_fraction,
        features=args.features, on_bad_row=args.on_bad_row, overwrite=args.overwrite,
        seed=args.seed, row_group_size_mb=args.row_group_size_mb, checksum=not args.no_checksum,
    )
    spark = get_spark("hepspark-convert-higgs", master=args.master)
    summary = convert_higgs(spark, config, progress=_say)
    _say(summary.format())
    return 0


# ------------------------------------------------------------------------------ train
def add_train_higgs(parser: argparse.ArgumentParser) -> None:
    from hepspark.backends.base import BACKENDS
    from hepspark.config import OPTIMIZERS
    from hepspark.models.config import ACTIVATIONS, INITIALIZERS

    parser.add_argument(
        "--data",
        help="converted dataset directory (from 'hepspark convert higgs'). Without it, the "
        f"embedded default runs: a {DEFAULT_DEMO_ROWS:,d}-event generated sample is made "
        "(once, in --cache-dir), converted and trained on",
    )
    parser.add_argument("--config", help="YAML file with TrainConfig fields; flags override it")
    parser.add_argument(
        "--backend", choices=sorted(BACKENDS),
        help="training engine: keras (one process), bigdl (Spark executors), horovod "
        "(Horovod ranks in Spark tasks); default keras",
    )
    parser.add_argument(
        "--executors", type=int, dest="num_executors",
        help="Horovod ranks, one Spark task each (default 1)",
    )
    parser.add_argument(
        "--scale-lr", action="store_true", dest="scale_learning_rate", default=None,
        help="multiply the learning rate by the number of ranks (Horovod; default: off, "
        "each optimizer's own rate as in the seed study)",
    )
    add_hang_bounds(parser)
    parser.add_argument("--checkpoint-dir", help="write a checkpoint at every epoch end here")
    parser.add_argument(
        "--resume", metavar="DIR",
        help="continue from the last complete epoch checkpoint in DIR up to --epochs "
        "(new checkpoints go to DIR too)",
    )
    parser.add_argument(
        "--resume-if-present", action="store_true", default=None,
        help="with --checkpoint-dir: continue from its newest checkpoint when it has one, "
        "else start (for launchers that restart a failed job with the same flags)",
    )
    parser.add_argument("--optimizer", choices=OPTIMIZERS, help="optimizer (default adam)")
    parser.add_argument(
        "--learning-rate", type=float, help="default: the optimizer's own default"
    )
    parser.add_argument("--epochs", type=int, help="training epochs (default 5)")
    parser.add_argument("--batch-size", type=int, help="rows per batch (default 1000)")
    parser.add_argument(
        "--features", choices=("all", "low", "high"),
        help="train on all 28, the 21 low-level or the 7 high-level features (default all)",
    )
    parser.add_argument("--seed", type=int, help="random seed (default 42)")
    parser.add_argument(
        "--early-stopping-patience", type=int,
        help="stop after N epochs without validation-AUC gain (default: off)",
    )
    parser.add_argument("--depth", type=int, help="hidden layers (default 3)")
    parser.add_argument("--width", type=int, help="units per hidden layer (default 300)")
    parser.add_argument("--activation", choices=ACTIVATIONS, help="hidden activation (tanh)")
    parser.add_argument("--dropout", type=float, help="dropout after each hidden layer (0)")
    parser.add_argument("--init", choices=INITIALIZERS, help="weight init (gaussian)")
    parser.add_argument("--experiment", help="MLflow experiment (default higgs-<dataset name>)")
    parser.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)",
    )
    parser.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    parser.add_argument(
        "--tag", action="append", default=[], metavar="KEY=VALUE",
        help="extra MLflow run tag (repeatable); 'hepspark bench scaling' tags its runs so",
    )
    parser.add_argument(
        "--tracking-grace-s", type=float, default=None,
        help="if the MLflow server went away during the run, how long the end of the run "
        "waits for it before saving the unwritten records to a directory to import later "
        "(default 120)",
    )
    parser.add_argument("--model-dir", help="also save the trained model + preprocessing here")
    parser.add_argument("--cache-dir", default=None, help=f"demo data cache ({_cache_dir()})")
    parser.add_argument(
        "--demo-rows", type=int, default=DEFAULT_DEMO_ROWS,
        help="events generated for the embedded default run",
    )
    parser.add_argument("--master", help="Spark master URL (default: local[*] or spark-submit's)")
    parser.set_defaults(handler=run_train_higgs)


def add_hang_bounds(parser: argparse.ArgumentParser) -> None:
    """Flags bounding how long training waits on the cluster (train higgs and train cnn)."""
    parser.add_argument(
        "--executor-wait-s", type=float, dest="executor_wait_s",
        help="bigdl: how long training waits for every executor to register before it "
        "starts with those it has (default 300; Spark's setting was 3600)",
    )
    parser.add_argument(
        "--stall-timeout-s", type=float, dest="stall_timeout_s",
        help="horovod: a rank that stalls (stops progressing without dying) ends the job "
        "after this long, exit 4 (default 600; longer than any one epoch must be)",
    )


MODEL_FLAGS = ("depth", "width", "activation", "dropout", "init")
RUN_FLAGS = (
    "data", "backend", "optimizer", "learning_rate", "epochs", "batch_size", "features",
    "seed", "early_stopping_patience", "num_executors", "scale_learning_rate", "master",
    "checkpoint_dir", "resume_if_present", "executor_wait_s", "stall_timeout_s",
)  # fmt: skip


def train_config_from_args(args: argparse.Namespace, data: str):
    """TrainConfig from an optional YAML file, overridden by the flags that were given."""
    from hepspark.config import TrainConfig

    values: dict = {}
    if args.config:
        import yaml

        with open(args.config) as handle:
            try:
                values = yaml.safe_load(handle) or {}
            except yaml.YAMLError as exc:
                where = getattr(exc, "problem_mark", None)
                at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
                problem = getattr(exc, "problem", None) or type(exc).__name__
                raise ValueError(f"--config {args.config}: not valid YAML ({problem}{at}); "
                                 "fix the file") from None
        if not isinstance(values, dict):
            raise ValueError(f"{args.config} must hold a mapping of TrainConfig fields")
    values["data"] = data
    values.setdefault("model", {})
    if not isinstance(values["model"], dict):
        raise ValueError(f"--config {args.config}: model must be a mapping of model settings "
                         f"(depth, width, ...), got {values['model']!r}")
    values["model"] = dict(values["model"])
    for name in RUN_FLAGS:
        if name != "data" and getattr(args, name) is not None:
            values[name] = getattr(args, name)
    for name in MODEL_FLAGS:
        if getattr(args, name) is not None:
            values["model"][name] = getattr(args, name)
    if args.resume:
        if args.checkpoint_dir and args.checkpoint_dir != args.resume:
            raise ValueError("give either --resume DIR or --checkpoint-dir DIR, not both")
        values.update(checkpoint_dir=args.resume, resume=True)
    try:
        return TrainConfig.from_dict(values)
    except ValueError as exc:
        if args.config:
            raise ValueError(f"--config {args.config}: {exc}") from None
        raise


def parse_tags(items: Sequence[str]) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` -> ``{"a": "1", "b": "x=y"}``; a bad item is a clear error."""
    tags = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--tag {item!r}: expected KEY=VALUE, e.g. --tag study=scaling")
        tags[key.strip()] = value
    return tags


def ensure_demo_dataset(
    cache_dir: str, rows: int, master: str | None, bigdl: bool = False
) -> str:
    """The embedded default's dataset: generated and converted once, then reused."""
    from hepspark.data import storage
    from hepspark.data.higgs_convert import ConvertConfig, convert_higgs
    from hepspark.data.higgs_csv import write_higgs_csv

    csv_path = os.path.join(cache_dir, f"higgs-demo-{rows}.csv.gz")
    dataset = os.path.join(cache_dir, f"higgs-demo-{rows}")
    if os.path.exists(os.path.join(dataset, storage.METADATA_FILE)):
        _say(f"[demo] using the cached dataset {dataset}")
        return dataset
    from hepspark.session import get_spark

    # The session made here is the one training reuses, so it gets BigDL's jars if needed.
    spark = get_spark("hepspark-train-higgs", master=master, bigdl=bigdl)
    if not os.path.exists(csv_path):
        _say(f"[demo] generating {rows:,d} HIGGS-like events into {csv_path}")
        write_higgs_csv(csv_path, rows, seed=42, spark=None, progress=_say)
    _say(f"[demo] converting {csv_path} to a Petastorm dataset")
    summary = convert_higgs(
        spark, ConvertConfig(input=csv_path, output=dataset, overwrite=True), progress=_say
    )
    _say(summary.format())
    return dataset


def run_train_higgs(args: argparse.Namespace) -> int:
    from hepspark.tracking import Tracker
    from hepspark.train import train_higgs

    config = train_config_from_args(args, args.data or "")
    if args.data is None:
        data = ensure_demo_dataset(args.cache_dir or _cache_dir(), args.demo_rows, config.master,
                                   bigdl=config.backend == "bigdl")
        config = config.with_(data=data)
    tracker = Tracker(args.tracking_uri, args.experiment, enabled=not args.no_tracking)
    if args.tracking_grace_s is not None:
        tracker.grace_s = args.tracking_grace_s
    outcome = train_higgs(config, tracker, progress=_say, model_dir=args.model_dir,
                          tags=parse_tags(args.tag))
    _say(outcome.format())
    if tracker.enabled:
        _say(f"  MLflow store               {tracker.tracking_uri} (experiment {tracker.experiment})")
    return 0


# --------------------------------------------------------------------------- evaluate
def add_evaluate_higgs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True,
        help="model.keras file, a --model-dir directory, or an MLflow URI such as "
        "runs:/<run_id>/model",
    )
    parser.add_argument("--data", required=True, help="converted dataset directory")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI for runs:/ models")
    parser.set_defaults(handler=run_evaluate_higgs)


def run_evaluate_higgs(args: argparse.Namespace) -> int:
    from hepspark.train import evaluate_higgs

    s = evaluate_higgs(args.model, args.data, args.tracking_uri)
    _say(
        f"test AUC {s.test_auc:.4f} | accuracy {s.test_accuracy:.4f} | best FOM {s.best_fom:.2f} "
        f"at cut {s.best_cut:.3f} | significance (100 s / 1000 b) "
        f"{s.significance_100s_1000b:.2f} | {s.n_signal:,d} signal, {s.n_background:,d} background"
    )
    return 0


# ---------------------------------------------------------------------- mlflow-import
def add_mlflow_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "directory",
        help="an mlflow-pending-<run_id> directory left by a run whose MLflow server was "
        "unreachable at its end",
    )
    parser.add_argument(
        "--tracking-uri",
        help="the server that holds the run (default $MLFLOW_TRACKING_URI, else "
        "sqlite:///./mlflow.db); required when that is not the server records.json names",
    )
    parser.set_defaults(handler=run_mlflow_import)


def run_mlflow_import(args: argparse.Namespace) -> int:
    from hepspark.tracking import import_pending

    import_pending(args.directory, args.tracking_uri, progress=_say)
    return 0


# ---------------------------------------------------------------------------- cluster
def _lazy(module: str, name: str) -> Callable[[argparse.ArgumentParser], None]:
    """Adds a subcommand's flags from ``module`` only when that subcommand is built."""
    def add(parser: argparse.ArgumentParser) -> None:
        getattr(importlib.import_module(module), name)(parser)

    return add


# ------------------------------------------------------------------------------- main
COMMANDS: dict[str, dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]]] = {
    "generate": {
        "higgs": ("write a toy-MC HIGGS sample in the UCI CSV format", add_generate_higgs),
        "jets": ("toy 33x33x2 calorimeter jet images, quenched vs not (seed 000)",
                 _lazy("hepspark.cli_images", "add_generate_jets")),
        "lartpc": ("toy LArTPC single-particle wire-plane images, 5 classes (seed 001)",
                   _lazy("hepspark.cli_images", "add_generate_lartpc")),
    },
    "convert": {
        "higgs": ("HIGGS CSV -> Petastorm Parquet with train/val/test", add_convert_higgs),
        "images": ("image files (NPZ/HDF5/ROOT) -> Petastorm Parquet with splits",
                   _lazy("hepspark.cli_images", "add_convert_images")),
    },
    "train": {
        "higgs": ("train the HIGGS DNN and log it to MLflow", add_train_higgs),
        "cnn": ("train a zoo CNN on an image dataset and log it to MLflow",
                _lazy("hepspark.cli_images", "add_train_cnn")),
    },
    "evaluate": {"higgs": ("evaluate a trained HIGGS model on a test split", add_evaluate_higgs)},
    "models": {"list": ("the CNN zoo with parameter counts for an input shape",
                        _lazy("hepspark.cli_images", "add_models_list"))},
    "cluster": {
        "up": ("start a Spark standalone master + workers on 127.0.0.1",
               _lazy("hepspark.cluster", "add_up")),
        "down": ("stop the cluster 'up' started (exactly its PIDs)",
                 _lazy("hepspark.cluster", "add_down")),
        "status": ("show the recorded cluster and its registered workers",
                   _lazy("hepspark.cluster", "add_status")),
    },
    "bench": {
        "scaling": ("measure epoch time vs executors x optimizers x backends into MLflow",
                    _lazy("hepspark.bench.sweep", "add_scaling")),
        "import-baseline": ("log a GPU baseline measured by benchmarks/gpu_baseline.py",
                            _lazy("hepspark.bench.baseline", "add_import_baseline")),
    },
    "report": {
        "scaling": ("write the scaling report (Markdown, HTML, PNG) of an MLflow experiment",
                    _lazy("hepspark.report.scaling", "add_report_scaling")),
    },
}
COMMAND_HELP = {
    "cluster": ("a Spark standalone cluster on this machine", "ACTION"),
    "bench": ("benchmarks: the scaling sweep and imported baselines", "BENCHMARK"),
    "report": ("reports read back from MLflow", "REPORT"),
    "models": ("the model zoo", "ACTION"),
}


# Commands without a dataset/action level.
SINGLE_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "mlflow-server": (
        "run a local MLflow tracking server (sqlite + served artifacts); "
        "'mlflow-server stop --store DIR' stops a --detach one",
        _lazy("hepspark.mlflow_server", "add_arguments"),
    ),
    "mlflow-import": (
        "write the MLflow records a run saved while its server was unreachable",
        add_mlflow_import,
    ),
    "pack-env": (
        "pack this venv (with hepspark as a wheel) for spark-submit --archives env.tar.gz#env",
        _lazy("hepspark.pack_env", "add_arguments"),
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hepspark",
        description="Distributed deep-learning training and scaling benchmarks on Apache "
        "Spark for physics datasets.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
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
            add(kinds.add_parser(name, help=help_text, description=help_text))
    for command, (help_text, add) in SINGLE_COMMANDS.items():
        add(commands.add_parser(command, help=help_text, description=help_text))
    return parser


# Errors that are the user's to fix: one clear line, no traceback (unless --debug).
def _user_errors() -> tuple[type[BaseException], ...]:
    from hepspark.backends.horovod_backend import HorovodUnavailableError
    from hepspark.cluster import ClusterError
    from hepspark.data.readers import EpochRowCountError
    from hepspark.mlflow_server import ServerError
    from hepspark.tracking import TrackingUnavailableError

    # PermissionError & co.: a path the user gave that cannot be written or read
    return (ValueError, FileNotFoundError, FileExistsError, PermissionError,
            NotADirectoryError, IsADirectoryError, TrackingUnavailableError,
            EpochRowCountError, ClusterError, HorovodUnavailableError, ServerError)


def _terminate_like_interrupt(signum, frame) -> None:
    """SIGTERM (how Kubernetes, YARN and Slurm stop a job) ends a command the way Ctrl-C
    does: every ``except KeyboardInterrupt``/``finally`` clean-up runs."""
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def install_signal_handlers() -> None:
    """Route SIGTERM to KeyboardInterrupt (main thread only; a no-op elsewhere)."""
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate_like_interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    install_signal_handlers()
    start = time.perf_counter()
    from hepspark.backends.base import TrainingFailedError
    from hepspark.tracking import TrackingSpooledError

    try:
        code = args.handler(args)
    except TrackingSpooledError as exc:
        if args.debug:
            raise
        if exc.outcome is not None:
            _say(exc.outcome.format())
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
    if args.command in ("convert", "train"):
        _say(f"[{args.command}] done in {time.perf_counter() - start:.1f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
