"""The image subcommands of ``hepspark`` (seeds 000 and 001): ``generate jets``,
``generate lartpc``, ``convert images``, ``train cnn`` and ``models list``.

Registered in :data:`hepspark.cli.COMMANDS`; heavy imports happen inside the handlers.
"""
from __future__ import annotations

import argparse
import os


def _say(message: str) -> None:
    print(message, flush=True)


def _engine_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument(
        "--engine", choices=("auto", "local", "spark"), default="auto",
        help="where images are made: this process, Spark executors, or auto (Spark from "
        "50,000 images; default)",
    )
    parser.add_argument("--master", help="Spark master URL (default: local[*] or spark-submit's)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")


OUTPUT_HELP = ("output: FILE.h5 (appended chunk by chunk), FILE.npz (one file, built in "
               "memory) or a DIRECTORY of part-NNNNN.npz shards (any other name)")


# --------------------------------------------------------------------------- generate
def add_generate_jets(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, required=True, help="number of jet images")
    parser.add_argument("--output", required=True, help=OUTPUT_HELP)
    parser.add_argument("--quenched-fraction", type=float, default=0.5,
                        help="fraction of quenched jets (label 1; default 0.5)")
    _engine_flags(parser)
    parser.set_defaults(handler=run_generate_jets)


def add_generate_lartpc(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, required=True, help="number of particle images")
    parser.add_argument("--output", required=True, help=OUTPUT_HELP)
    parser.add_argument("--image-size", type=int, default=64,
                        help="pixels per side (default 64)")
    parser.add_argument("--pixel-cm", type=float, default=0.5,
                        help="pixel pitch in cm (default 0.5: a 32 cm field)")
    _engine_flags(parser)
    parser.set_defaults(handler=run_generate_lartpc)


def _generate(args: argparse.Namespace, kind: str, **options) -> int:
    from hepspark.data.image_files import SPARK_MIN_ROWS, write_generated

    use_spark = args.engine == "spark" or (args.engine == "auto" and args.rows >= SPARK_MIN_ROWS)
    spark = None
    if use_spark:
        from hepspark.session import get_spark

        spark = get_spark(f"hepspark-generate-{kind}", master=args.master)
    summary = write_generated(kind, args.output, args.rows, seed=args.seed, spark=spark,
                              overwrite=args.overwrite, progress=_say, **options)
    _say(f"wrote {summary['rows']:,d} {kind} images to {summary['output']} "
         f"({summary['bytes'] / 1e6:,.1f} MB, {summary['seconds']:.1f} s, "
         f"{summary['rows'] / summary['seconds']:,.0f} images/s)")
    return 0


def run_generate_jets(args: argparse.Namespace) -> int:
    return _generate(args, "jets", quenched_fraction=args.quenched_fraction)


def run_generate_lartpc(args: argparse.Namespace) -> int:
    return _generate(args, "lartpc", image_size=args.image_size, pixel_cm=args.pixel_cm)


# ---------------------------------------------------------------------------- convert
def add_convert_images(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True,
                        help="an .npz/.h5/.root file, a glob, or a directory of them")
    parser.add_argument("--output", required=True, help="output dataset directory or URI")
    parser.add_argument("--kind", choices=("jets", "lartpc", "generic"), default="generic",
                        help="jets: 2 classes, train/val/test; lartpc: 5 classes (e, gamma, mu, "
                        "pi, p), train/test_a/test_b; generic: classes 0..max label")
    parser.add_argument("--images-key", default="images", help="image array name (images)")
    parser.add_argument("--labels-key", default="labels", help="label array name (labels)")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--weights-key", default="weights", help="weight array name (weights)")
    weights.add_argument("--no-weights", action="store_true",
                         help="the files have no weights: every image weighs 1")
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="validation fraction (LArTPC: test A; default 0.1)")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="test fraction (LArTPC: test B; default 0.2)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the split (default 42)")
    parser.add_argument("--on-bad-row", choices=("fail", "skip"), default="fail",
                        help="malformed rows stop the conversion (default) or are skipped")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    parser.add_argument("--row-group-size-mb", type=int, default=8,
                        help="Parquet row-group size; smaller gives more shards (default 8)")
    parser.add_argument("--no-checksum", action="store_true", help="skip the input sha256")
    parser.add_argument("--master", help="Spark master URL (default: local[*] or spark-submit's)")
    parser.set_defaults(handler=run_convert_images)


def run_convert_images(args: argparse.Namespace) -> int:
    from hepspark.data.images_convert import ImageConvertConfig, convert_images
    from hepspark.session import get_spark

    config = ImageConvertConfig(
        input=args.input, output=args.output, kind=args.kind, images_key=args.images_key,
        labels_key=args.labels_key, weights_key=None if args.no_weights else args.weights_key,
        val_fraction=args.val_fraction, test_fraction=args.test_fraction, seed=args.seed,
        on_bad_row=args.on_bad_row, overwrite=args.overwrite,
        row_group_size_mb=args.row_group_size_mb, checksum=not args.no_checksum,
    )
    spark = get_spark("hepspark-convert-images", master=args.master)
    _say(convert_images(spark, config, progress=_say).format())
    return 0


# ------------------------------------------------------------------------------ train
MODEL_FLAGS = ("filters", "kernel_size", "depth", "version", "bottleneck", "width", "modules",
               "towers", "dense_units")


def add_train_cnn(parser: argparse.ArgumentParser) -> None:
    from hepspark.config import OPTIMIZERS
    from hepspark.models.cnn import FAMILIES

    parser.add_argument("--data", required=True, help="dataset from 'hepspark convert images'")
    parser.add_argument("--model", choices=FAMILIES, default="basic_cnn",
                        help="model family (default basic_cnn)")
    parser.add_argument("--filters", type=int, help="base number of filters (family default)")
    parser.add_argument("--kernel-size", type=int, help="basic CNNs: 3 or 5 (default 3)")
    parser.add_argument("--depth", type=int, help="vgg: 10/16/21; resnet: 14/29/50/...")
    parser.add_argument("--version", type=int, choices=(1, 2), help="resnet v1 or v2")
    parser.add_argument("--bottleneck", action="store_true", default=None,
                        help="resnet bottleneck blocks (ResNet14b/29b/50b)")
    parser.add_argument("--width", type=int, help="resnet width multiplier (default 1)")
    parser.add_argument("--modules", type=int, choices=(1, 2), help="inception modules")
    parser.add_argument("--towers", type=int, choices=(3, 4), help="inception towers")
    parser.add_argument("--dense-units", type=int, help="alexnet_like/vgg dense width")
    parser.add_argument(
        "--backend", choices=("keras", "bigdl", "horovod"), default="keras",
        help="training engine: keras (one process, default), bigdl (Spark executors), "
        "horovod (Horovod ranks in Spark tasks)")
    parser.add_argument("--executors", type=int, default=1, dest="num_executors",
                        help="Horovod ranks, one Spark task each (default 1)")
    parser.add_argument("--scale-lr", action="store_true", dest="scale_learning_rate",
                        help="Horovod: multiply the learning rate by the number of ranks")
    parser.add_argument("--master", help="Spark master URL for bigdl/horovod (default: "
                        "local[*] or spark-submit's)")
    from hepspark.cli import add_hang_bounds

    add_hang_bounds(parser)
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="nadam",
                        help="optimizer (default nadam, as in seed 000)")
    parser.add_argument("--learning-rate", type=float, help="default: the optimizer's own")
    parser.add_argument("--epochs", type=int, default=100,
                        help="maximum epochs (default 100, the seed protocol)")
    parser.add_argument("--batch-size", type=int,
                        help="images per batch (default: 20 for lartpc as in seed 001, else 128)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument(
        "--selection", choices=("auto", "val_auc", "loss_window"), default="auto",
        help="which epoch's weights to keep: val_auc (best validation AUC, early stopping "
        "after --early-stopping-patience epochs without gain) or loss_window (seed 001: "
        "validation-loss minimum +-5 epochs, best validation accuracy); auto: val_auc for "
        "2 classes, loss_window otherwise",
    )
    parser.add_argument("--early-stopping-patience", type=int, default=10,
                        help="val_auc selection: epochs without gain before stopping (10)")
    parser.add_argument("--checkpoint-dir", help="write a checkpoint at every epoch end here")
    parser.add_argument("--resume", metavar="DIR",
                        help="continue from the last complete epoch checkpoint in DIR")
    parser.add_argument("--resume-if-present", action="store_true",
                        help="with --checkpoint-dir: continue from its newest checkpoint when "
                        "it has one, else start (for restart-on-failure launchers)")
    parser.add_argument("--experiment", help="MLflow experiment (default cnn-<dataset name>)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default "
                        "$MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)")
    parser.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    parser.add_argument("--model-dir", help="also save the trained model + preprocessing here")
    parser.set_defaults(handler=run_train_cnn)


def cnn_config_from_args(args: argparse.Namespace):
    """TrainConfig for ``train cnn``; defaults that depend on the dataset (batch size,
    epoch selection) are read from its metadata."""
    from hepspark.config import TrainConfig
    from hepspark.data import storage
    from hepspark.models.cnn import CnnConfig

    metadata = storage.read_metadata(args.data)
    if metadata.get("format") != "hepspark-images":
        raise ValueError(f"{args.data} is not an image dataset; create one with "
                         "'hepspark convert images'")
    binary = int(metadata["num_classes"]) == 2
    model = {k: getattr(args, k) for k in MODEL_FLAGS if getattr(args, k) is not None}
    selection = args.selection if args.selection != "auto" else (
        "val_auc" if binary else "loss_window")
    if selection == "val_auc" and not binary:
        raise ValueError("--selection val_auc needs a 2-class dataset; use loss_window")
    if args.resume and args.checkpoint_dir and args.checkpoint_dir != args.resume:
        raise ValueError("give either --resume DIR or --checkpoint-dir DIR, not both")
    return TrainConfig(
        data=args.data,
        backend=args.backend,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size or (20 if metadata["kind"] == "lartpc" else 128),
        epochs=args.epochs,
        seed=args.seed,
        early_stopping_patience=args.early_stopping_patience if selection == "val_auc" else None,
        epoch_selection=selection,
        checkpoint_dir=args.resume or args.checkpoint_dir,
        resume=bool(args.resume),
        resume_if_present=args.resume_if_present,
        num_executors=args.num_executors,
        scale_learning_rate=args.scale_learning_rate,
        master=args.master,
        model=CnnConfig(family=args.model, **model),
        **{name: getattr(args, name) for name in ("executor_wait_s", "stall_timeout_s")
           if getattr(args, name) is not None},
    )


def run_train_cnn(args: argparse.Namespace) -> int:
    from hepspark.tracking import Tracker
    from hepspark.train_cnn import train_cnn

    config = cnn_config_from_args(args)
    tracker = Tracker(args.tracking_uri, args.experiment, enabled=not args.no_tracking)
    outcome = train_cnn(config, tracker, progress=_say, model_dir=args.model_dir)
    _say(outcome.format())
    if tracker.enabled:
        _say(f"  MLflow store               {tracker.tracking_uri} (experiment {tracker.experiment})")
    return 0


# ----------------------------------------------------------------------------- models
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
    _say(f"CNN zoo for {shape[0]}x{shape[1]}x{shape[2]} images, {args.classes} classes "
         f"({'sigmoid' if outputs == 1 else 'softmax'} output)")
    _say(f"  {'family':<18} {'model':<26} {'parameters':>12}")
    for family, name, params in zoo_table(shape, outputs):
        _say(f"  {family:<18} {name:<26} {params:>12,d}")
    return 0
