"""Image files → Petastorm on real local[2] Spark, and the ImageDataset reader."""
from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from hepspark.data import image_files, images_convert
from hepspark.data.image_dataset import ImageDataset, make_image_tf_dataset
from hepspark.data.image_files import ArrayNames, ImageFile, resolve_image_files, write_generated
from hepspark.data.images_convert import (
    BadImageError,
    ImageConvertConfig,
    assign_splits,
    convert_images,
)
from hepspark.data.readers import EpochRowCountError
from hepspark.data.storage import METADATA_FILE

QUIET = {"progress": lambda _: None}


def test_generated_files_are_identical_across_layouts_and_spark(spark, tmp_path, monkeypatch):
    monkeypatch.setattr(image_files, "CHUNK_ROWS", 1_000)  # several chunks, small and fast
    npz = str(tmp_path / "j.npz")
    h5 = str(tmp_path / "j.h5")
    shards = str(tmp_path / "jdir")
    write_generated("jets", npz, 2_500, seed=3, **QUIET)
    write_generated("jets", h5, 2_500, seed=3, spark=spark, **QUIET)  # chunks on executors
    write_generated("jets", shards, 2_500, seed=3, **QUIET)
    assert [os.path.basename(f) for f in resolve_image_files(shards)] == [
        "part-00000.npz", "part-00001.npz", "part-00002.npz"]
    reference = ImageFile(npz).read()
    for source in (h5, shards):
        parts = [ImageFile(f).read() for f in resolve_image_files(source)]
        for i in range(3):
            np.testing.assert_array_equal(np.concatenate([p[i] for p in parts]), reference[i])
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_generated("jets", npz, 10, seed=3, **QUIET)
    assert ImageFile(h5).image_shape == (33, 33, 2)


def test_split_assignment_is_stable_and_has_the_asked_fractions():
    rows = np.arange(200_000)
    split = assign_splits(rows, seed=1, val_fraction=0.1, test_fraction=0.2)
    np.testing.assert_array_equal(split[5000:6000], assign_splits(rows[5000:6000], 1, 0.1, 0.2))
    fractions = np.bincount(split) / len(rows)
    np.testing.assert_allclose(fractions, [0.7, 0.1, 0.2], atol=0.005)
    assert not np.array_equal(split, assign_splits(rows, 2, 0.1, 0.2))


def test_lartpc_roundtrip_splits_metadata_and_reader(spark, tmp_path, monkeypatch):
    monkeypatch.setattr(images_convert, "UNIT_ROWS", 256)  # several work units and files
    src = str(tmp_path / "l.h5")
    write_generated("lartpc", src, 600, seed=1, image_size=16, **QUIET)
    out = str(tmp_path / "ds")
    summary = convert_images(spark, ImageConvertConfig(
        src, out, "lartpc", val_fraction=0.2, test_fraction=0.3, row_group_size_mb=1), **QUIET)
    assert set(summary.rows) == {"train", "test_a", "test_b"}
    assert sum(summary.rows.values()) == 600
    meta = json.load(open(os.path.join(out, METADATA_FILE)))
    assert meta["class_names"] == ["electron", "gamma", "muon", "pion", "proton"]
    assert meta["image_shape"] == [16, 16, 1] and meta["validation_split"] == "test_a"

    ds = ImageDataset(out)
    x, y, w = ds.load("train")
    assert x.shape == (ds.rows("train"), 16, 16, 1) and x.dtype == np.float32
    assert np.bincount(y, minlength=5).tolist() == ds.class_counts("train")
    # Values survive exactly (up to the stored per-channel scale), row by row.
    images, labels, _ = ImageFile(src).read()
    index = pq.read_table(os.path.join(out, "train"), columns=["row_index"])["row_index"]
    np.testing.assert_allclose(x * ds.pixel_scale, images[index.to_numpy()], rtol=1e-6)
    np.testing.assert_array_equal(y, labels[index.to_numpy()])
    assert w.mean() == pytest.approx(1.0)

    # Streaming: every row once per epoch, shards partition the split.
    assert len(ds.row_group_sizes("train")) >= 2, "fixture must have several row groups"
    seen = [b[1] for b in ds.iter_batches("train", 64, shuffle=True, seed=2)]
    assert sum(len(b) for b in seen) == ds.rows("train")
    shard_rows = [sum(len(b[1]) for b in ds.iter_batches("train", 64, shard=s, num_shards=2))
                  for s in range(2)]
    assert sum(shard_rows) == ds.rows("train") and min(shard_rows) > 0
    ds._row_groups["train"] = [n + 1 for n in ds.row_group_sizes("train")]
    with pytest.raises(EpochRowCountError, match="delivered"):
        for _ in ds.iter_batches("train", 64):
            pass
    tfds = make_image_tf_dataset(ImageDataset(out), "test_a", 50, shuffle=True, seed=0)
    for _ in range(2):  # two epochs, both complete
        assert sum(int(b[1].shape[0]) for b in tfds) == ds.rows("test_a")


def write_h5(path, images, labels, weights=None, names=("images", "labels", "weights")):
    with h5py.File(path, "w") as h5:
        h5[names[0]] = images
        h5[names[1]] = labels
        if weights is not None:
            h5[names[2]] = weights
    return str(path)


def test_generic_npz_with_custom_names_and_no_weights(spark, tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((300, 8, 8)).astype(np.float32)  # [N, H, W]: one channel
    labels = rng.integers(0, 3, 300)
    src = str(tmp_path / "real.npz")
    np.savez(src, X=images, y=labels)
    out = str(tmp_path / "ds")
    config = ImageConvertConfig(src, out, "generic", images_key="X", labels_key="y",
                                weights_key=None)
    convert_images(spark, config, **QUIET)
    ds = ImageDataset(out)
    assert ds.image_shape == (8, 8, 1) and ds.num_classes == 3
    assert ds.class_names == ["0", "1", "2"]
    _, _, w = ds.load("test")
    assert (w == 1).all()
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert_images(spark, config, **QUIET)


def test_bad_inputs_are_named_and_nothing_is_published(spark, tmp_path):
    rng = np.random.default_rng(1)
    images = rng.random((100, 4, 4, 2)).astype(np.float32)
    labels = rng.integers(0, 2, 100)
    weights = np.ones(100, np.float32)
    images[17, 1, 1, 0] = np.nan
    labels[42] = 5
    weights[60] = -1.0
    src = write_h5(tmp_path / "bad.h5", images, labels, weights)
    out = str(tmp_path / "ds")
    with pytest.raises(BadImageError) as info:
        convert_images(spark, ImageConvertConfig(src, out, "jets"), **QUIET)
    message = str(info.value)
    assert "3 malformed" in message
    assert f"{src}: row 17: images: NaN or inf pixel" in message
    assert "row 42: labels: outside 0..1 (found 5)" in message
    assert "row 60: weights: negative (found -1.0)" in message
    assert not os.path.exists(out) and not any(p.name.startswith("ds.tmp") for p in tmp_path.iterdir())

    summary = convert_images(spark, ImageConvertConfig(src, out, "jets", on_bad_row="skip"),
                             **QUIET)
    assert summary.bad_rows == 3 and sum(summary.rows.values()) == 97

    with pytest.raises(FileNotFoundError, match="not found"):
        convert_images(spark, ImageConvertConfig(str(tmp_path / "none.h5"), out, "jets"), **QUIET)
    other = write_h5(tmp_path / "names.h5", images, labels, names=("pix", "lab", "w"))
    with pytest.raises(ValueError, match=r"no array named 'images'; it holds \['lab', 'pix'\]"):
        convert_images(spark, ImageConvertConfig(other, out, "jets"), **QUIET)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    write_h5(mixed / "a.h5", images, labels, weights)
    write_h5(mixed / "b.h5", images[:, :3], labels, weights)
    with pytest.raises(BadImageError, match="image shapes differ"):
        convert_images(spark, ImageConvertConfig(str(mixed), out, "jets", overwrite=True),
                       **QUIET)
    with pytest.raises(ValueError, match="must have shape"):
        ImageFile(write_h5(tmp_path / "short.h5", images, labels[:50]), ArrayNames(weights=None))


def test_root_ttree_of_fixed_size_arrays_converts_like_npz(spark, tmp_path):
    uproot = pytest.importorskip("uproot")
    from hepspark.data.images_convert import split_names

    rng = np.random.default_rng(4)
    data = {"jet_image": rng.random((240, 9, 9, 2)).astype(np.float32),
            "is_quenched": rng.integers(0, 2, 240).astype(np.int32),
            "w": rng.uniform(0.5, 2.0, 240).astype(np.float32)}
    src = str(tmp_path / "jets.root")
    with uproot.recreate(src) as handle:  # a real TTree (uproot's default is an RNTuple)
        tree = handle.mktree("jets", {k: (v.dtype, v.shape[1:]) for k, v in data.items()})
        tree.extend(data)
    assert ImageFile(src, ArrayNames("jet_image", "is_quenched", "w")).rows == 240
    out = str(tmp_path / "ds")
    convert_images(spark, ImageConvertConfig(src, out, "jets", images_key="jet_image",
                                             labels_key="is_quenched", weights_key="w"),
                   **QUIET)
    ds = ImageDataset(out)
    assert ds.image_shape == (9, 9, 2) and ds.num_classes == 2
    got = [ds.load(split) for split in split_names("jets")]
    # load() scales pixels per channel and weights per dataset; undo it to compare
    x = np.concatenate([g[0] for g in got]) * ds.pixel_scale
    y = np.concatenate([g[1] for g in got])
    w = np.concatenate([g[2] for g in got]) / ds.weight_scale
    assert len(x) == 240
    # every source row once, pixels, label and weight together (keyed by the pixel sum)
    order = np.argsort(x.reshape(240, -1).sum(1))
    source = np.argsort(data["jet_image"].reshape(240, -1).sum(1))
    np.testing.assert_allclose(x[order], data["jet_image"][source], rtol=1e-6)
    np.testing.assert_array_equal(y[order], data["is_quenched"][source])
    np.testing.assert_allclose(w[order], data["w"][source], rtol=1e-6)
    with pytest.raises(ValueError, match="no TTree"):
        with uproot.recreate(str(tmp_path / "empty.root")) as handle:
            handle["note"] = "not a tree"
        ImageFile(str(tmp_path / "empty.root"), ArrayNames("a", "b", "c"))


def test_generic_labels_must_be_small_class_indices(spark, tmp_path):
    # A label of 3e9 wrapped negative in int32; a particle code such as 1000010020 made
    # every executor count classes up to it (billion-entry arrays). Both are refused per row.
    rng = np.random.default_rng(2)
    images = rng.random((50, 4, 4)).astype(np.float32)
    labels = rng.integers(0, 3, 50).astype(np.int64)
    labels[7] = 3_000_000_000
    labels[11] = 1_000_010_020
    src = str(tmp_path / "codes.npz")
    np.savez(src, images=images, labels=labels)
    out = str(tmp_path / "ds")
    with pytest.raises(BadImageError) as info:
        convert_images(spark, ImageConvertConfig(src, out, "generic", weights_key=None),
                       **QUIET)
    message = str(info.value)
    assert message.startswith("2 malformed image row(s)")
    assert f"{src}: row 7: labels: outside 0..999" in message and "(found 3000000000)" in message
    assert f"{src}: row 11: labels: outside 0..999" in message
    assert not os.path.exists(out)
    summary = convert_images(spark, ImageConvertConfig(src, out, "generic", weights_key=None,
                                                       on_bad_row="skip"), **QUIET)
    assert summary.bad_rows == 2 and ImageDataset(out).num_classes == 3


def _corrupt_hdf5_chunk(path: str, chunk: int) -> None:
    """Overwrite the start of one compressed chunk of 'images' (its zlib header): the file
    opens and its header reads, the chunk's rows do not."""
    import h5py

    with h5py.File(path, "r") as h5:
        info = h5["images"].id.get_chunk_info(chunk)
    with open(path, "r+b") as handle:
        handle.seek(info.byte_offset)
        handle.write(b"\xff" * 16)


def _corrupt_root_basket(path: str, branch: str) -> None:
    """Overwrite the zlib header of the branch's first basket (behind its TKey and ROOT's
    9-byte compression header)."""
    import struct

    import uproot

    with uproot.open(path) as handle:
        tree = handle[next(k for k, c in handle.classnames().items() if c == "TTree")]
        seek = int(tree[branch].member("fBasketSeek")[0])
    with open(path, "r+b") as handle:
        handle.seek(seek + 16)
        (key_length,) = struct.unpack(">H", handle.read(2))
        handle.seek(seek + key_length + 9)
        handle.write(b"\xff" * 16)


@pytest.mark.parametrize("kind", ["hdf5", "root"])
def test_a_file_damaged_past_its_header_is_one_line_from_the_cli(spark, tmp_path, capsys,
                                                                 monkeypatch, kind):
    """The header reads on the driver; the damaged rows fail on an executor, which used to
    escape as a bare traceback (PythonException / Py4JJavaError)."""
    from hepspark.cli import main

    monkeypatch.setattr(images_convert, "UNIT_ROWS", 256)
    if kind == "hdf5":
        src = str(tmp_path / "jets.h5")
        write_generated("jets", src, 600, seed=5, **QUIET)
        _corrupt_hdf5_chunk(src, 1)
        flags = []
    else:
        uproot = pytest.importorskip("uproot")
        rng = np.random.default_rng(4)
        data = {"images": rng.random((300, 9, 9, 1)).astype(np.float32),
                "labels": rng.integers(0, 2, 300).astype(np.int32)}
        src = str(tmp_path / "jets.root")
        with uproot.recreate(src) as handle:
            tree = handle.mktree("jets", {k: (v.dtype, v.shape[1:]) for k, v in data.items()})
            tree.extend(data)
        _corrupt_root_basket(src, "images")
        flags = ["--no-weights"]
    assert ImageFile(src, ArrayNames(weights=None)).rows in (600, 300)  # the header is fine
    out = tmp_path / "ds"
    code = main(["convert", "images", "--input", src, "--output", str(out), "--kind", "jets",
                 *flags])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"hepspark: error: {src}: rows "), err
    assert "cannot be read" in err and "re-copy or regenerate it" in err
    assert not out.exists()
