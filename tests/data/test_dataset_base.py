"""The shared pieces under both dataset kinds, without Spark: the Petastorm dataset base
(over a small hand-written Parquet split) and the converter skeleton's helpers."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pytest

from hepspark.data import storage
from hepspark.data.convert import (
    DatasetSummary,
    apply_bad_row_policy,
    check_convert_options,
    sha256_files,
    source_metadata,
)
from hepspark.data.dataset import EpochRowCountError, PetastormDataset, check_shard

ROWS_PER_GROUP = 10
GROUPS = 5


class PairDataset(PetastormDataset):
    """A third kind, as a new one would be added: two columns, no decoding."""

    format = "test-pairs"
    description = "a pair dataset"
    shuffle_buffer_min_rows = 16

    @property
    def columns(self) -> list[str]:
        return ["a", "b"]

    def decode_columns(self, columns):
        return np.asarray(columns["a"], np.int64), np.asarray(columns["b"], np.float32)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("pairs")
    (root / "train").mkdir()
    n = ROWS_PER_GROUP * GROUPS
    table = pa.table({"a": np.arange(n, dtype=np.int64), "b": np.arange(n, dtype=np.float32)})
    pq.write_table(table, root / "train" / "part-0.parquet", row_group_size=ROWS_PER_GROUP)
    meta = {"format": "test-pairs",
            "splits": {"train": {"rows": n, "path": "train"}, "test": {"rows": 0, "path": "test"}}}
    (root / storage.METADATA_FILE).write_text(json.dumps(meta))
    return str(root)


def test_base_splits_shards_and_epochs(pairs):
    ds = PairDataset(pairs)
    assert (ds.train_split, ds.validation_split, ds.test_split) == ("train", "val", "test")
    assert ds.split_rows() == {"train": 50, "test": 0}
    assert ds.row_group_sizes("train") == [ROWS_PER_GROUP] * GROUPS
    assert ds.shard_rows("train", 1, 2) == 2 * ROWS_PER_GROUP  # row groups 1 and 3
    with pytest.raises(ValueError, match="is empty"):
        ds.rows("test")
    seen = []
    for shard in range(2):
        batches = list(ds.iter_batches("train", 7, shuffle=True, seed=3, shard=shard,
                                       num_shards=2))
        assert all(len(a) == len(b) for a, b in batches)
        seen += [a for a, _ in batches]
    assert sorted(np.concatenate(seen).tolist()) == list(range(50))
    a, b = ds.read_table("train").column("a"), ds.read_table("train").column("b")
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy().astype(np.int64))


def test_base_checks_format_shards_and_row_counts(pairs):
    with pytest.raises(ValueError, match=r"is not a pair dataset \(format test-pairs\)"):
        type("Other", (PairDataset,), {"format": "other", "how_to_create": "; make one"})(pairs)
    with pytest.raises(ValueError, match="need 0 <= shard < num_shards"):
        check_shard(2, 2)
    ds = PairDataset(pairs)
    ds._row_groups["train"] = [ROWS_PER_GROUP + 1] * GROUPS  # lie about the footers
    with pytest.raises(EpochRowCountError, match="delivered 50 rows, expected 55"):
        list(ds.iter_batches("train", 8))
    assert len(list(ds.iter_batches("train", 8, max_batches=2))) == 2  # no check then


def test_convert_options_and_bad_row_policy():
    with pytest.raises(ValueError, match="on_bad_row must be 'fail' or 'skip'"):
        check_convert_options("ignore", 8)
    with pytest.raises(ValueError, match="row_group_size_mb must be >= 1"):
        check_convert_options("fail", 0)
    said = []
    apply_bad_row_policy(0, [], "fail", KeyError, "bad rows", said.append)
    with pytest.raises(LookupError, match=r"(?s)2 bad rows; first: x:1.*x:2.*--on-bad-row skip"):
        apply_bad_row_policy(2, ["x:1", "x:2"], "fail", LookupError, "bad rows", said.append)
    apply_bad_row_policy(2, ["x:1", "x:2"], "skip", LookupError, "bad rows", said.append)
    assert said == ["[convert] skipping 2 malformed row(s), first: x:1"]


def test_checksums_and_source(tmp_path):
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    first.write_bytes(b"hello ")
    second.write_bytes(b"world")
    expected = hashlib.sha256(b"hello world").hexdigest()
    assert sha256_files([str(first), "file://" + str(second)]) == expected
    assert sha256_files([str(first), "hdfs://nn/b.bin"]) is None
    source = source_metadata(["file://" + str(first)], 6, True, lines=1)
    assert source == {"paths": [str(first)], "bytes": 6, "lines": 1, "sha256":
                      hashlib.sha256(b"hello ").hexdigest()}
    assert source_metadata([str(first)], 6, False)["sha256"] is None


def test_summary_format_is_shared():
    @dataclass
    class Summary(DatasetSummary):
        row_unit = "events"

        def rate(self) -> str:
            return "fast"

    text = Summary("file:///d", {"train": 1234, "test": 5}, 1, ["f:3: bad"], 2_000_000,
                   1.0).format()
    assert text.splitlines() == [
        "dataset written: file:///d", "  train        1,234 events",
        "  test             5 events", "  bad rows skipped: 1", "    f:3: bad",
        "  1.0 s, 2.0 MB of input, fast"]
