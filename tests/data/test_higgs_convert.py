"""HIGGS CSV → Petastorm conversion on real Spark (local[2]) and real Parquet on disk."""
from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from hepspark.data.higgs_convert import BadInputError, ConvertConfig, convert_higgs
from hepspark.data.higgs_schema import FEATURES, HIGH_LEVEL_FEATURES
from hepspark.data.readers import HiggsDataset
from hepspark.data.storage import METADATA_FILE

QUIET = {"progress": lambda _: None}


def write_rows(path, rows: np.ndarray, style: str = "short", extra_lines=()) -> str:
    """Write rows (label first); ``extra_lines`` = [(line_number, text)] inserted verbatim."""
    fmt = "%.18e" if style == "uci" else "%.7g"
    lines = [",".join(fmt % v for v in row) for row in rows]
    for number, text in sorted(extra_lines):
        lines.insert(number - 1, text)
    data = ("\n".join(lines) + "\n").encode()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as handle:
        handle.write(data)
    return str(path)


def make_rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.5).astype(np.float64)
    features = rng.normal(loc=np.arange(28), scale=1 + np.arange(28) / 10, size=(n, 28))
    return np.column_stack([label, features])


def parquet_rows(dataset_dir: str, split: str) -> np.ndarray:
    table = pq.read_table(os.path.join(dataset_dir, split))
    return table.to_pandas().sort_values("row_index")


def test_roundtrip_values_splits_and_metadata(spark, tmp_path):
    rows = make_rows(2000)
    src = write_rows(tmp_path / "h.csv.gz", rows, style="uci")
    out = str(tmp_path / "ds")
    summary = convert_higgs(
        spark, ConvertConfig(input=src, output=out, test_rows=300, val_fraction=0.1), **QUIET
    )
    assert summary.rows["test"] == 300
    assert sum(summary.rows.values()) == 2000
    assert 100 < summary.rows["val"] < 300
    test = parquet_rows(out, "test")
    # UCI convention: the test set is the *last* rows of the file, in order.
    assert test["row_index"].tolist() == list(range(1700, 2000))
    np.testing.assert_allclose(test[list(FEATURES)].to_numpy(), rows[1700:, 1:], rtol=1e-6)
    np.testing.assert_array_equal(test["label"].to_numpy(), rows[1700:, 0])
    train = parquet_rows(out, "train")
    meta = json.load(open(os.path.join(out, METADATA_FILE)))
    train_rows = rows[train["row_index"].to_numpy(), 1:]
    np.testing.assert_allclose(meta["standardize"]["mean"], train_rows.mean(0), rtol=1e-5)
    np.testing.assert_allclose(meta["standardize"]["std"], train_rows.std(0), rtol=1e-4)
    assert meta["source"]["sha256"] and meta["source"]["lines"] == 2000
    assert meta["splits"]["train"]["rows"] == len(train)
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_a_small_sample_is_written_in_many_row_groups_so_every_rank_gets_a_shard(spark,
                                                                                tmp_path):
    from hepspark.data.demo import small_sample_row_group

    # 6,000 rows fit in one default (8 MB) row group: a 2-rank run had no second shard
    assert small_sample_row_group(6000) == 188 and small_sample_row_group(200_000) is None
    src = write_rows(tmp_path / "h.csv", make_rows(6000))
    out = str(tmp_path / "ds")
    convert_higgs(spark, ConvertConfig(input=src, output=out, rows_per_row_group=188), **QUIET)
    groups = HiggsDataset(out).row_group_sizes("train")
    assert len(groups) >= 16 and max(groups) <= 188
    default = str(tmp_path / "default")
    convert_higgs(spark, ConvertConfig(input=src, output=default), **QUIET)
    assert len(HiggsDataset(default).row_group_sizes("train")) <= 2  # too few for 16 ranks
    with pytest.raises(ValueError, match="rows_per_row_group must be >= 1"):
        ConvertConfig(input="a", output="b", rows_per_row_group=0)


def test_conversion_is_deterministic_and_accepts_both_number_styles(spark, tmp_path):
    rows = make_rows(500, seed=3)
    a = write_rows(tmp_path / "a.csv", rows, style="uci")
    b = write_rows(tmp_path / "b.csv", rows, style="short")
    for name, src in (("a", a), ("b", b)):
        convert_higgs(spark, ConvertConfig(input=src, output=str(tmp_path / name),
                                           test_rows=50), **QUIET)
    for split in ("train", "val", "test"):
        da, db = parquet_rows(str(tmp_path / "a"), split), parquet_rows(str(tmp_path / "b"), split)
        assert da["row_index"].tolist() == db["row_index"].tolist()
        np.testing.assert_allclose(da[list(FEATURES)], db[list(FEATURES)], rtol=1e-6)


def test_glob_of_files_keeps_file_order_and_line_numbers(spark, tmp_path):
    rows = make_rows(300, seed=5)
    write_rows(tmp_path / "part-1.csv", rows[:200])
    write_rows(tmp_path / "part-2.csv", rows[200:], extra_lines=[(40, "1,2,3")])
    with pytest.raises(BadInputError, match=r"part-2\.csv:40: expected 29"):
        convert_higgs(spark, ConvertConfig(input=str(tmp_path / "part-*.csv"),
                                           output=str(tmp_path / "ds"), test_rows=30), **QUIET)
    summary = convert_higgs(
        spark,
        ConvertConfig(input=str(tmp_path / "part-*.csv"), output=str(tmp_path / "ds"),
                      test_rows=30, on_bad_row="skip"),
        **QUIET,
    )
    assert summary.bad_rows == 1 and sum(summary.rows.values()) == 300
    test = parquet_rows(str(tmp_path / "ds"), "test")
    np.testing.assert_allclose(test[list(FEATURES)].to_numpy(), rows[-30:, 1:], rtol=1e-6)


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("1,2,3", r"expected 29 comma-separated fields, found 3"),
        ("1," + ",".join(["0.5"] * 27) + ",abc", r"field 29 \(m_wwbb\): not a number: 'abc'"),
        ("0," + ",".join(["0.5"] * 4) + ",nan," + ",".join(["1"] * 23), r"field 6 \(missing_energy_phi\): nan is not finite"),
        ("0," + ",".join(["inf"] + ["1"] * 27), r"field 2 \(lepton_pT\): inf is not finite"),
        ("2," + ",".join(["1"] * 28), r"field 1 \(label\): must be 0 or 1, found 2"),
        ("", r"expected 29 comma-separated fields, found 1"),
    ],
)
def test_bad_rows_fail_naming_file_line_and_field(spark, tmp_path, bad_line, message):
    src = write_rows(tmp_path / "bad.csv", make_rows(50), extra_lines=[(7, bad_line)])
    with pytest.raises(BadInputError, match=r"bad\.csv:7: " + message):
        convert_higgs(spark, ConvertConfig(input=src, output=str(tmp_path / "ds"),
                                           test_rows=5), **QUIET)
    assert not os.path.exists(tmp_path / "ds")
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_skip_mode_counts_bad_rows(spark, tmp_path):
    bad = [(3, "x,y"), (10, "1," + ",".join(["nan"] * 28)), (20, "5," + ",".join(["1"] * 28))]
    src = write_rows(tmp_path / "bad.csv", make_rows(100), extra_lines=bad)
    summary = convert_higgs(spark, ConvertConfig(input=src, output=str(tmp_path / "ds"),
                                                 test_rows=10, on_bad_row="skip"), **QUIET)
    assert summary.bad_rows == 3
    assert sum(summary.rows.values()) == 100
    assert summary.bad_row_examples[0].endswith(":3: expected 29 comma-separated fields, found 2")


def test_missing_and_empty_inputs_are_clear_errors(spark, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        convert_higgs(spark, ConvertConfig(input=str(tmp_path / "nope.csv"),
                                           output=str(tmp_path / "ds")), **QUIET)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(BadInputError, match="empty"):
        convert_higgs(spark, ConvertConfig(input=str(tmp_path / "empty.csv"),
                                           output=str(tmp_path / "ds")), **QUIET)


def test_existing_dataset_is_never_lost(spark, tmp_path):
    good = write_rows(tmp_path / "good.csv", make_rows(200))
    out = str(tmp_path / "ds")
    convert_higgs(spark, ConvertConfig(input=good, output=out, test_rows=20), **QUIET)
    before = json.load(open(os.path.join(out, METADATA_FILE)))
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert_higgs(spark, ConvertConfig(input=good, output=out, test_rows=20), **QUIET)
    bad = write_rows(tmp_path / "bad.csv", make_rows(200), extra_lines=[(50, "1,2")])
    with pytest.raises(BadInputError):
        convert_higgs(spark, ConvertConfig(input=bad, output=out, test_rows=20,
                                           overwrite=True), **QUIET)
    assert json.load(open(os.path.join(out, METADATA_FILE))) == before
    assert HiggsDataset(out).rows("test") == 20
    convert_higgs(spark, ConvertConfig(input=good, output=out, test_rows=40, overwrite=True),
                  **QUIET)
    assert HiggsDataset(out).rows("test") == 40
    assert sorted(os.listdir(tmp_path)) == ["bad.csv", "ds", "good.csv"]


def test_feature_subset_is_stored(spark, tmp_path):
    src = write_rows(tmp_path / "h.csv", make_rows(100))
    out = str(tmp_path / "ds")
    convert_higgs(spark, ConvertConfig(input=src, output=out, test_rows=10, features="high"),
                  **QUIET)
    assert HiggsDataset(out).features == list(HIGH_LEVEL_FEATURES)
    with pytest.raises(ValueError, match="convert with --features all"):
        HiggsDataset(out, features="low")


def test_incomplete_dataset_is_refused(tmp_path):
    (tmp_path / "half").mkdir()
    with pytest.raises(FileNotFoundError, match="interrupted conversion"):
        HiggsDataset(str(tmp_path / "half"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        HiggsDataset(str(tmp_path / "none"))


def test_config_validation():
    with pytest.raises(ValueError, match="on_bad_row"):
        ConvertConfig(input="a", output="b", on_bad_row="ignore")
    with pytest.raises(ValueError, match="either test_rows or test_fraction"):
        ConvertConfig(input="a", output="b", test_rows=5, test_fraction=0.1)
    with pytest.raises(ValueError, match="features"):
        ConvertConfig(input="a", output="b", features="mid")


def test_a_truncated_gz_input_is_one_line_from_the_cli(spark, higgs_csv, tmp_path, capsys):
    """The executor's EOFException (Py4JJavaError) used to escape as a bare traceback."""
    from hepspark.cli import main

    data = open(higgs_csv, "rb").read()
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(data[: len(data) // 2])  # as a copy cut short by a full disk
    out = tmp_path / "ds"
    code = main(["convert", "higgs", "--input", str(truncated), "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"hepspark: error: input {truncated}: truncated or corrupt "
                          "compressed file"), err
    assert not out.exists()


def test_multi_member_gz_in_many_streamed_chunks(spark, tmp_path, monkeypatch):
    """A .gz of several members (as `cat a.gz b.gz`), inflated into many small chunks that
    are parsed while the stream goes on: exact line numbers, test split and progress."""
    from hepspark.data import higgs_convert

    monkeypatch.setattr(higgs_convert, "MIN_CHUNK_BYTES", 16384)
    monkeypatch.setattr(higgs_convert, "MAX_CHUNK_BYTES", 16384)
    rows = make_rows(3000, seed=9)
    lines = [",".join(f"{v:.7g}" for v in row) for row in rows]
    lines.insert(2499, "1,2")  # line 2500, in the third member
    members = [lines[:1000], lines[1000:2000], lines[2000:]]
    src = tmp_path / "multi.csv.gz"
    src.write_bytes(b"".join(gzip.compress(("\n".join(m) + "\n").encode()) for m in members))
    with pytest.raises(BadInputError, match=r"multi\.csv\.gz:2500: expected 29"):
        convert_higgs(spark, ConvertConfig(input=str(src), output=str(tmp_path / "ds"),
                                           test_rows=400), **QUIET)
    said = []
    summary = convert_higgs(spark, ConvertConfig(input=str(src), output=str(tmp_path / "ds"),
                                                 test_rows=400, on_bad_row="skip"),
                            progress=said.append)
    assert summary.bad_rows == 1 and sum(summary.rows.values()) == 3000
    counted = next(line.split() for line in said if " lines in " in line)
    assert counted[1:3] == ["3,001", "lines"] and int(counted[4]) > 8  # many chunks
    test = parquet_rows(str(tmp_path / "ds"), "test")
    assert test["row_index"].tolist() == list(range(2601, 3001))  # the last 400 lines
    np.testing.assert_allclose(test[list(FEATURES)].to_numpy(), rows[-400:, 1:], rtol=1e-6)
    assert HiggsDataset(str(tmp_path / "ds")).rows("test") == 400
    inflated = [line for line in said if line.startswith("[inflate]")]
    assert inflated and "done in" in inflated[-1], said
    size_mb = f"{src.stat().st_size / 1e6:,.0f}/{src.stat().st_size / 1e6:,.0f} MB"
    assert inflated[-1].startswith(f"[inflate] {size_mb}"), inflated
