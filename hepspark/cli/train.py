"""``hepspark train higgs|cnn``, ``hepspark evaluate higgs`` and ``hepspark models list``.

Both training commands take the same engine, run, checkpoint and tracking flags
(:func:`hepspark.cli.common.add_training_flags`); each adds its data and model flags.
Defaults per kind of data come from :func:`hepspark.config.train_defaults`.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from hepspark.cli.common import (
    add_training_flags,
    cache_dir,
    explicit_fields,
    run_and_report,
    say,
    train_config_from_args,
)
from hepspark.config import (
    SMALL_SAMPLE_EPOCHS,
    SMALL_SAMPLE_PATIENCE,
    SMALL_SAMPLE_ROWS,
    train_defaults,
)
from hepspark.data.demo import DEFAULT_DEMO_ROWS

DENSE_FLAGS = ("depth", "width", "activation", "dropout", "init")
CNN_FLAGS = ("filters", "kernel_size", "depth", "version", "bottleneck", "width", "modules",
             "towers", "dense_units")


def _model_values(args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


# ------------------------------------------------------------------------ train higgs
def add_train_higgs(parser: argparse.ArgumentParser) -> None:
    from hepspark.models.config import ACTIVATIONS, INITIALIZERS

    parser.add_argument(
        "--data",
        help="converted dataset directory (from 'hepspark convert higgs'). Without it, the "
        f"embedded default runs: a {DEFAULT_DEMO_ROWS:,d}-event generated sample is made "
        "(once, in --cache-dir), converted and trained on",
    )
    parser.add_argument(
        "--features", choices=("all", "low", "high"),
        help="train on all 28, the 21 low-level or the 7 high-level features (default all)",
    )
    small = f"below {SMALL_SAMPLE_ROWS:,} training rows"
    add_training_flags(parser, {
        **train_defaults("higgs"),
        "batch_size": f"1000; {small}: ~1%% of them, a power of 2 in 32..512",
        "epochs": f"5; {small}: {SMALL_SAMPLE_EPOCHS} with early stopping",
        "early_stopping_patience": f"off; {small}: {SMALL_SAMPLE_PATIENCE}, best weights kept",
    }, "higgs-<dataset name>")
    model = parser.add_argument_group("model (the dense network)")
    model.add_argument("--depth", type=int, help="hidden layers (default 3)")
    model.add_argument("--width", type=int, help="units per hidden layer (default 300)")
    model.add_argument("--activation", choices=ACTIVATIONS, help="hidden activation (tanh)")
    model.add_argument("--dropout", type=float, help="dropout after each hidden layer (0)")
    model.add_argument("--init", choices=INITIALIZERS, help="weight init (gaussian)")
    demo = parser.add_argument_group("embedded default (no --data)")
    demo.add_argument("--cache-dir", default=None, help=f"demo data cache ({cache_dir()})")
    demo.add_argument("--demo-rows", type=int, default=DEFAULT_DEMO_ROWS,
                      help="events generated for the embedded default run")
    parser.set_defaults(handler=run_train_higgs)


def higgs_config_from_args(args: argparse.Namespace, data: str,
                           progress: Callable[[str], None] | None = None):
    """TrainConfig for ``train higgs``: the HIGGS defaults for the dataset's size (printed
    through ``progress`` as one line), a --config file, the flags."""
    run_values = {"features": args.features} if args.features else {}
    train_rows = _train_rows(data)
    defaults = train_defaults("higgs", train_rows=train_rows)
    config = train_config_from_args(args, data, defaults, run_values,
                                    _model_values(args, DENSE_FLAGS))
    if progress is not None and train_rows is not None:
        progress(_defaults_line(train_rows, config, explicit_fields(args)))
    return config


SIZED_DEFAULTS = ("batch_size", "epochs", "early_stopping_patience")


def _train_rows(data: str) -> int | None:
    """Rows of the train split, from the dataset's metadata; None when there is no dataset
    (yet): the size-independent defaults apply and opening it later names the problem."""
    from hepspark.data import storage

    if not data:
        return None
    try:
        return int(storage.read_metadata(data)["splits"]["train"]["rows"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _defaults_line(train_rows: int, config, explicit: set[str]) -> str:
    """One line saying which size-based defaults ``config`` took (given values win)."""
    chosen = [name for name in SIZED_DEFAULTS if name not in explicit]
    if not chosen:
        return f"[train] {train_rows:,} training rows; batch, epochs and early stopping as given"
    patience = config.early_stopping_patience
    words = {
        "batch_size": f"batch {config.batch_size}",
        "epochs": f"{'up to ' if patience else ''}{config.epochs} epochs",
        "early_stopping_patience": (
            f"early stopping after {patience} epochs without validation-AUC gain, best "
            "weights kept" if patience else "no early stopping"),
    }
    return (f"[train] defaults for {train_rows:,} training rows: "
            f"{', '.join(words[name] for name in chosen)} (flags or --config override)")


def run_train_higgs(args: argparse.Namespace) -> int:
    from hepspark.backends.capabilities import check_installed
    from hepspark.train import train_higgs

    data = args.data
    if data is None:
        from hepspark.config import EngineSettings
        from hepspark.data.demo import ensure_demo_dataset

        # the embedded default: master and backend (flags or --config) say how to make it
        first = higgs_config_from_args(args, "")
        check_installed(first.backend)  # before the demo sample is made
        data = ensure_demo_dataset(args.cache_dir or cache_dir(), args.demo_rows, first.master,
                                   bigdl=first.backend == "bigdl", progress=say,
                                   driver_memory=EngineSettings.driver_memory_from_environ())
    return run_and_report(args, higgs_config_from_args(args, data, progress=say), train_higgs)


# -------------------------------------------------------------------------- train cnn
def add_train_cnn(parser: argparse.ArgumentParser) -> None:
    from hepspark.models.cnn import FAMILIES

    parser.add_argument("--data", required=True, help="dataset from 'hepspark convert images'")
    parser.add_argument(
        "--selection", choices=("auto", "val_auc", "loss_window"), default="auto",
        help="which epoch's weights to keep: val_auc (best validation AUC, early stopping "
        "after --early-stopping-patience epochs without gain) or loss_window (seed 001: "
        "validation-loss minimum +-5 epochs, best validation accuracy); auto: val_auc for "
        "2 classes, loss_window otherwise",
    )
    add_training_flags(parser, {**train_defaults("jets"), "batch_size": "20 for lartpc, "
                                "else 128", "early_stopping_patience": "10 with val_auc"},
                       "cnn-<dataset name>")
    model = parser.add_argument_group("model (a CNN of the zoo: 'hepspark models list')")
    model.add_argument("--model", choices=FAMILIES, default="basic_cnn",
                       help="model family (default basic_cnn)")
    model.add_argument("--filters", type=int, help="base number of filters (family default)")
    model.add_argument("--kernel-size", type=int, help="basic CNNs: 3 or 5 (default 3)")
    model.add_argument("--depth", type=int, help="vgg: 10/16/21; resnet: 14/29/50/...")
    model.add_argument("--version", type=int, choices=(1, 2), help="resnet v1 or v2")
    model.add_argument("--bottleneck", action="store_true", default=None,
                       help="resnet bottleneck blocks (ResNet14b/29b/50b)")
    model.add_argument("--width", type=int, help="resnet width multiplier (default 1)")
    model.add_argument("--modules", type=int, choices=(1, 2), help="inception modules")
    model.add_argument("--towers", type=int, choices=(3, 4), help="inception towers")
    model.add_argument("--dense-units", type=int, help="alexnet_like/vgg dense width")
    parser.set_defaults(handler=run_train_cnn)


def cnn_config_from_args(args: argparse.Namespace):
    """TrainConfig for ``train cnn``; the defaults depend on the dataset (its kind and
    number of classes), read from its metadata."""
    from hepspark.data import storage

    metadata = storage.read_metadata(args.data)
    if metadata.get("format") != "hepspark-images":
        raise ValueError(f"{args.data} is not an image dataset; create one with "
                         "'hepspark convert images'")
    num_classes = int(metadata["num_classes"])
    defaults = train_defaults(metadata["kind"], num_classes)
    run_values: dict = {}
    if args.selection != "auto":
        if args.selection == "val_auc" and num_classes != 2:
            raise ValueError("--selection val_auc needs a 2-class dataset; use loss_window")
        run_values["epoch_selection"] = args.selection
        if args.selection == "loss_window":
            run_values["early_stopping_patience"] = None
        elif defaults["early_stopping_patience"] is None:
            run_values["early_stopping_patience"] = train_defaults("jets")[
                "early_stopping_patience"]
    config = train_config_from_args(args, args.data, defaults, run_values,
                                    {"family": args.model, **_model_values(args, CNN_FLAGS)})
    if config.epoch_selection == "loss_window" and config.early_stopping_patience is not None:
        config = config.with_(early_stopping_patience=None)  # the window rule stops the run
    return config


def run_train_cnn(args: argparse.Namespace) -> int:
    from hepspark.train_cnn import train_cnn

    return run_and_report(args, cnn_config_from_args(args), train_cnn)


# ---------------------------------------------------------------------- evaluate higgs
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
    say(
        f"test AUC {s.test_auc:.4f} | accuracy {s.test_accuracy:.4f} | best FOM {s.best_fom:.2f} "
        f"at cut {s.best_cut:.3f} | significance (100 s / 1000 b) "
        f"{s.significance_100s_1000b:.2f} | {s.n_signal:,d} signal, {s.n_background:,d} background"
    )
    return 0


# ------------------------------------------------------------------------- models list
def add_models_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-shape", default="33,33,2",
                        help="image shape H,W,C (default 33,33,2: jets; 64,64,1: LArTPC)")
    parser.add_argument("--classes", type=int, default=2,
                        help="number of classes (2: one sigmoid output; default 2)")
    parser.set_defaults(handler=run_models_list)


def run_models_list(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from hepspark.models.cnn import zoo_table

    try:
        shape = tuple(int(v) for v in args.input_shape.split(","))
    except ValueError:
        raise ValueError(f"--input-shape must be H,W,C integers, got {args.input_shape!r}") \
            from None
    if len(shape) != 3:
        raise ValueError(f"--input-shape must be H,W,C, got {args.input_shape!r}")
    if args.classes < 2:
        raise ValueError(f"--classes must be >= 2, got {args.classes}")
    outputs = 1 if args.classes == 2 else args.classes
    say(f"CNN zoo for {shape[0]}x{shape[1]}x{shape[2]} images, {args.classes} classes "
        f"({'sigmoid' if outputs == 1 else 'softmax'} output)")
    say(f"  {'family':<18} {'model':<26} {'parameters':>12}")
    for family, name, params in zoo_table(shape, outputs):
        say(f"  {family:<18} {name:<26} {params:>12,d}")
    return 0
