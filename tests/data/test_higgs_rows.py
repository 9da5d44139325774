"""The chunk parser of ``convert higgs`` (issue #17): fast Arrow path == exact path, Spark's
own cast and hash reproduced, moments merged exactly, line numbers across many chunks."""
from __future__ import annotations

import gzip
import json
import os
import random

import numpy as np
import pytest

from hepspark.data import higgs_convert
from hepspark.data.higgs_convert import BadInputError, ConvertConfig, convert_higgs, row_verdicts
from hepspark.data.higgs_rows import count_lines, parse_chunk, spark_double
from hepspark.data.higgs_schema import COLUMNS
from hepspark.data.moments import Moments
from hepspark.data.spark_hash import pmod_xxhash64
from hepspark.data.storage import METADATA_FILE

QUIET = {"progress": lambda _: None}
ODD_VALID = ["-0", "+0.5", ".5", "5.", "1E+05", " 2.5 ", "\t3", "7\t", "1e-46", "1.e5",
             "0" * 30 + "1", "-" + "9" * 60 + "e-60"]
ALLOWED = "0123456789eE.+- \t"


def random_line(rng: random.Random, odd: float) -> str:
    fields = [rng.choice(["0", "1", "1.000000000000000000e+00", "0.0"])]
    for _ in range(len(COLUMNS) - 1):
        roll = rng.random()
        if roll < odd:
            fields.append(rng.choice(ODD_VALID))
        elif roll < 2 * odd:  # anything made of the allowed characters
            fields.append("".join(rng.choice(ALLOWED) for _ in range(rng.randrange(0, 6))))
        else:
            fields.append(rng.choice(["%.18e", "%.7g", "%r"]) % rng.gauss(0, 3))
    return ",".join(fields)


@pytest.mark.parametrize("odd", [0.0, 0.01, 0.2])
def test_fast_and_exact_paths_agree(odd):
    rng = random.Random(17)
    for case in range(20):
        ending = rng.choice(["\n", "\r\n"])
        data = ending.join(random_line(rng, odd) for _ in range(60)).encode()
        data += ending.encode() if case % 2 else b""
        fast = parse_chunk(data, first_row=100)
        exact = parse_chunk(data, first_row=100, allow_fast=False)
        assert fast.lines == exact.lines == count_lines(data) == 60
        np.testing.assert_array_equal(fast.row_index, exact.row_index)
        np.testing.assert_array_equal(fast.values, exact.values)
        assert fast.bad == exact.bad


def test_fast_path_over_many_arrow_blocks():
    # Arrow's reader cuts its input into 1 MB blocks: a chunk of several MB is read as
    # several, which the fast path stitches back in order.
    rng = random.Random(5)
    data = ("\n".join(random_line(rng, 0.0) for _ in range(12_000)) + "\n").encode()
    assert len(data) > 3 << 20
    fast = parse_chunk(data, first_row=7, lines=12_000)
    exact = parse_chunk(data, first_row=7, allow_fast=False)
    assert not fast.bad and fast.lines == 12_000
    np.testing.assert_array_equal(fast.row_index, exact.row_index)
    np.testing.assert_array_equal(fast.values, exact.values)


def test_count_lines_matches_splitlines():
    for data in [b"", b"a", b"a\n", b"a\r\nb", b"a\rb\r", b"\n\n", b"a\r\n\r\nb\n"]:
        assert count_lines(data) == len(data.splitlines()), data


def test_spark_cast_and_hash_are_reproduced(spark):
    from pyspark.sql import functions as F

    tokens = ["", " ", "abc", "NaN", "nan", " INF ", "+Inf", "-infinity", "Infinity", "1.0d",
              "2f", "0x1p3", "-0x.8P1f", "1e999", "\x00", "1\x00", "\x0b1", "\u0663", "\uff11",
              "\xa01", "\t3", "1e", "+.5", "1 e5", "Infinityd", "0X1p1d", "5."]
    got = spark.createDataFrame([(t,) for t in tokens], "t string").select(
        "t", F.col("t").cast("double").alias("d")).collect()
    for row in got:
        ours = spark_double(row["t"])
        if row["d"] is None or ours is None:
            assert ours is None and row["d"] is None, (repr(row["t"]), ours, row["d"])
        else:
            assert ours == row["d"] or (ours != ours and row["d"] != row["d"]), repr(row["t"])
    hashed = spark.range(0, 3000).select(
        "id", F.pmod(F.xxhash64(F.col("id"), F.lit(123)), F.lit(1_000_000)).alias("h")
    ).orderBy("id").collect()
    np.testing.assert_array_equal(pmod_xxhash64(np.arange(3000), 123, 1_000_000),
                                  [r["h"] for r in hashed])


def test_moments_merge_like_one_pass():
    rng = np.random.default_rng(0)
    data = rng.normal(loc=1e4, scale=0.5, size=(1000, 3)).astype(np.float32)
    merged = Moments.empty(3)
    for part in np.array_split(data, [0, 1, 17, 500, 999]):
        merged = merged.merge(Moments.of(part))
    assert merged.count == 1000
    np.testing.assert_allclose(merged.mean, data.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(merged.std, data.astype(np.float64).std(0), rtol=1e-9)


def make_text(n: int, seed: int, ending: str = "\n", bad: dict[int, str] | None = None) -> str:
    rng = random.Random(seed)
    lines = [random_line(rng, 0.0) for _ in range(n)]
    for number, text in (bad or {}).items():
        lines[number - 1] = text
    return ending.join(lines) + ending


@pytest.mark.parametrize("suffix", ["csv", "csv.gz"])
def test_many_chunks_keep_line_numbers_order_and_statistics(spark, tmp_path, monkeypatch,
                                                            suffix):
    monkeypatch.setattr(higgs_convert, "MIN_CHUNK_BYTES", 32768)  # ~16 chunks over both files
    bad = {2: "1,2,3", 377: "1," + ",".join(["0.5"] * 27) + ",abc"}
    texts = [make_text(500, seed=1, bad=bad), make_text(400, seed=2, ending="\r\n",
                                                        bad={400: "2," + ",".join(["1"] * 28)})]
    paths = []
    for index, text in enumerate(texts):
        path = tmp_path / f"part-{index}.{suffix}"
        opener = gzip.open if suffix.endswith(".gz") else open
        with opener(path, "wb") as handle:
            handle.write(text.encode())
        paths.append(str(path))
    verdicts = row_verdicts(spark, str(tmp_path / f"part-*.{suffix}"))
    assert [v["row_index"] for v in verdicts] == list(range(900))
    assert [(os.path.basename(v["file"]), v["line"]) for v in verdicts if v["bad"]] == [
        (f"part-0.{suffix}", 2), (f"part-0.{suffix}", 377), (f"part-1.{suffix}", 400)]
    assert verdicts[500]["line"] == 1 and verdicts[899]["line"] == 400
    with pytest.raises(BadInputError, match=rf"part-0\.{suffix}:2: expected 29"):
        convert_higgs(spark, ConvertConfig(input=str(tmp_path / f"part-*.{suffix}"),
                                           output=str(tmp_path / "ds"), test_rows=50), **QUIET)
    progress_seen = []
    summary = convert_higgs(
        spark, ConvertConfig(input=str(tmp_path / f"part-*.{suffix}"),
                             output=str(tmp_path / "ds"), test_rows=50, on_bad_row="skip"),
        on_bytes=lambda done, total: progress_seen.append((done, total)), **QUIET)
    assert summary.bad_rows == 3 and sum(summary.rows.values()) == 897
    assert summary.bad_row_examples[0].endswith(f"part-0.{suffix}:2: expected 29 "
                                                "comma-separated fields, found 3")
    assert progress_seen and progress_seen[-1][0] == progress_seen[-1][1]
    import pyarrow.parquet as pq

    test = pq.read_table(tmp_path / "ds" / "test").to_pandas().sort_values("row_index")
    assert test["row_index"].tolist() == [r for r in range(850, 900) if r != 899]
    train = pq.read_table(tmp_path / "ds" / "train").to_pandas()
    expected = np.array([[v[c] for c in COLUMNS[1:]] for v in verdicts
                         if not v["bad"] and v["row_index"] in set(train["row_index"])])
    meta = json.load(open(tmp_path / "ds" / METADATA_FILE))
    np.testing.assert_allclose(meta["standardize"]["mean"], expected.mean(0), rtol=1e-6)
    np.testing.assert_allclose(meta["standardize"]["std"], expected.std(0), rtol=1e-5)
    assert meta["source"]["lines"] == 900
    assert not (tmp_path / "ds" / "_chunks").exists()
