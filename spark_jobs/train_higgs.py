"""spark-submit entry point: `spark-submit spark_jobs/train_higgs.py [flags]`.

Same flags as `hepspark train higgs` (see `--help`); all logic lives in the library.
"""
import sys

from hepspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "higgs", *sys.argv[1:]]))
