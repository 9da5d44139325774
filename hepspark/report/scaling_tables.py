"""Small formatting pieces the scaling report's HIGGS and CNN sections share: a number or
"–", and a table of one value per curve and node count.

>>> node_table({("horovod", "adam"): [(1, 3.0), (2, 1.9)]}, ".1f").rows
[['horovod adam', '3.0', '1.9']]
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from hepspark.report.document import Table


def fmt(value: float | None, spec: str = ".2f", missing: str = "–") -> str:
    """``value`` formatted with ``spec``; ``missing`` for None, NaN and inf."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    return format(value, spec)


def node_table(series: Mapping[tuple[str, str], Sequence[tuple[int, float]]], spec: str,
               first: str = "backend optimizer") -> Table:
    """One row per curve (its name in column ``first``), one column per node count."""
    nodes = sorted({n for points in series.values() for n, _ in points})
    rows = [[f"{b} {o}", *(fmt(dict(points).get(n), spec) for n in nodes)]
            for (b, o), points in sorted(series.items())]
    return Table([first, *(f"N={n}" for n in nodes)], rows)
