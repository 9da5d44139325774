"""``hepspark pack-env``: this venv as an archive for ``spark-submit --archives``
(:mod:`hepspark.pack_env`)."""
from __future__ import annotations

import argparse
import os
import sys

from hepspark.pack_env import pack_env


def add_pack_env(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, help="archive to write (.tar.gz or .zip)")
    parser.add_argument("--venv", help=f"virtual environment to pack (default: {sys.prefix})")
    parser.add_argument(
        "--python-prefix",
        help="where the base Python lives on the executors, if not at the same path as here",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing archive")
    parser.set_defaults(handler=run_pack_env)


def run_pack_env(args: argparse.Namespace) -> int:
    summary = pack_env(args.output, args.venv, args.python_prefix, args.overwrite,
                       progress=lambda m: print(m, flush=True))
    name = os.path.basename(summary["output"])
    print(f"use: PYSPARK_PYTHON=./env/bin/python spark-submit --archives {name}#env "
          "--conf spark.executorEnv.PYSPARK_PYTHON=./env/bin/python ...")
    return 0
