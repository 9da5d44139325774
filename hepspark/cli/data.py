"""``hepspark generate higgs|jets|lartpc`` and ``hepspark convert higgs|images``: the
toy-MC generators and the converters to Petastorm datasets (:mod:`hepspark.data`).
Heavy imports happen inside the handlers."""
from __future__ import annotations

import argparse

from hepspark.cli.common import add_master, say, spark_session
from hepspark.progress import SparkProgress

OVERWRITE_HELP = "replace an output hepspark wrote (never anything else)"


OUTPUT_HELP = ("output: FILE.h5 (appended chunk by chunk), FILE.npz (one file, built in "
               "memory) or a DIRECTORY of part-NNNNN.npz shards (any other name)")


# --------------------------------------------------------------------------- generate
def add_generation_flags(parser: argparse.ArgumentParser, what: str, spark_from: int) -> None:
    """--rows, --seed, --engine, --master and --overwrite of every generator."""
    parser.add_argument("--rows", type=int, required=True, help=f"number of {what}")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument(
        "--engine", choices=("auto", "local", "spark"), default="auto",
        help=f"where {what} are made: this process, Spark executors, or auto (Spark from "
        f"{spark_from:,d} {what}; default)",
    )
    add_master(parser)
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)


def _spark_for(args: argparse.Namespace, name: str, spark_from: int):
    """A Spark session when the generation runs on executors, else None."""
    if args.engine == "local" or (args.engine == "auto" and args.rows < spark_from):
        return None
    return spark_session(f"hepspark-generate-{name}", args.master)


def add_generate_higgs(parser: argparse.ArgumentParser) -> None:
    from hepspark.data.higgs_csv import SPARK_MIN_ROWS

    add_generation_flags(parser, "events", SPARK_MIN_ROWS)
    parser.add_argument("--output", required=True, help="output FILE.csv or FILE.csv.gz")
    parser.add_argument(
        "--signal-fraction", type=float, default=0.53,
        help="fraction of signal events (default 0.53, as in the UCI file)",
    )
    parser.set_defaults(handler=run_generate_higgs)


def run_generate_higgs(args: argparse.Namespace) -> int:
    from hepspark.data.higgs_csv import SPARK_MIN_ROWS, write_higgs_csv

    summary = write_higgs_csv(
        args.output, args.rows, seed=args.seed, signal_fraction=args.signal_fraction,
        spark=_spark_for(args, "higgs", SPARK_MIN_ROWS), overwrite=args.overwrite,
        progress=say,
    )
    say(f"wrote {summary['rows']:,d} events to {summary['output']} "
        f"({summary['bytes'] / 1e6:,.1f} MB, {summary['seconds']:.1f} s)")
    return 0


def add_generate_jets(parser: argparse.ArgumentParser) -> None:
    from hepspark.data.image_files import SPARK_MIN_ROWS

    add_generation_flags(parser, "jet images", SPARK_MIN_ROWS)
    parser.add_argument("--output", required=True, help=OUTPUT_HELP)
    parser.add_argument("--quenched-fraction", type=float, default=0.5,
                        help="fraction of quenched jets (label 1; default 0.5)")
    parser.set_defaults(handler=run_generate_jets)


def add_generate_lartpc(parser: argparse.ArgumentParser) -> None:
    from hepspark.data.image_files import SPARK_MIN_ROWS

    add_generation_flags(parser, "particle images", SPARK_MIN_ROWS)
    parser.add_argument("--output", required=True, help=OUTPUT_HELP)
    parser.add_argument("--image-size", type=int, default=64,
                        help="pixels per side (default 64)")
    parser.add_argument("--pixel-cm", type=float, default=0.5,
                        help="pixel pitch in cm (default 0.5: a 32 cm field)")
    parser.set_defaults(handler=run_generate_lartpc)


def _generate(args: argparse.Namespace, kind: str, **options) -> int:
    from hepspark.data.image_files import SPARK_MIN_ROWS, write_generated

    summary = write_generated(kind, args.output, args.rows, seed=args.seed,
                              spark=_spark_for(args, kind, SPARK_MIN_ROWS),
                              overwrite=args.overwrite, progress=say, **options)
    say(f"wrote {summary['rows']:,d} {kind} images to {summary['output']} "
        f"({summary['bytes'] / 1e6:,.1f} MB, {summary['seconds']:.1f} s, "
        f"{summary['rows'] / summary['seconds']:,.0f} images/s)")
    return 0


def run_generate_jets(args: argparse.Namespace) -> int:
    return _generate(args, "jets", quenched_fraction=args.quenched_fraction)


def run_generate_lartpc(args: argparse.Namespace) -> int:
    return _generate(args, "lartpc", image_size=args.image_size, pixel_cm=args.pixel_cm)


# ---------------------------------------------------------------------------- convert
def add_conversion_flags(parser: argparse.ArgumentParser) -> None:
    """--seed, --on-bad-row, --overwrite, --row-group-size-mb, --no-checksum and --master
    of every converter."""
    parser.add_argument("--seed", type=int, default=42, help="seed of the split (default 42)")
    parser.add_argument(
        "--on-bad-row", choices=("fail", "skip"), default="fail",
        help="malformed rows stop the conversion (default) or are skipped and counted",
    )
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    parser.add_argument(
        "--row-group-size-mb", type=int, default=8,
        help="Parquet row-group size; smaller gives more shards for many ranks (default 8)",
    )
    parser.add_argument("--no-checksum", action="store_true", help="skip the input sha256")
    add_master(parser)


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
    add_conversion_flags(parser)
    parser.set_defaults(handler=run_convert_higgs)


def run_convert_higgs(args: argparse.Namespace) -> int:
    from hepspark.data.higgs_convert import ConvertConfig, convert_higgs
    config = ConvertConfig(
        input=args.input, output=args.output, test_rows=args.test_rows,
        test_fraction=args.test_fraction, val_fraction=args.val_fraction,
        features=args.features, on_bad_row=args.on_bad_row, overwrite=args.overwrite,
        seed=args.seed, row_group_size_mb=args.row_group_size_mb, checksum=not args.no_checksum,
    )
    spark = spark_session("hepspark-convert-higgs", args.master)
    with SparkProgress(spark, "convert", emit=say):
        summary = convert_higgs(spark, config, progress=say)
    say(summary.format())
    return 0


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
    add_conversion_flags(parser)
    parser.set_defaults(handler=run_convert_images)


def run_convert_images(args: argparse.Namespace) -> int:
    from hepspark.data.images_convert import ImageConvertConfig, convert_images
    config = ImageConvertConfig(
        input=args.input, output=args.output, kind=args.kind, images_key=args.images_key,
        labels_key=args.labels_key, weights_key=None if args.no_weights else args.weights_key,
        val_fraction=args.val_fraction, test_fraction=args.test_fraction, seed=args.seed,
        on_bad_row=args.on_bad_row, overwrite=args.overwrite,
        row_group_size_mb=args.row_group_size_mb, checksum=not args.no_checksum,
    )
    spark = spark_session("hepspark-convert-images", args.master)
    with SparkProgress(spark, "convert", emit=say):
        summary = convert_images(spark, config, progress=say)
    say(summary.format())
    return 0
