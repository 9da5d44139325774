"""The LArTPC epoch-selection rule of seed 001 in the shared EpochBook."""
from __future__ import annotations

from hepspark.backends.base import EpochRecord
from hepspark.backends.epochs import EpochBook
from hepspark.config import TrainConfig
from hepspark.models.cnn import CnnConfig


def run(losses, accuracies, epochs=100):
    config = TrainConfig(data="x", epochs=epochs, epoch_selection="loss_window",
                         model=CnnConfig("basic_cnn", num_outputs=5))
    book = EpochBook(config, on_epoch_end=lambda r: None, get_weights=lambda: f"w{len(seen)}")
    seen = []
    for epoch, (loss, acc) in enumerate(zip(losses, accuracies), start=1):
        seen.append(epoch)
        record = EpochRecord(epoch, 1.0, 10, 0.5, val_loss=loss, val_accuracy=acc)
        if book.end_epoch(record):
            break
    return book, seen


def test_stops_when_the_minimum_is_old_enough_and_picks_the_best_accuracy_near_it():
    # Loss minimum at epoch 6; the accuracy peaks at epoch 9 (inside 6 +- 5).
    losses = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.55, 0.6, 0.58, 0.7, 0.8, 0.9, 1.0, 1.1]
    accs = [0.3, 0.4, 0.5, 0.55, 0.6, 0.62, 0.63, 0.61, 0.66, 0.6, 0.59, 0.58, 0.9, 0.9]
    book, seen = run(losses, accs)
    # Stop at epoch 11: 11 >= 6 + 5 and 6 <= 0.85 * 11; epochs 13-14 (accuracy 0.9) never run.
    assert seen[-1] == 11 and book.stopped_early
    assert book.selected_epoch == 9 and book.best_weights == "w9"
    assert book.loss_minimum_epoch() == 6
    assert min(book.window_weights) >= 1 and max(book.window_weights) == 11


def test_a_late_minimum_moves_the_window_and_frees_old_weights():
    losses = [1.0, 0.9, 0.8, 0.7, 0.5, 0.6, 0.7, 0.8, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    accs = [0.95, 0.5, 0.5, 0.5, 0.6, 0.5, 0.5, 0.5, 0.7, 0.8, 0.5, 0.5, 0.5, 0.5, 0.5]
    book, seen = run(losses, accs)
    # Minimum first at 5 (would stop at 10), then at 9: stop needs n >= 14 and 9 <= 0.85 n.
    assert book.loss_minimum_epoch() == 9 and seen[-1] == 14
    assert book.selected_epoch == 10  # epoch 1's 0.95 is outside 9 +- 5 and was freed
    assert min(book.window_weights) == 4


def test_without_a_rising_loss_training_runs_to_the_last_epoch():
    losses = [1.0 - 0.01 * i for i in range(20)]
    book, seen = run(losses, [0.5] * 20, epochs=20)
    assert seen[-1] == 20 and not book.stopped_early
    assert book.loss_minimum_epoch() == 20 and book.selected_epoch in range(15, 21)
