"""The flow every ``hepspark convert`` kind shares; each kind keeps its own parser.

A converter (:func:`~hepspark.data.higgs_convert.convert_higgs`,
:func:`~hepspark.data.images_convert.convert_images`) runs these steps:

1. its config validates itself (:func:`check_convert_options` for the options every kind
   has) and the kind resolves its inputs;
2. :class:`DatasetOutput` checks the output before any work (exists without
   ``--overwrite``, not written by hepspark, not writable);
3. the kind parses and validates its rows; :func:`apply_bad_row_policy` fails or skips
   malformed rows (``--on-bad-row``);
4. the kind writes its splits into :meth:`DatasetOutput.build`'s temporary directory,
   :meth:`DatasetOutput.write_metadata` writes ``hepspark_dataset.json`` last (common
   header, :func:`source_metadata` with the inputs' checksum) and the directory is swapped
   into place atomically (:class:`~hepspark.data.storage.AtomicOutput`);
5. a :class:`DatasetSummary` subclass describes the result.

>>> output = DatasetOutput(spark, "data/higgs", overwrite=False, progress=print)
>>> with output.build() as tmp_uri:
...     output.write_metadata(tmp_uri, "hepspark-higgs", write_splits(tmp_uri), ...)
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from hepspark import __version__
from hepspark.data import storage

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ON_BAD_ROW = ("fail", "skip")
MAX_REPORTED_BAD_ROWS = 5
FORMAT_VERSION = 1


def check_convert_options(on_bad_row: str, row_group_size_mb: int) -> None:
    """Refuse the options every converter config has, naming the allowed values."""
    if on_bad_row not in ON_BAD_ROW:
        raise ValueError(f"on_bad_row must be 'fail' or 'skip', got {on_bad_row!r}")
    if row_group_size_mb < 1:
        raise ValueError(f"row_group_size_mb must be >= 1, got {row_group_size_mb}")


def apply_bad_row_policy(
    count: int,
    examples: list[str],
    on_bad_row: str,
    error: type[ValueError],
    what: str,
    progress: Callable[[str], None],
) -> None:
    """``--on-bad-row fail``: raise ``error`` naming the first ``examples``; ``skip``: say
    how many rows are dropped. Nothing when ``count`` is 0.

    >>> apply_bad_row_policy(2, ["a.csv:3: field 2 ..."], "fail", BadInputError,
    ...                      "malformed row(s) in the input", print)
    BadInputError: 2 malformed row(s) in the input; first: a.csv:3: field 2 ...
    """
    if not count:
        return
    if on_bad_row == "fail":
        more = "".join(f"\n  {e}" for e in examples[1:])
        raise error(
            f"{count:,d} {what}; first: {examples[0]}{more}\n"
            "Fix the input or pass --on-bad-row skip to drop such rows."
        )
    progress(f"[convert] skipping {count:,d} malformed row(s), first: {examples[0]}")


def local_input_bytes(paths: list[str]) -> int:
    """Bytes of the local inputs (paths or ``file://`` URIs); remote ones count 0."""
    return sum(os.path.getsize(storage.local_path(p)) for p in paths if storage.is_local(p))


def sha256_files(paths: list[str]) -> str | None:
    """One SHA-256 over the inputs' bytes, in order; ``None`` if one of them is remote."""
    if not all(storage.is_local(p) for p in paths):
        return None
    digest = hashlib.sha256()
    for path in paths:
        with open(storage.local_path(path), "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()


def source_metadata(paths: list[str], input_bytes: int, checksum: bool,
                    **counts: int) -> dict[str, Any]:
    """The ``source`` entry of ``hepspark_dataset.json``: local paths, bytes, what the kind
    counted (``lines``, ``rows``) and the SHA-256 (``None`` without ``checksum``)."""
    return {"paths": [storage.local_path(p) for p in paths], "bytes": input_bytes, **counts,
            "sha256": sha256_files(paths) if checksum else None}


class DatasetOutput:
    """The directory a converter publishes, checked on creation (before any work).

    :meth:`build` yields a temporary sibling to write into and swaps it into place when the
    block ends without error (deleting it otherwise); :meth:`write_metadata`, called last
    inside the block, marks the dataset complete.
    """

    def __init__(self, spark: "SparkSession", output: str, *, overwrite: bool,
                 progress: Callable[[str], None] | None = None) -> None:
        self.uri = storage.to_uri(output)
        self.fs = storage.HadoopFileSystem(spark, self.uri)
        self._publish = storage.AtomicOutput(self.fs, self.uri, overwrite=overwrite,
                                             progress=progress)
        self._publish.check()

    @contextlib.contextmanager
    def build(self) -> Iterator[str]:
        """The temporary directory's URI; published atomically when the block succeeds."""
        with self._publish as tmp_uri:
            yield tmp_uri

    def write_metadata(self, tmp_uri: str, dataset_format: str, fields: dict[str, Any], *,
                       source: dict[str, Any], bad_rows: int, bad_row_examples: list[str],
                       split_rule: Any, config: Any) -> None:
        """Write ``hepspark_dataset.json``: the common header, the kind's ``fields``, then
        source, bad rows, split rule and the config (a dataclass) verbatim."""
        metadata = {
            "format": dataset_format,
            "format_version": FORMAT_VERSION,
            "hepspark_version": __version__,
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **fields,
            "source": source,
            "bad_rows": {"count": bad_rows, "examples": bad_row_examples},
            "split_rule": split_rule,
            "config": dataclasses.asdict(config),
        }
        storage.write_metadata(self.fs, tmp_uri, metadata)


@dataclass
class DatasetSummary:
    """What a conversion wrote; :meth:`format` is what ``hepspark convert`` prints."""

    output: str
    rows: dict[str, int]
    bad_rows: int
    bad_row_examples: list[str]
    input_bytes: int
    seconds: float

    row_unit: ClassVar[str] = "rows"  # "  train    12,345 <row_unit>"
    split_width: ClassVar[int] = 5

    def split_lines(self) -> list[tuple[str, int]]:
        return list(self.rows.items())

    def rate(self) -> str:
        """The throughput, with its unit (the end of the last line)."""
        raise NotImplementedError

    def format(self) -> str:
        lines = [f"dataset written: {self.output}"]
        lines += [f"  {split:<{self.split_width}} {rows:>12,d} {self.row_unit}"
                  for split, rows in self.split_lines()]
        lines.append(f"  bad rows skipped: {self.bad_rows:,d}")
        lines += [f"    {example}" for example in self.bad_row_examples]
        lines.append(f"  {self.seconds:.1f} s, {self.input_bytes / 1e6:.1f} MB of input, "
                     f"{self.rate()}")
        return "\n".join(lines)
