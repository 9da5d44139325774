"""Workarounds for Petastorm 0.13.1 (unmaintained) on pyarrow 14, kept in one place."""
from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def quiet_petastorm() -> Iterator[None]:
    """Silence the FutureWarning/DeprecationWarning flood Petastorm 0.13.1 triggers on
    pyarrow >= 5 (legacy ParquetDataset, ``pyarrow.localfs``); remove with Petastorm.

    Readers also run inside tf.data threads, where a ``catch_warnings`` block does not
    reach, so the filters are installed for warnings attributed to petastorm's own
    modules (and only those) for the rest of the process.
    """
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=r"petastorm(\.|$)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        # make_batch_reader warns on every dataset written with a Unischema, although
        # scalar columns (ours) are exactly what it reads correctly.
        warnings.filterwarnings("ignore", message="Please use make_reader", category=UserWarning)
        yield


def close_reader(reader: Any) -> None:
    """Stop and join a Petastorm reader without the ``print("Cache cleanup complete.")``
    its ``__exit__`` writes to stdout on every epoch (petastorm 0.13.1 ``Reader``)."""
    with contextlib.redirect_stdout(io.StringIO()):
        reader.stop()
        reader.join()
        reader.cleanup_cache()
