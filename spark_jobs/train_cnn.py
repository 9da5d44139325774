"""spark-submit entry point: `spark-submit spark_jobs/train_cnn.py [flags]`.

Same flags as `hepspark train cnn` (see `--help`); all logic lives in the library.
"""
import sys

from hepspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "cnn", *sys.argv[1:]]))
