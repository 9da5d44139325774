"""Generated HIGGS CSV: UCI layout, deterministic across local and Spark engines."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from hepspark.data import higgs_csv
from hepspark.data.higgs_csv import write_higgs_csv


def test_uci_layout_and_determinism_local_vs_spark(spark, tmp_path, monkeypatch):
    monkeypatch.setattr(higgs_csv, "CHUNK_ROWS", 1000)  # several chunks from few rows
    local = tmp_path / "local.csv.gz"
    on_spark = tmp_path / "spark.csv.gz"
    write_higgs_csv(str(local), 3500, seed=11, progress=lambda _: None)
    write_higgs_csv(str(on_spark), 3500, seed=11, spark=spark, progress=lambda _: None)
    # the same events; the gzip members' bytes depend on the zlib build, and a printed digit
    # can differ once in a while: numpy's SIMD sin/cos/exp/log may differ by one ulp with the
    # arrays' memory alignment (seen once per few suite runs, never in isolation), which
    # rounds to another last digit when it straddles a rounding boundary
    text = gzip.decompress(local.read_bytes())
    other = gzip.decompress(on_spark.read_bytes()).decode().splitlines()
    lines = text.decode().splitlines()
    assert len(other) == len(lines)
    mine = np.array([[float(v) for v in line.split(",")] for line in lines])
    theirs = np.array([[float(v) for v in line.split(",")] for line in other])
    assert np.array_equal(mine[:, 0], theirs[:, 0])  # labels exactly
    np.testing.assert_allclose(theirs, mine, rtol=1e-6, atol=1e-6)
    assert len(lines) == 3500
    values = mine
    assert values.shape == (3500, 29)
    assert set(np.unique(values[:, 0])) == {0.0, 1.0}
    assert np.isfinite(values).all()
    other = tmp_path / "other.csv"
    write_higgs_csv(str(other), 3500, seed=12, progress=lambda _: None)
    assert other.read_text().splitlines() != lines


def test_refuses_to_overwrite_and_validates(tmp_path):
    out = tmp_path / "h.csv"
    write_higgs_csv(str(out), 10, progress=lambda _: None)
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_higgs_csv(str(out), 10, progress=lambda _: None)
    with pytest.raises(ValueError, match="rows"):
        write_higgs_csv(str(tmp_path / "x.csv"), 0)
    with pytest.raises(ValueError, match="signal_fraction"):
        write_higgs_csv(str(tmp_path / "x.csv"), 10, signal_fraction=1.5)
    # the file and the hidden note that hepspark wrote it (so --overwrite may replace it)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".h.csv.hepspark.json", "h.csv"]
    write_higgs_csv(str(out), 12, overwrite=True, progress=lambda _: None)
    assert len(out.read_text().splitlines()) == 12


def test_overwrite_never_replaces_a_file_hepspark_did_not_write(tmp_path):
    """The user's real HIGGS file at the output path survives --overwrite untouched."""
    from hepspark.data.storage import NotOursError

    real = tmp_path / "HIGGS.csv"
    real.write_text("1.0,0.8,0.1\n")
    with pytest.raises(NotOursError, match="HIGGS.csv is a file hepspark did not write"):
        write_higgs_csv(str(real), 10, overwrite=True, progress=lambda _: None)
    assert real.read_text() == "1.0,0.8,0.1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["HIGGS.csv"]
