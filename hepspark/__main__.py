"""``python -m hepspark ...``: the same command line as the ``hepspark`` script (used by
benchmarks and tests that start it as a subprocess of a given interpreter)."""
import sys

from hepspark.cli import main

sys.exit(main())
