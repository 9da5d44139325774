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


def write_dataset_metadata(spark: Any, dataset_url: str, schema: Any,
                           row_groups_per_file: dict[str, int]) -> None:
    """What ``petastorm.etl.dataset_metadata.materialize_dataset`` adds to Parquet files
    written without Spark (the schema and the row groups per file, in ``_common_metadata``),
    from row-group counts the writers already know: petastorm 0.13.1 re-reads every file's
    footer in a Spark job of one task per file (``_generate_num_row_groups_per_file``),
    seconds for a few hundred files. Same keys and checks as petastorm; remove with it."""
    import json

    import pyarrow.parquet as pq
    from petastorm.etl.dataset_metadata import (
        ROW_GROUPS_PER_FILE_KEY,
        _generate_unischema_metadata,
        load_row_groups,
    )
    from petastorm.fs_utils import FilesystemResolver
    from petastorm.utils import add_to_dataset_metadata

    with quiet_petastorm():
        resolver = FilesystemResolver(dataset_url, spark.sparkContext._jsc.hadoopConfiguration(),
                                      user=spark.sparkContext.sparkUser())
        filesystem, path = resolver.filesystem(), resolver.get_dataset_path()
        dataset = pq.ParquetDataset(path, filesystem=filesystem, validate_schema=False)
        _generate_unischema_metadata(dataset, schema)
        add_to_dataset_metadata(dataset, ROW_GROUPS_PER_FILE_KEY,
                                json.dumps(row_groups_per_file))
        # as materialize_dataset ends: the index must cover every file petastorm will see
        load_row_groups(pq.ParquetDataset(path, filesystem=filesystem, validate_schema=False))
