"""spark-submit entry point: `spark-submit spark_jobs/convert_images.py [flags]`.

Same flags as `hepspark convert images` (see `--help`); all logic lives in the library.
"""
import sys

from hepspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["convert", "images", *sys.argv[1:]]))
