"""spark-submit entry point: `spark-submit spark_jobs/generate_jets.py [flags]`.

Same flags as `hepspark generate jets` (see `--help`); all logic lives in the library.
"""
import sys

from hepspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", "jets", *sys.argv[1:]]))
