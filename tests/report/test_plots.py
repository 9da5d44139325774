"""Each plot writes a readable, non-empty PNG atomically and returns its path."""
import os

import numpy as np
import pytest
from matplotlib.image import imread

from hepspark import metrics
from hepspark.report import plots


@pytest.fixture(scope="module")
def sample():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    score = 1 / (1 + np.exp(-(rng.normal(size=y.size) + 1.5 * (2 * y - 1))))
    return y, score


def _assert_png(path, returned):
    assert returned == str(path)
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0  # something was drawn, not a blank canvas
    assert not os.path.exists(str(path) + ".tmp")


def test_plot_roc(tmp_path, sample):
    path = tmp_path / "roc.png"
    _assert_png(path, plots.plot_roc(metrics.roc_curve(*sample), path, "DNN", reference_auc=0.885))


def test_plot_rocs_creates_parent_folder(tmp_path, sample):
    y, score = sample
    rocs = {"DNN": metrics.roc_curve(y, score), "noisy": metrics.roc_curve(y, score ** 3)}
    path = tmp_path / "plots" / "rocs.png"
    _assert_png(path, plots.plot_rocs(rocs, path))
    with pytest.raises(ValueError, match="rocs is empty"):
        plots.plot_rocs({}, tmp_path / "none.png")


def test_plot_fom(tmp_path, sample):
    path = tmp_path / "fom.png"
    fom = metrics.fom_curve(*sample)
    _assert_png(path, plots.plot_fom(fom, path, metrics.discovery_significance(*sample)))


def test_plot_fom_without_a_defined_cut(tmp_path, sample):
    path = tmp_path / "fom_undefined.png"
    fom = metrics.fom_curve(*sample, min_background=1e9)
    _assert_png(path, plots.plot_fom(fom, path))


@pytest.mark.parametrize("log_y", [False, True])
def test_plot_score_histograms(tmp_path, sample, log_y):
    path = tmp_path / f"scores_{log_y}.png"
    _assert_png(path, plots.plot_score_histograms(metrics.score_histograms(*sample), path, log_y))


def test_plot_training_curves_with_missing_values(tmp_path):
    history = [
        {"epoch": 1, "train_loss": 0.66, "val_loss": 0.64, "val_auc": 0.71, "train_auc": 0.70},
        {"epoch": 2, "train_loss": 0.60, "val_loss": None, "val_auc": 0.77},
        {"train_loss": 0.57, "val_loss": 0.58, "val_auc": float("nan")},
        {"epoch": 4, "train_loss": 0.55},
    ]
    path = tmp_path / "training.png"
    _assert_png(path, plots.plot_training_curves(history, path))
    only_loss = tmp_path / "only_loss.png"
    _assert_png(only_loss, plots.plot_training_curves([{"train_loss": 0.7}], only_loss))
    with pytest.raises(ValueError, match="epochs is empty"):
        plots.plot_training_curves([], tmp_path / "empty.png")


def test_failed_write_leaves_no_files(tmp_path, sample, monkeypatch):
    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(plots.os, "replace", broken_replace)
    path = tmp_path / "roc.png"
    with pytest.raises(OSError, match="disk full"):
        plots.plot_roc(metrics.roc_curve(*sample), path)
    assert list(tmp_path.iterdir()) == []
