"""Small HIGGS samples train well by default (issue #17 part 6): the batch size, epochs
and early stopping come from the training-set size, explicit flags and --config win, and
on a few thousand events the result matches scikit-learn's MLPClassifier of the same shape."""
from __future__ import annotations

import pytest

from hepspark.cli import build_parser
from hepspark.cli.train import higgs_config_from_args
from hepspark.config import HIGGS_DEFAULTS, train_defaults

EVENTS = 8000  # train ~6,100, val ~900, test 1,000


@pytest.fixture(scope="module")
def small_dataset(spark, tmp_path_factory) -> str:
    from hepspark.data.higgs_convert import ConvertConfig, convert_higgs
    from hepspark.data.higgs_csv import write_higgs_csv

    root = tmp_path_factory.mktemp("small_higgs")
    csv, out = str(root / "higgs.csv"), str(root / "dataset")
    write_higgs_csv(csv, EVENTS, seed=11, progress=lambda _: None)
    convert_higgs(spark, ConvertConfig(input=csv, output=out, test_rows=1000, val_fraction=0.13,
                                       row_group_size_mb=1), progress=lambda _: None)
    return out


@pytest.mark.parametrize(
    ("train_rows", "batch_size"), [(1_000, 32), (3_000, 32), (25_000, 256), (99_999, 512)]
)
def test_small_samples_get_small_batches_and_early_stopping(train_rows, batch_size):
    defaults = train_defaults("higgs", train_rows=train_rows)
    assert defaults["batch_size"] == batch_size
    assert defaults["early_stopping_patience"] == 10 and defaults["epochs"] == 100


@pytest.mark.parametrize("train_rows", [None, 100_000, 10_500_000])
def test_large_or_unknown_samples_keep_the_papers_defaults(train_rows):
    assert train_defaults("higgs", train_rows=train_rows) == HIGGS_DEFAULTS


def test_the_cli_chooses_from_the_dataset_size_and_explicit_values_win(small_dataset, tmp_path):
    parse = build_parser().parse_args
    lines: list[str] = []
    chosen = higgs_config_from_args(parse(["train", "higgs", "--data", small_dataset]),
                                    small_dataset, progress=lines.append)
    assert (chosen.batch_size, chosen.epochs, chosen.early_stopping_patience) == (64, 100, 10)
    [line] = lines
    assert "defaults for 6,0" in line and "batch 64" in line and "up to 100 epochs" in line
    assert "early stopping after 10 epochs" in line and "best weights kept" in line

    lines.clear()
    flags = ["--batch-size", "1000", "--epochs", "5", "--early-stopping-patience", "0"]
    given = higgs_config_from_args(parse(["train", "higgs", "--data", small_dataset, *flags]),
                                   small_dataset, progress=lines.append)
    assert (given.batch_size, given.epochs, given.early_stopping_patience) == (1000, 5, None)
    assert "as given" in lines[0]

    lines.clear()
    higgs_config_from_args(parse(["train", "higgs", "--data", small_dataset,
                                  "--early-stopping-patience", "0"]),
                           small_dataset, progress=lines.append)
    assert "batch 64, 100 epochs (" in lines[0]  # all of them: no early stopping

    config = tmp_path / "run.yaml"
    config.write_text("batch_size: 64\n")
    lines.clear()
    mixed = higgs_config_from_args(
        parse(["train", "higgs", "--data", small_dataset, "--config", str(config),
               "--epochs", "7"]), small_dataset, progress=lines.append)
    assert (mixed.batch_size, mixed.epochs, mixed.early_stopping_patience) == (64, 7, 10)
    assert "batch" not in lines[0] and "up to" not in lines[0]
    assert "early stopping after 10 epochs" in lines[0]


def test_a_few_thousand_events_train_at_least_as_well_as_sklearns_mlp(small_dataset):
    """Same split and shape (3x300 tanh); ours with the size-based defaults."""
    from sklearn.metrics import roc_auc_score
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    from hepspark.data.readers import HiggsDataset
    from hepspark.tracking import Tracker
    from hepspark.train import train_higgs

    config = higgs_config_from_args(build_parser().parse_args(
        ["train", "higgs", "--data", small_dataset]), small_dataset)
    outcome = train_higgs(config, Tracker(enabled=False), progress=lambda _: None)
    ours = outcome.test_metrics["test_auc"]

    dataset = HiggsDataset(small_dataset)
    x_train, y_train = dataset.load("train")  # standardized with the train split's stats
    x_test, y_test = dataset.load("test")
    mlp = MLPClassifier(hidden_layer_sizes=(300, 300, 300), activation="tanh", random_state=0)
    with threadpool_limits(1):
        mlp.fit(x_train, y_train)
    theirs = roc_auc_score(y_test, mlp.predict_proba(x_test)[:, 1])
    # 1,000 test events: an AUC near 0.7 has a standard error of ~0.016 (Hanley-McNeil);
    # both models are scored on the same events, so their difference varies less, and
    # 0.02 is more than its standard error. Measured (shared 2-core machine): ours 0.733,
    # MLPClassifier 0.681, and the paper's defaults (batch 1000, 5 epochs, no early
    # stopping) 0.655, which fails here; at 4,000 events the MLP overfits (0.653) and
    # would no longer tell the two apart.
    assert ours >= theirs - 0.02, f"ours {ours:.4f}, MLPClassifier {theirs:.4f}"
