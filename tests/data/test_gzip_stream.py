"""Inflating .gz inputs (hepspark.data.gzip_stream): every member, exact bytes, and a
clear error for a file cut short or not gzip at all."""
from __future__ import annotations

import gzip
import io
import zlib

import pytest

from hepspark.data.gzip_stream import DamagedGzipError, inflate_blocks

TEXT = b"".join(b"%d,0.5,1.25e+00\n" % i for i in range(20_000))


def inflate(data: bytes, read_bytes: int = 4096) -> bytes:
    blocks = list(inflate_blocks(io.BytesIO(data), read_bytes))
    positions = [pos for _, pos in blocks]
    assert positions == sorted(positions) and positions[-1] == len(data)
    return b"".join(text for text, _ in blocks)


@pytest.mark.parametrize("read_bytes", [7, 4096, 1 << 20])
def test_concatenated_members_are_one_stream(read_bytes):
    thirds = [TEXT[: 100_000], TEXT[100_000: 250_000], TEXT[250_000:]]
    data = b"".join(gzip.compress(part, mtime=0) for part in thirds)
    assert inflate(data, read_bytes) == TEXT


def test_an_empty_member_in_the_middle_is_fine():
    data = gzip.compress(TEXT[:10]) + gzip.compress(b"") + gzip.compress(TEXT[10:])
    assert inflate(data) == TEXT


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_a_truncated_file_is_refused(keep):
    data = gzip.compress(TEXT)
    with pytest.raises(DamagedGzipError, match="truncated"):
        inflate(data[: int(len(data) * keep)])


def test_a_member_cut_short_after_a_whole_one_is_refused():
    whole = gzip.compress(TEXT[:1000])
    with pytest.raises(DamagedGzipError, match="truncated"):
        inflate(whole + gzip.compress(TEXT)[:50])


def test_bytes_that_are_not_gzip_are_refused():
    with pytest.raises(DamagedGzipError, match="not gzip data or corrupt"):
        inflate(zlib.compress(TEXT))  # a zlib stream, not gzip
    with pytest.raises(DamagedGzipError, match="not gzip data or corrupt"):
        inflate(gzip.compress(TEXT) + b"garbage after the member")
