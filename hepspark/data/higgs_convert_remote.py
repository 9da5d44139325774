"""What each Spark task of ``hepspark convert higgs`` runs, over small frozen specs.

Three kinds of task (the driver, :mod:`hepspark.data.higgs_convert`, plans and merges):

- :func:`count_range`: a byte range of a plain ``.csv``, moved to line boundaries, and the
  lines it holds (so every chunk knows its first line number before anything is parsed);
- :func:`decompress`: one ``.csv.gz`` (or other compressed file: not splittable) streamed
  once, cut into line-aligned plain-text chunk files under the output's temporary
  directory, each announced by a small manifest (its bytes, lines and how far the
  compressed file has been read) as soon as it is complete;
- :func:`parse_and_write`: one chunk parsed (:func:`~hepspark.data.higgs_rows.parse_chunk`),
  split into train / val / test, written as one Parquet file per split, and summarised
  (rows, training-set moments, bad lines) for the driver.

Files are opened through pyarrow's filesystems (``file://``, ``hdfs://``, ``s3://``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hepspark.data.higgs_rows import ParsedChunk, count_lines, parse_chunk
from hepspark.data.higgs_schema import COLUMNS, LABEL
from hepspark.data.moments import Moments
from hepspark.data.spark_hash import pmod_xxhash64

# Extensions pyarrow decompresses (compression="detect"); such a file is one stream.
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zst", ".lz4", ".br")
# Raised by a task for a damaged compressed input; the driver turns it into one clear line.
DAMAGED_INPUT = "hepspark: truncated or corrupt compressed input:"
_ALIGN_READ = 1 << 16
SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class Chunk:
    """Bytes ``[start, end)`` of ``uri``, line-aligned; its first line is line
    ``first_line`` (1-based) of ``source`` and row ``first_row`` of the whole input;
    ``lines``: how many lines it holds, where already counted (placed chunks)."""

    uri: str
    start: int
    end: int
    source: str
    first_line: int = 1
    first_row: int = 0
    name: str = "part"
    lines: int | None = None


@dataclass(frozen=True)
class DecompressJob:
    """Inflate ``uri`` into chunks of about ``chunk_bytes``, announced under ``chunks_uri``;
    the chunk files go to ``memory_dir`` (a local tmpfs directory, when every task runs on
    the driver's host) while it holds under ``memory_bytes`` of them, else to ``chunks_uri``."""

    uri: str
    chunks_uri: str  # directory for the manifests, and for the chunk files memory cannot take
    file_index: int
    chunk_bytes: int
    memory_dir: str | None = None
    memory_bytes: int = 0


@dataclass(frozen=True)
class SplitRule:
    """Which split each row goes to, and how the files are written."""

    output_uri: str
    features: tuple[str, ...]
    test_start_row: int  # rows from here on are the test split (the UCI tail)
    val_threshold: int  # xxhash64(row_index, seed) mod 1e6 below this: validation
    seed: int
    rows_per_group: int
    max_examples: int


@dataclass
class ChunkResult:
    rows: dict[str, int]
    train: Moments
    bad_count: int
    bad_examples: list[tuple[int, str]] = field(default_factory=list)  # (row, "file:line: ...")
    input_bytes: int = 0
    row_groups: dict[str, dict[str, int]] = field(default_factory=dict)  # split: {file: n}


def _filesystem(uri: str):
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(uri)


def _read(uri: str, start: int, end: int) -> bytes:
    fs, path = _filesystem(uri)
    with fs.open_input_file(path) as handle:
        return handle.read_at(end - start, start) if end > start else b""


def _line_start(handle, pos: int, size: int) -> int:
    """The first line start at or after ``pos``: just after the next ``\\n`` at or after
    ``pos - 1`` (a ``\\r\\n`` is never cut; a lone ``\\r`` never cuts a chunk)."""
    if pos <= 0 or pos >= size:
        return min(max(pos, 0), size)
    at = pos - 1
    while at < size:
        block = handle.read_at(min(_ALIGN_READ, size - at), at)
        found = block.find(b"\n")
        if found >= 0:
            return at + found + 1
        at += len(block)
    return size


def count_range(chunk: Chunk) -> Chunk:
    """``chunk`` moved to line boundaries, with its line count in ``first_line``."""
    fs, path = _filesystem(chunk.uri)
    with fs.open_input_file(path) as handle:
        size = handle.size()
        start = _line_start(handle, chunk.start, size)
        end = _line_start(handle, chunk.end, size)
        data = handle.read_at(end - start, start) if end > start else b""
    return Chunk(chunk.uri, start, end, chunk.source, first_line=count_lines(data),
                 name=chunk.name)


def chunk_manifest(chunks_uri: str, file_index: int, number: int) -> str:
    """Where :func:`decompress` announces chunk ``number`` of input ``file_index`` (JSON:
    ``bytes``, ``lines``, ``packed_pos``), once its text file is complete."""
    return f"{chunks_uri}/f{file_index:05d}-c{number:06d}.json"


def done_manifest(chunks_uri: str, file_index: int) -> str:
    """Where :func:`decompress` writes ``{"chunks": N}`` when input ``file_index`` is done."""
    return f"{chunks_uri}/f{file_index:05d}.done.json"


def _publish(out_fs, path: str, parts) -> None:
    """Write ``parts`` (bytes-like pieces, in order) then rename: a reader polling for
    ``path`` never sees half of it (and a retried task rewrites the same bytes)."""
    import uuid

    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        with out_fs.open_output_stream(tmp) as out:
            for part in parts:
                out.write(part)
    except OSError:
        try:
            out_fs.delete_file(tmp)
        except OSError:
            pass  # never created
        raise
    out_fs.move(tmp, path)


def _text_blocks(job: DecompressJob):
    """``(text, compressed bytes read so far)`` of the whole compressed file."""
    from hepspark.data.gzip_stream import DamagedGzipError, inflate_blocks

    fs, path = _filesystem(job.uri)
    try:
        if job.uri.lower().endswith(".gz"):
            with fs.open_input_stream(path, compression=None) as raw:  # not "detect"
                yield from inflate_blocks(raw)
            return
        size = fs.get_file_info(path).size
        with fs.open_input_stream(path, compression="detect") as stream:
            while True:  # other codecs: pyarrow's stream (no position: report the end)
                block = stream.read(job.chunk_bytes)
                if not block:
                    break
                yield block, size
    except (OSError, DamagedGzipError) as exc:  # pyarrow: "Truncated compressed stream"
        raise OSError(f"{DAMAGED_INPUT} {exc}") from exc


def _memory_held(directory: str) -> int:
    """Bytes of the chunk files (not yet parsed and deleted) in a memory directory."""
    import os

    return sum(entry.stat().st_size for entry in os.scandir(directory)
               if entry.name.endswith(".csv"))


class _ChunkText:
    """Pieces of inflated text making one chunk, with their ``\n`` count taken as each
    piece arrives (still in cache) and whether any holds a ``\r`` (then the chunk is
    counted whole by :func:`count_lines`: a ``\r\n`` may straddle two pieces)."""

    def __init__(self) -> None:
        self.parts: list[memoryview] = []
        self.size = self.newlines = 0
        self.has_cr = False

    def add(self, block: bytes, start: int, end: int) -> None:
        if end > start:
            self.parts.append(memoryview(block)[start:end])
            self.size += end - start
            self.newlines += block.count(b"\n", start, end)
            self.has_cr = self.has_cr or block.find(b"\r", start, end) >= 0

    def extend(self, other: "_ChunkText") -> None:
        self.parts += other.parts
        self.size += other.size
        self.newlines += other.newlines
        self.has_cr = self.has_cr or other.has_cr

    def lines(self) -> int:
        if self.has_cr:
            return count_lines(b"".join(self.parts))
        last = bytes(self.parts[-1][-1:]) if self.parts else b""
        return self.newlines + (1 if self.size and last not in (b"\n", b"\r") else 0)


def decompress(job: DecompressJob) -> int:
    """Stream ``job.uri`` once into line-aligned plain chunk files (in memory while it has
    room, see :class:`DecompressJob`), announcing each in a small manifest under
    ``job.chunks_uri`` as soon as it is complete (so the driver parses it while this task
    goes on); returns the number of chunks.

    A chunk ends at the last line end within ``chunk_bytes`` of the inflated text of the
    block that fills it (or at the first one after, where there is none), and is written
    piece by piece: never joined into one buffer (that copy cost 1.3 s at 11M events)."""
    import json

    out_fs, out_dir = _filesystem(job.chunks_uri)
    out_fs.create_dir(out_dir, recursive=True)
    memory_fs, _ = _filesystem("file:///")
    written = 0

    def to_memory(name: str, text: _ChunkText) -> str | None:
        """The chunk written to memory where it has room: its URI, else None."""
        if not job.memory_dir:
            return None
        path = f"{job.memory_dir}/{name}.csv"
        try:
            if _memory_held(job.memory_dir) + text.size > job.memory_bytes:
                return None
            _publish(memory_fs, path, text.parts)
        except OSError:  # filled by another process meanwhile, or gone: the disk takes it
            return None
        return f"file://{path}"

    def flush(text: _ChunkText, packed_pos: int) -> None:
        nonlocal written
        name = f"f{job.file_index:05d}-c{written:06d}"
        # memory while it has room: writing through a disk's page cache cost this task
        # 4.2 s of CPU for the 2.75 GB of the 11M-event file (tmpfs: ~0.9 s)
        chunk_uri = to_memory(name, text)
        if chunk_uri is None:
            chunk_uri = f"{job.chunks_uri}/{name}.csv"
            _publish(out_fs, f"{out_dir}/{name}.csv", text.parts)
        manifest = {"bytes": text.size, "lines": text.lines(), "packed_pos": packed_pos,
                    "uri": chunk_uri}
        _publish(out_fs, f"{out_dir}/{name}.json", [json.dumps(manifest).encode()])
        written += 1

    # Each full chunk is held back until the next one is ready, so a short tail can join
    # it: a tail chunk of a few rows would become a row group of a few rows, and ranks
    # sharding row groups i % N would get very unequal shards.
    held: _ChunkText | None = None
    current = _ChunkText()
    packed_pos = 0
    for block, packed_pos in _text_blocks(job):
        at = 0
        while at < len(block):  # a block may fill several chunks
            need = job.chunk_bytes - current.size
            if len(block) - at < need:  # the rest of the block fits: keep reading
                current.add(block, at, len(block))
                break
            limit = at + max(0, need)
            cut = block.rfind(b"\n", at, limit) + 1
            if cut <= at:  # no line end before the limit here: the first one after it
                cut = block.find(b"\n", limit) + 1
                if not cut:  # none in the rest of the block: keep reading
                    current.add(block, at, len(block))
                    break
            current.add(block, at, cut)
            if held is not None:
                flush(held, packed_pos)
            held, current, at = current, _ChunkText(), cut
    if held is not None and current.size and current.size < job.chunk_bytes // 2:
        held.extend(current)  # held ends with a line end
        current = _ChunkText()
    if held is not None:
        flush(held, packed_pos)
    if current.size or not written:
        flush(current, packed_pos)
    _publish(out_fs, done_manifest(out_dir, job.file_index),
             [json.dumps({"chunks": written}).encode()])
    return written


def parse_and_write(chunk: Chunk, rule: SplitRule) -> ChunkResult:
    """Parse one chunk, write its rows per split, summarise it for the driver."""
    parsed = parse_chunk(_read(chunk.uri, chunk.start, chunk.end), chunk.first_row,
                         lines=chunk.lines)
    bad = [(row, _where(chunk, row, message)) for row, message in parsed.bad]
    split = _split_of(parsed.row_index, rule)
    keep = [0, *(COLUMNS.index(f) for f in rule.features)]
    # columns x rows: each stored column contiguous (Arrow takes it without a copy)
    columns = parsed.values.T
    if keep != list(range(len(COLUMNS))):
        columns = columns[keep]
    rows, train, row_groups = {}, Moments.empty(len(rule.features)), {}
    for code, name in enumerate(SPLIT_NAMES):
        mask = split == code
        rows[name] = int(np.count_nonzero(mask))
        if not rows[name]:
            continue
        whole = rows[name] == len(mask)
        # compress, not [:, mask]: that gives a Fortran-ordered copy (4x slower, and
        # every column then needs another copy for Arrow)
        part = columns if whole else columns.compress(mask, axis=1)
        row_index = parsed.row_index if whole else parsed.row_index[mask]
        if name == "train":
            train = Moments.of(part[1:].T)
        row_groups[name] = _write_parquet(rule, name, chunk.name, row_index, part)
    return ChunkResult(rows, train, len(bad), bad[: rule.max_examples],
                       input_bytes=chunk.end - chunk.start, row_groups=row_groups)


def parse_item(item: tuple[Chunk, SplitRule]) -> ChunkResult:
    """:func:`parse_and_write` of one ``(chunk, rule)`` (chunks of one job may have
    different rules: those placed early only know a lower bound of the test start)."""
    return parse_and_write(*item)


def _split_of(row_index: np.ndarray, rule: SplitRule) -> np.ndarray:
    """Index into SPLIT_NAMES per row, the same rule as always: test tail first, then the
    hashed validation rows."""
    split = np.zeros(row_index.shape, dtype=np.uint8)
    split[pmod_xxhash64(row_index, rule.seed, 1_000_000) < rule.val_threshold] = 1
    split[row_index >= rule.test_start_row] = 2
    return split


def _write_parquet(rule: SplitRule, split: str, name: str, row_index: np.ndarray,
                   columns: np.ndarray) -> dict[str, int]:
    """One file per chunk and split (``columns``: label then features, one row each),
    written under a temporary name then moved, so a retried or speculative task never
    leaves half a file under the final name. Returns ``{file name: row groups}``."""
    import uuid

    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = [pa.array(row_index)] + [pa.array(np.ascontiguousarray(c)) for c in columns]
    table = pa.Table.from_arrays(arrays, names=["row_index", LABEL, *rule.features])
    fs, directory = _filesystem(f"{rule.output_uri}/{split}")
    fs.create_dir(directory, recursive=True)
    final = f"{directory}/{name}.parquet"
    tmp = f"{directory}/.{name}.{uuid.uuid4().hex}.tmp"
    # equal row groups (not full ones and a short last one): ranks shard row groups i % N
    groups = max(1, -(-len(row_index) // rule.rows_per_group))
    with fs.open_output_stream(tmp) as out:
        # no dictionary pages: measured floats never repeat enough, and trying costs
        # 10x the rest of the write (356 vs 32 ms CPU for 134k rows, pyarrow 14)
        pq.write_table(table, out, row_group_size=max(1, -(-len(row_index) // groups)),
                       use_dictionary=False)
    fs.move(tmp, final)
    return {f"{name}.parquet": groups}


def _where(chunk: Chunk, row: int, message: str) -> str:
    """``file:line: message`` (the line counted from the chunk's first line)."""
    from hepspark.data import storage

    source = storage.local_path(chunk.source) if chunk.source.startswith("file:") else chunk.source
    return f"{source}:{chunk.first_line + row - chunk.first_row}: {message}"


def chunk_verdicts(chunk: Chunk) -> list[dict]:
    """Every line of the chunk as the converter judges it (for ``row_verdicts``)."""
    data = _read(chunk.uri, chunk.start, chunk.end)
    parsed: ParsedChunk = parse_chunk(data, chunk.first_row)
    errors = dict(parsed.bad)
    good = dict(zip(parsed.row_index.tolist(), parsed.values.tolist()))
    verdicts = []
    for row in range(chunk.first_row, chunk.first_row + parsed.lines):
        values = good.get(row)
        verdicts.append({
            "file": chunk.source, "line": chunk.first_line + row - chunk.first_row,
            "row_index": row, "bad": values is None, "error": errors.get(row),
            **{name: (None if values is None else values[i]) for i, name in enumerate(COLUMNS)},
        })
    return verdicts

