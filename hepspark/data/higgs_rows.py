"""Parse and validate HIGGS CSV text, a line-aligned chunk at a time (runs in Spark tasks).

The rules are those the converter always had (they were Spark SQL expressions before
issue #17): a good line has 29 comma-separated fields, only the characters of plain
decimal numbers (``[0-9eE.+-]``, spaces, tabs, CR), every field a finite number that stays
finite as float32, and a label of 0 or 1. A bad line gets one message naming its first
offending field, chosen as Spark's string → double cast (Java's ``Double.parseDouble``)
would see it.

:func:`parse_chunk` takes the fast path - Arrow's C++ CSV reader on the whole chunk - when
the chunk can only hold good lines by that reader's judgement, and otherwise the exact
path: every line through :func:`line_verdict`. Both give identical values (both parse to
the correctly rounded double, then round to float32).

>>> chunk = parse_chunk(b"1,0.5,...\\n", first_row=0)
>>> chunk.values.shape, chunk.bad
((1, 29), [])
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

import numpy as np

from hepspark.data.higgs_schema import COLUMNS

N_FIELDS = len(COLUMNS)
FLOAT32_MAX = float(np.finfo(np.float32).max)
# Every byte a good line may hold (plus the line ends): one C-speed translate() per chunk.
GOOD_BYTES = b"0123456789eE.+-, \t\r\n"
PLAIN_NUMBER = re.compile(r"[ \t\r]*[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?[ \t\r]*")
# Java's Double.valueOf grammar (after String.trim), ASCII digits only.
_JAVA_NUMBER = re.compile(
    r"(?P<sign>[+-]?)(?:(?P<special>NaN|Infinity)"
    r"|(?P<dec>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)[fFdD]?"
    r"|(?P<hex>0[xX](?:[0-9a-fA-F]+\.?|[0-9a-fA-F]*\.[0-9a-fA-F]+)[pP][+-]?[0-9]+)[fFdD]?)"
)
_JAVA_WHITESPACE = "".join(chr(c) for c in range(0x21))  # String.trim strips <= U+0020
# Spark's fallback when parseDouble fails (Cast.processFloatingPointSpecialLiterals).
_SPARK_SPECIALS = {"inf": float("inf"), "+inf": float("inf"), "infinity": float("inf"),
                   "+infinity": float("inf"), "-inf": float("-inf"),
                   "-infinity": float("-inf"), "nan": float("nan")}


def spark_double(text: str) -> float | None:
    """``CAST(text AS DOUBLE)`` as Spark 3.5 does it: ``None`` where it gives NULL."""
    trimmed = text.strip(_JAVA_WHITESPACE)
    match = _JAVA_NUMBER.fullmatch(trimmed)
    if match is None:
        return _SPARK_SPECIALS.get(text.strip(_JAVA_WHITESPACE).lower())
    sign = -1.0 if match["sign"] == "-" else 1.0
    if match["special"]:
        return float("nan") if match["special"] == "NaN" else sign * float("inf")
    if match["dec"] is not None:
        return sign * float(match["dec"])
    try:
        return sign * float.fromhex(match["hex"])
    except OverflowError:
        return sign * float("inf")


def line_verdict(text: str) -> tuple[list[float] | None, str | None]:
    """(the float32 values it stores, None) for a good line, (None, message) for a bad one.

    >>> line_verdict("1,2,3")
    (None, 'expected 29 comma-separated fields, found 3')
    """
    parts = text.split(",")
    if len(parts) != N_FIELDS:
        return None, f"expected {N_FIELDS} comma-separated fields, found {len(parts)}"
    raw = [part.strip(" ") for part in parts]  # Spark's trim(): spaces only
    nums = [spark_double(r) for r in raw]
    with np.errstate(over="ignore", invalid="ignore"):
        stored = [None if n is None else np.float32(n) for n in nums]
    good = (
        all(s is not None and np.isfinite(s) for s in stored)
        and nums[0] in (0.0, 1.0)
        and not text.translate(_DROP_GOOD_CHARS)
    )
    if good:
        return [float(s) for s in stored], None
    return None, _first_error(parts, raw, nums)


_DROP_GOOD_CHARS = {ord(c): None for c in GOOD_BYTES.decode()}


def _first_error(parts: list[str], raw: list[str], nums: list[float | None]) -> str:
    """The message of a bad line: the same precedence as the converter always used."""
    tests = (
        (lambda i: nums[i] is None, "not a number: '{}'"),
        (lambda i: not np.isfinite(nums[i]), "{} is not finite"),
        (lambda i: abs(nums[i]) > FLOAT32_MAX, "{} is beyond the float32 range"),
        (lambda i: not PLAIN_NUMBER.fullmatch(parts[i]), "not a plain decimal number: '{}'"),
    )
    for failed, template in tests:
        for i, name in enumerate(COLUMNS):
            if failed(i):
                return f"field {i + 1} ({name}): " + template.format(raw[i])
    return f"field 1 (label): must be 0 or 1, found {raw[0]}"


def count_lines(data: bytes, start: int = 0, end: int | None = None) -> int:
    """Lines in ``data[start:end]`` as Hadoop's line reader (and :meth:`bytes.splitlines`)
    count them: ``\\n``, ``\\r\\n`` and a lone ``\\r`` end a line; a last line needs no end."""
    end = len(data) if end is None else end
    ends = data.count(b"\n", start, end)
    if data.find(b"\r", start, end) >= 0:  # rare: the two extra passes only where needed
        ends += data.count(b"\r", start, end) - data.count(b"\r\n", start, end)
    return ends + (1 if end > start and data[end - 1:end] not in (b"\n", b"\r") else 0)


@dataclass
class ParsedChunk:
    """The good rows of a chunk (``row_index``, float32 ``values`` in COLUMNS order) and
    every bad line as ``(row_index, message)``; ``lines`` counts both."""

    row_index: np.ndarray
    values: np.ndarray
    lines: int
    bad: list[tuple[int, str]] = field(default_factory=list)


def parse_chunk(data: bytes, first_row: int, allow_fast: bool = True,
                lines: int | None = None) -> ParsedChunk:
    """Parse line-aligned CSV bytes whose first line is row ``first_row`` of the input
    (``allow_fast=False``: the exact path only, to check the fast one against; ``lines``:
    :func:`count_lines` of ``data`` where the caller already counted them)."""
    lines = count_lines(data) if lines is None else lines
    values = _fast_values(data, lines) if allow_fast else None
    if values is not None:
        return ParsedChunk(np.arange(first_row, first_row + lines, dtype=np.int64), values,
                           lines)
    return _exact(data, first_row)


def _fast_values(data: bytes, lines: int) -> np.ndarray | None:
    """float32 values of every line when Arrow's reader proves them all good, else None.

    Arrow is stricter or equal on everything it is trusted with here: odd characters are
    refused before it runs, quoting is off, an empty line or a wrong field count makes it
    raise or drop the row (the row count then disagrees); what it accepts that the rules
    refuse (non-finite values, bad labels) is checked on its result.
    """
    if not data or data.translate(None, GOOD_BYTES):
        return None
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=list(COLUMNS), use_threads=False),
            parse_options=pacsv.ParseOptions(quote_char=False, double_quote=False,
                                             escape_char=False, ignore_empty_lines=False),
            # float64 first, then float32: the same two roundings as the exact path.
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.float64() for c in COLUMNS}, null_values=[],
                quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid:
        return None
    if table.num_rows != lines:
        return None
    label = table.column(0).to_numpy()
    if not np.all((label == 0.0) | (label == 1.0)):
        return None
    # One float32 row per column (filled column by column: contiguous writes), handed out
    # transposed: rows x columns, as the exact path gives, without a copy. Block by block:
    # a column's to_numpy() would first concatenate its blocks (half the cost).
    columns = np.empty((N_FIELDS, table.num_rows), dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(N_FIELDS):
            at = 0
            for block in table.column(i).chunks:
                columns[i, at:at + len(block)] = block.to_numpy()
                at += len(block)
    return columns.T if np.isfinite(columns).all() else None


def _exact(data: bytes, first_row: int) -> ParsedChunk:
    good_rows, good_values, bad = [], [], []
    for offset, raw_line in enumerate(data.splitlines()):
        values, error = line_verdict(raw_line.decode("utf-8", errors="replace"))
        if error is None:
            good_rows.append(first_row + offset)
            good_values.append(values)
        else:
            bad.append((first_row + offset, error))
    values = np.array(good_values, dtype=np.float32).reshape(-1, N_FIELDS)
    return ParsedChunk(np.array(good_rows, dtype=np.int64), values,
                       len(good_rows) + len(bad), bad)
