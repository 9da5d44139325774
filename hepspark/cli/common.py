"""What every command group shares: printing, the cache directory, and the flag groups of
training (engine, run, checkpoints, tracking) so that ``train higgs`` and ``train cnn``
take the same flags with the same meaning."""
from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from typing import Any

MASTER_HELP = "Spark master URL (default: local[*] or spark-submit's)"


def say(message: str) -> None:
    print(message, flush=True)


def spark_session(app_name: str, master: str | None, **options: Any):
    """A command's (or a benchmark's) Spark session, with the driver heap of
    ``$HEPSPARK_DRIVER_MEMORY`` (read through EngineSettings, like every engine variable);
    ``options``: the rest of :func:`hepspark.session.get_spark`'s."""
    from hepspark.config import EngineSettings
    from hepspark.session import get_spark

    return get_spark(app_name, master=master,
                     driver_memory=EngineSettings.driver_memory_from_environ(), **options)


def cache_dir() -> str:
    return os.environ.get("HEPSPARK_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "hepspark"
    )


def add_master(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", help=MASTER_HELP)


def add_training_flags(parser: argparse.ArgumentParser, defaults: Mapping[str, Any],
                       experiment_default: str) -> None:
    """The flags of every training command; ``defaults`` (from
    :func:`hepspark.config.train_defaults`) only appear in the help: a flag not given is
    None, so a ``--config`` file's value is not overridden by a default."""
    from hepspark.backends.base import BACKENDS
    from hepspark.config import OPTIMIZERS

    parser.add_argument("--config", help="YAML file with TrainConfig fields; flags override it")
    engine = parser.add_argument_group("engine")
    engine.add_argument(
        "--backend", choices=sorted(BACKENDS),
        help="training engine: keras (one process), bigdl (Spark executors), horovod "
        "(Horovod ranks in Spark tasks); default keras",
    )
    engine.add_argument("--executors", type=int, dest="num_executors",
                        help="Horovod ranks, one Spark task each (default 1)")
    engine.add_argument(
        "--scale-lr", action="store_true", dest="scale_learning_rate", default=None,
        help="multiply the learning rate by the number of ranks (Horovod; default: off, "
        "each optimizer's own rate as in the seed study)",
    )
    engine.add_argument("--master", help=MASTER_HELP)
    engine.add_argument(
        "--executor-wait-s", type=float, dest="executor_wait_s",
        help="bigdl: how long training waits for every executor to register before it "
        "starts with those it has (default 300; Spark's setting was 3600)",
    )
    engine.add_argument(
        "--stall-timeout-s", type=float, dest="stall_timeout_s",
        help="horovod: a rank that stalls (stops progressing without dying) ends the job "
        "after this long, exit 4 (default 600; longer than any one epoch must be)",
    )
    engine.add_argument(
        "--steps-per-execution", type=int, dest="steps_per_execution",
        help="keras, horovod: training steps per compiled call (same updates, less Python "
        "between steps; default 8, 1: one step per call)",
    )
    run = parser.add_argument_group("run")
    run.add_argument("--optimizer", choices=OPTIMIZERS,
                     help=f"optimizer (default {defaults['optimizer']})")
    run.add_argument("--learning-rate", type=float,
                     help="default: the optimizer's own default")
    run.add_argument("--epochs", type=int,
                     help=f"(maximum) training epochs (default {defaults['epochs']})")
    run.add_argument("--batch-size", type=int,
                     help=f"rows per batch (default {defaults['batch_size']})")
    run.add_argument("--seed", type=int, help="random seed (default 42)")
    run.add_argument(
        "--early-stopping-patience", type=int,
        help="stop after N epochs without validation-AUC gain, 0: never (default "
        f"{defaults['early_stopping_patience'] or 'off'})",
    )
    run.add_argument(
        "--target-auc", type=float, dest="target_quality",
        help="log the training time until the validation AUC first reaches this (validation "
        "accuracy for K-class images); default: HIGGS 0.78, jets 0.80, LArTPC accuracy 0.70",
    )
    checkpoints = parser.add_argument_group("checkpoints")
    checkpoints.add_argument("--checkpoint-dir",
                             help="write a checkpoint at every epoch end here")
    checkpoints.add_argument(
        "--resume", metavar="DIR",
        help="continue from the last complete epoch checkpoint in DIR up to --epochs "
        "(new checkpoints go to DIR too)",
    )
    checkpoints.add_argument(
        "--resume-if-present", action="store_true", default=None,
        help="with --checkpoint-dir: continue from its newest checkpoint when it has one, "
        "else start (for launchers that restart a failed job with the same flags)",
    )
    tracking = parser.add_argument_group("tracking")
    tracking.add_argument("--experiment", help=f"MLflow experiment (default {experiment_default})")
    tracking.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)",
    )
    tracking.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    tracking.add_argument(
        "--tag", action="append", default=[], metavar="KEY=VALUE",
        help="extra MLflow run tag (repeatable); 'hepspark bench scaling' tags its runs so",
    )
    tracking.add_argument(
        "--tracking-grace-s", type=float, default=None,
        help="if the MLflow server went away during the run, how long the end of the run "
        "waits for it before saving the unwritten records to a directory to import later "
        "(default 120)",
    )
    tracking.add_argument("--model-dir",
                          help="also save the trained model + preprocessing here")


# TrainConfig fields set by the flags of add_training_flags (when given)
RUN_FLAGS = (
    "backend", "optimizer", "learning_rate", "epochs", "batch_size", "seed",
    "early_stopping_patience", "num_executors", "scale_learning_rate", "master",
    "checkpoint_dir", "resume_if_present", "executor_wait_s", "stall_timeout_s",
    "target_quality", "steps_per_execution",
)  # fmt: skip


def train_config_from_args(args: argparse.Namespace, data: str, defaults: Mapping[str, Any],
                           run_values: Mapping[str, Any], model_values: Mapping[str, Any]):
    """TrainConfig from the kind's ``defaults``, then an optional YAML file, then the
    flags that were given (``run_values``/``model_values``: the command's own flags)."""
    from hepspark.config import TrainConfig

    values: dict = {**defaults, **_read_yaml(args.config)} if args.config else dict(defaults)
    values["data"] = data
    values.setdefault("model", {})
    if not isinstance(values["model"], dict):
        raise ValueError(f"--config {args.config}: model must be a mapping of model settings "
                         f"(depth, width, ...), got {values['model']!r}")
    values["model"] = {**values["model"], **model_values}
    values.update({name: getattr(args, name) for name in RUN_FLAGS
                   if getattr(args, name) is not None})
    values.update(run_values)
    if values.get("early_stopping_patience") == 0:  # --early-stopping-patience 0: off
        values["early_stopping_patience"] = None
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


def explicit_fields(args: argparse.Namespace) -> set[str]:
    """The TrainConfig fields the user set: the run flags given and a --config file's keys
    (what a default must never override)."""
    given = {name for name in RUN_FLAGS if getattr(args, name) is not None}
    return given | (set(_read_yaml(args.config)) if args.config else set())


def _read_yaml(path: str) -> dict:
    import yaml

    with open(path) as handle:
        try:
            values = yaml.safe_load(handle) or {}
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise ValueError(f"--config {path}: not valid YAML ({problem}{at}); "
                             "fix the file") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a mapping of TrainConfig fields")
    return values


def parse_tags(items: Sequence[str]) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` -> ``{"a": "1", "b": "x=y"}``; a bad item is a clear error."""
    tags = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--tag {item!r}: expected KEY=VALUE, e.g. --tag study=scaling")
        tags[key.strip()] = value
    return tags


def run_and_report(args: argparse.Namespace, config, train) -> int:
    """Train ``config`` with ``train`` (``train_higgs`` or ``train_cnn``) under the
    tracking flags and print the outcome; a run whose records wait in a pending directory
    prints its outcome too (the CLI's main reports the error and exit status 3)."""
    from hepspark.tracking import Tracker

    tracker = Tracker(args.tracking_uri, args.experiment, enabled=not args.no_tracking)
    if args.tracking_grace_s is not None:
        tracker.grace_s = args.tracking_grace_s
    outcome = train(config, tracker, progress=say, model_dir=args.model_dir,
                    tags=parse_tags(args.tag))
    say(outcome.format())
    if tracker.enabled:
        say(f"  MLflow store               {tracker.tracking_uri} (experiment "
            f"{tracker.experiment})")
    return 0
