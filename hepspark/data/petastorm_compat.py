"""Workarounds for Petastorm 0.13.1 (unmaintained) on pyarrow 14, kept in one place."""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_petastorm() -> Iterator[None]:
    """Silence the FutureWarning/DeprecationWarning flood Petastorm 0.13.1 triggers on
    pyarrow >= 5 (legacy ParquetDataset, ``pyarrow.localfs``); remove with Petastorm."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield
