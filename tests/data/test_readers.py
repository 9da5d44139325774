"""Petastorm-backed readers: full epochs, shards, standardization, tf.data."""
from __future__ import annotations

import numpy as np
import pytest

from hepspark.data.higgs_schema import FEATURES, LOW_LEVEL_FEATURES
from hepspark.data.readers import EpochRowCountError, HiggsDataset, make_tf_dataset


def test_epoch_delivers_every_row_standardized(higgs_dataset):
    ds = HiggsDataset(higgs_dataset)
    assert ds.features == list(FEATURES)
    batches = list(ds.iter_batches("train", batch_size=1000, shuffle=True, seed=3))
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    assert len(y) == ds.rows("train")
    assert all(len(b[1]) == 1000 for b in batches[:-1])
    np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(x.std(0), 1.0, atol=1e-3)
    assert set(np.unique(y)) == {0.0, 1.0}


def test_shuffle_is_seeded_and_mixes_rows(higgs_dataset):
    ds = HiggsDataset(higgs_dataset)
    first = lambda seed: next(ds.iter_batches("train", 500, shuffle=True, seed=seed))[0]  # noqa: E731
    np.testing.assert_array_equal(first(1), first(1))
    assert not np.array_equal(first(1), first(2))
    x_plain, _ = ds.load("train")
    assert not np.array_equal(first(1), x_plain[:500])


def test_shards_partition_the_split(higgs_dataset):
    ds = HiggsDataset(higgs_dataset)
    assert len(ds.row_group_sizes("train")) >= 2, "fixture must have several row groups"
    seen = []
    for shard in range(2):
        rows = 0
        for x, _ in ds.iter_batches("train", 256, shard=shard, num_shards=2, standardize=False):
            rows += len(x)
            seen.append(x)
        assert rows == ds.shard_rows("train", shard, 2)
    allx = np.concatenate(seen)
    assert len(allx) == ds.rows("train")
    x_all, _ = ds.load("train", standardize=False)
    assert len(np.unique(allx[:, 0])) == len(np.unique(x_all[:, 0]))
    with pytest.raises(ValueError, match="row groups, fewer than"):
        ds.shard_rows("train", 0, 10_000)


def test_feature_subset_and_load(higgs_dataset):
    ds = HiggsDataset(higgs_dataset, features="low")
    x, y = ds.load("test")
    assert x.shape == (ds.rows("test"), len(LOW_LEVEL_FEATURES))
    assert len(y) == ds.rows("test")


def test_row_count_check_catches_a_short_epoch(higgs_dataset):
    ds = HiggsDataset(higgs_dataset)
    ds._row_groups["train"] = [s + 1 for s in ds.row_group_sizes("train")]  # lie about size
    with pytest.raises(EpochRowCountError, match="delivered"):
        for _ in ds.iter_batches("train", 1000):
            pass


def test_tf_dataset_repeats_epochs(higgs_dataset):
    ds = HiggsDataset(higgs_dataset, features="high")
    tfds = make_tf_dataset(ds, "val", 512, shuffle=True, seed=0)
    for _ in range(2):
        rows = sum(int(y.shape[0]) for _, y in tfds)
        assert rows == ds.rows("val")


def test_bad_arguments(higgs_dataset):
    ds = HiggsDataset(higgs_dataset)
    with pytest.raises(ValueError, match="split must be one of"):
        ds.rows("training")
    with pytest.raises(ValueError, match="batch_size"):
        next(ds.iter_batches("train", 0))
    with pytest.raises(ValueError, match="reader_pool"):
        next(ds.iter_batches("train", 10, reader_pool="fork"))


def test_the_pyarrow_reader_deals_the_same_shards_as_petastorm(higgs_dataset):
    """The torch engine's ranks read with pyarrow (no Petastorm): the same rows per shard,
    row group i to shard i % N, shuffled by seed, standardized the same way."""
    ds = HiggsDataset(higgs_dataset)

    def shard(reader, index, seed=1):
        batches = list(ds.iter_batches("train", 256, shuffle=True, seed=seed, shard=index,
                                       num_shards=2, reader=reader))
        return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])

    for index in range(2):
        x_arrow, y_arrow = shard("pyarrow", index)
        x_peta, y_peta = shard("petastorm", index)
        assert len(y_arrow) == ds.shard_rows("train", index, 2) == len(y_peta)
        # the same rows (order differs with the shuffle), standardized alike
        np.testing.assert_allclose(np.sort(x_arrow[:, 0]), np.sort(x_peta[:, 0]), rtol=1e-6)
        assert y_arrow.sum() == y_peta.sum()
    again, _ = shard("pyarrow", 0)
    other, _ = shard("pyarrow", 0, seed=2)
    np.testing.assert_array_equal(again, shard("pyarrow", 0)[0])  # seeded
    assert not np.array_equal(again, other)
    with pytest.raises(ValueError, match="reader must be one of"):
        next(ds.iter_batches("train", 256, reader="arrow"))
