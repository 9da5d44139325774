"""``python -m hepspark.cli``: the ``hepspark`` command."""
import sys

from hepspark.cli import main

sys.exit(main())
