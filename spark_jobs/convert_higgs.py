"""spark-submit entry point: `spark-submit spark_jobs/convert_higgs.py [flags]`.

Same flags as `hepspark convert higgs` (see `--help`); all logic lives in the library.
"""
import sys

from hepspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["convert", "higgs", *sys.argv[1:]]))
