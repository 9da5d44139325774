"""The inflating task cuts a ``.csv.gz`` into line-aligned chunks whose manifests count
their lines exactly (``\\r\\n``, lone ``\\r``, a line longer than a chunk, no final line end,
several gzip members, chunks filled across the inflater's blocks), in memory while it has
room and beside the output after."""
from __future__ import annotations

import gzip
import json
import random

from hepspark.data.higgs_convert_remote import DecompressJob, decompress
from hepspark.data.higgs_rows import count_lines


def _text(rng: random.Random, lines: int) -> bytes:
    out = []
    for i in range(lines):
        line = ",".join(str(rng.random()) for _ in range(rng.randint(1, 12)))
        out.append(line + rng.choice(["\n"] * 8 + ["\r\n", "\r"]))
        if i == lines // 2:
            out.append("9" * 5000 + "\n")  # longer than a chunk
    return "".join(out).rstrip("\n\r").encode()  # no final line end


def _chunks(directory, count: int) -> list[tuple[dict, bytes]]:
    found = []
    for number in range(count):
        manifest = json.loads((directory / f"f00000-c{number:06d}.json").read_text())
        path = manifest["uri"].removeprefix("file://")
        with open(path, "rb") as handle:
            found.append((manifest, handle.read()))
    return found


def test_chunks_are_line_aligned_and_counted(tmp_path):
    rng = random.Random(3)
    text = _text(rng, 120_000)  # ~12 MB: the inflater reads 4 MB of gzip at a time
    half = len(text) // 3
    source = tmp_path / "in.csv.gz"
    source.write_bytes(gzip.compress(text[:half], 1) + gzip.compress(text[half:], 1))
    memory = tmp_path / "memory"
    memory.mkdir()
    job = DecompressJob(f"file://{source}", f"file://{tmp_path}/chunks", 0,
                        chunk_bytes=1 << 20, memory_dir=str(memory), memory_bytes=3 << 20)
    count = decompress(job)
    assert json.loads((tmp_path / "chunks" / "f00000.done.json").read_text()) == {
        "chunks": count}
    chunks = _chunks(tmp_path / "chunks", count)
    assert b"".join(data for _, data in chunks) == text
    assert count >= 10
    for manifest, data in chunks:
        assert manifest["bytes"] == len(data)
        assert manifest["lines"] == count_lines(data)
    assert all(data.endswith(b"\n") for _, data in chunks[:-1])
    assert sum(m["lines"] for m, _ in chunks) == count_lines(text)
    # the memory took what fitted (nothing was parsed and deleted meanwhile), disk the rest
    in_memory = [m for m, _ in chunks if m["uri"].startswith(f"file://{memory}/")]
    assert 1 <= len(in_memory) <= 3 and len(in_memory) < count
    assert sum(m["bytes"] for m in in_memory) <= 3 << 20


def test_memory_that_fails_leaves_the_chunks_to_the_disk(tmp_path):
    text = b"".join(b"%d,0.5\n" % i for i in range(3000))
    source = tmp_path / "in.csv.gz"
    source.write_bytes(gzip.compress(text))
    gone = tmp_path / "removed-meanwhile"  # as a full or vanished tmpfs would fail
    count = decompress(DecompressJob(f"file://{source}", f"file://{tmp_path}/c", 0,
                                     chunk_bytes=4_000, memory_dir=str(gone),
                                     memory_bytes=1 << 30))
    chunks = _chunks(tmp_path / "c", count)
    assert b"".join(data for _, data in chunks) == text
    assert all(m["uri"].startswith(f"file://{tmp_path}/c/") for m, _ in chunks)
    assert not gone.exists()


def test_a_short_tail_joins_the_last_chunk(tmp_path):
    text = b"".join(b"%d,0.5\n" % i for i in range(3000))  # ~25 kB
    source = tmp_path / "in.csv.gz"
    source.write_bytes(gzip.compress(text))
    count = decompress(DecompressJob(f"file://{source}", f"file://{tmp_path}/c", 0,
                                     chunk_bytes=10_000))
    sizes = [m["bytes"] for m, _ in _chunks(tmp_path / "c", count)]
    assert sum(sizes) == len(text) and min(sizes) >= 5_000, sizes


def test_memory_scratch_is_removed_with_what_killed_runs_left(spark, tmp_path):
    import os
    import subprocess
    import sys

    from hepspark.data import higgs_convert

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = os.path.join(higgs_convert.MEMORY_DIR, f"{higgs_convert.MEMORY_PREFIX}{dead}-x")
    alive = os.path.join(higgs_convert.MEMORY_DIR,
                         f"{higgs_convert.MEMORY_PREFIX}{os.getppid()}-y")  # still running
    other = os.path.join(higgs_convert.MEMORY_DIR, "hepspark-not-chunks-1-z")
    for path in (stale, alive, other):
        os.makedirs(path)
    try:
        with higgs_convert.memory_scratch(spark) as (directory, room):
            assert directory.startswith(higgs_convert.MEMORY_DIR) and room > 0
            assert os.path.basename(directory).startswith(
                f"{higgs_convert.MEMORY_PREFIX}{os.getpid()}-")
            assert not os.path.exists(stale)
            assert os.path.isdir(alive) and os.path.isdir(other)
        assert not os.path.exists(directory)
    finally:
        for path in (stale, alive, other):
            if os.path.isdir(path):
                os.rmdir(path)
