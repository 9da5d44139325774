"""Run configuration as data: one frozen dataclass per training run.

Built from CLI flags (or a YAML file) and logged verbatim to MLflow.

>>> cfg = TrainConfig(data="data/higgs", optimizer="adamax", epochs=3)
>>> cfg.to_params()["optimizer"]
'adamax'
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from hepspark.data.higgs_schema import feature_set
from hepspark.models.cnn import CnnConfig
from hepspark.models.config import DenseNetConfig

OPTIMIZERS = ("sgd", "adam", "adamax", "adadelta", "adagrad", "nadam", "rmsprop")
# How the kept weights are chosen: "val_auc" keeps the best validation AUC (and stops
# after early_stopping_patience epochs without gain); "loss_window" is the LArTPC rule
# of seed 001 (validation-loss minimum, then the best validation accuracy within +-5
# epochs of it; stops once the minimum is at <= 85% of the epochs run and 5 epochs old).
EPOCH_SELECTIONS = ("val_auc", "loss_window")

# Training defaults per kind of data: one table for the library and the CLI. HIGGS: the
# DNN on millions of rows; images: the seed protocols (000: jets, Nadam, up to 100 epochs
# with early stopping on validation AUC; 001: LArTPC, batch 20, the loss-window rule).
HIGGS_DEFAULTS: dict[str, Any] = {"optimizer": "adam", "epochs": 5, "batch_size": 1000,
                                  "early_stopping_patience": None, "epoch_selection": "val_auc"}
IMAGE_DEFAULTS: dict[str, Any] = {"optimizer": "nadam", "epochs": 100, "batch_size": 128,
                                  "early_stopping_patience": 10, "epoch_selection": "val_auc"}


# HIGGS samples smaller than this get size-based defaults. The paper's (batch 1000, 5
# epochs, no early stopping) make ~50k optimizer steps on its 10.5M rows but ~15 on a few
# thousand, far short of a converged model (scikit-learn's MLPClassifier of the same shape
# does better there). Below it: batches of ~1% of the rows (a power of 2, 32..512, so that
# an epoch is ~100 steps; batch 32 is the usual small-data choice) and up to 100 epochs
# with early stopping on validation AUC, best weights kept (the seed-000 protocol).
SMALL_SAMPLE_ROWS = 100_000
SMALL_SAMPLE_EPOCHS, SMALL_SAMPLE_PATIENCE = 100, 10
SMALL_BATCH_RANGE = (32, 512)


def train_defaults(
    dataset_kind: str, num_classes: int = 2, train_rows: int | None = None
) -> dict[str, Any]:
    """The training defaults for a dataset of ``dataset_kind`` (``higgs``, ``jets``,
    ``lartpc``, ``generic``) with ``num_classes`` classes; for ``higgs``, ``train_rows``
    (the train split's size, when known) picks the batch size, epochs and early stopping.

    >>> TrainConfig(data="data/lartpc", **train_defaults("lartpc", 5)).batch_size
    20
    >>> {k: train_defaults("higgs", train_rows=3000)[k]
    ...  for k in ("batch_size", "epochs", "early_stopping_patience")}
    {'batch_size': 32, 'epochs': 100, 'early_stopping_patience': 10}
    """
    if dataset_kind == "higgs":
        defaults = dict(HIGGS_DEFAULTS)
        if train_rows is not None and train_rows < SMALL_SAMPLE_ROWS:
            low, high = SMALL_BATCH_RANGE
            batch = 2 ** round(math.log2(max(train_rows, 1) / 100))
            defaults.update(batch_size=min(max(batch, low), high), epochs=SMALL_SAMPLE_EPOCHS,
                            early_stopping_patience=SMALL_SAMPLE_PATIENCE)
        return defaults
    defaults = dict(IMAGE_DEFAULTS)
    if dataset_kind == "lartpc":
        defaults["batch_size"] = 20
    if num_classes != 2:  # no AUC to select on: the loss-window rule of seed 001
        defaults.update(epoch_selection="loss_window", early_stopping_patience=None)
    return defaults


@dataclass(frozen=True)
class TrainConfig:
    data: str
    features: str = "all"
    backend: str = "keras"
    optimizer: str = "adam"
    learning_rate: float | None = None  # None: the optimizer's own default
    batch_size: int = 1000
    epochs: int = 5
    seed: int = 42
    early_stopping_patience: int | None = None
    num_executors: int = 1  # Horovod ranks; BigDL uses the executors Spark gives it
    scale_learning_rate: bool = False  # multiply the rate by num_executors (Horovod)
    master: str | None = None  # Spark master; None: local[*] or what spark-submit set
    checkpoint_dir: str | None = None  # a checkpoint per epoch end goes here
    resume: bool = False  # continue from the last complete epoch in checkpoint_dir
    # with checkpoint_dir: resume when it holds a checkpoint, else start (restart launchers)
    resume_if_present: bool = False
    # identity of the run that owns checkpoint_dir (set by checkpoint.claim_checkpoint_dir)
    run_token: str | None = None
    epoch_selection: str = "val_auc"
    executor_wait_s: float = 300.0  # BigDL: how long training waits for the executors
    stall_timeout_s: float = 600.0  # Horovod: a rank stalled this long ends the job
    # Keras and Horovod: training steps per compiled call. The updates are the same; fewer
    # returns to Python between steps (and per-step callbacks run once per call) cut the
    # per-step overhead that a rank on one core pays out of its compute (issue #16)
    steps_per_execution: int = 8
    # validation quality whose time to reach is logged (val AUC; val accuracy for K-class
    # images); None: the kind's default (hepspark.kinds)
    target_quality: float | None = None
    model: DenseNetConfig | CnnConfig = field(default_factory=DenseNetConfig)

    def __post_init__(self) -> None:
        feature_set(self.features)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ValueError(
                f"early_stopping_patience must be >= 1, got {self.early_stopping_patience}"
            )
        if self.num_executors < 1:
            raise ValueError(f"num_executors must be >= 1, got {self.num_executors}")
        if self.steps_per_execution < 1:
            raise ValueError(f"steps_per_execution must be >= 1, got {self.steps_per_execution}")
        if self.epoch_selection not in EPOCH_SELECTIONS:
            raise ValueError(f"epoch_selection must be one of {EPOCH_SELECTIONS}, "
                             f"got {self.epoch_selection!r}")
        for name in ("executor_wait_s", "stall_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.target_quality is not None and not 0.0 < self.target_quality <= 1.0:
            raise ValueError(f"target_quality (--target-auc) must be in (0, 1], "
                             f"got {self.target_quality}")
        if self.resume and not self.checkpoint_dir:
            raise ValueError("resume needs checkpoint_dir (the directory to resume from)")
        if self.resume_if_present and not self.checkpoint_dir:
            raise ValueError("resume_if_present needs checkpoint_dir (--checkpoint-dir DIR)")

    @property
    def is_cnn(self) -> bool:
        """An image model (trained on an ImageDataset) rather than the HIGGS DNN."""
        return isinstance(self.model, CnnConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_params(self) -> dict[str, Any]:
        """Flat MLflow params (the model config prefixed ``model_``)."""
        params = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}
        params.update({f"model_{k}": v for k, v in self.model.to_dict().items()})
        return params

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        data = dict(data)
        model_fields = data.pop("model", {})
        if not isinstance(model_fields, dict):
            raise ValueError(f"model must be a mapping of model settings, got {model_fields!r}")
        is_dense = model_fields.get("family", "dense") == "dense"
        model_cls = DenseNetConfig if is_dense else CnnConfig
        for owner, values in ((cls, data), (model_cls, model_fields)):
            unknown = set(values) - {f.name for f in fields(owner)}
            if unknown:
                prefix = "model." if owner is model_cls else ""
                raise ValueError(f"unknown {owner.__name__} keys: "
                                 f"{sorted(prefix + k for k in unknown)}")
            _check_types(owner, values, "model." if owner is model_cls else "")
        return cls(model=model_cls(**model_fields), **data)

    def mismatches(self, other: "TrainConfig") -> list[str]:
        """Fields that make a checkpoint of ``other`` unusable for this run (everything
        that changes what is trained; epochs, placement and paths may differ)."""
        free = {"epochs", "master", "num_executors", "checkpoint_dir", "resume",
                "early_stopping_patience", "epoch_selection", "resume_if_present",
                "run_token", "executor_wait_s", "stall_timeout_s", "target_quality",
                "steps_per_execution"}
        mine, theirs = self.to_params(), other.to_params()
        return [f"{k}: checkpoint has {theirs.get(k)!r}, this run {mine[k]!r}"
                for k in sorted(mine) if k not in free and mine[k] != theirs.get(k)]

    def with_(self, **changes: Any) -> "TrainConfig":
        return replace(self, **changes)


# A field's annotation (a string under ``from __future__ import annotations``) -> the
# Python types a YAML value may have for it; ints are valid floats, bools are not ints.
_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
          "None": (type(None),)}


def _check_types(owner: type, values: dict[str, Any], prefix: str = "") -> None:
    """Refuse a value of the wrong type (from a YAML file) naming the field, before it
    fails as a bare TypeError deep in validation or training."""
    for f in fields(owner):
        if f.name not in values or f.name == "model":
            continue
        names = [t.strip() for t in str(f.type).split("|")]
        if not all(n in _TYPES for n in names):
            continue
        value = values[f.name]
        allowed = tuple(t for n in names for t in _TYPES[n])
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise ValueError(f"{prefix}{f.name} must be {' or '.join(names)}, "
                             f"got {value!r} ({type(value).__name__})")


# ---------------------------------------------------------------- engine settings
def _rank_at_epoch(name: str, value: str) -> tuple[int, int] | None:
    """``"RANK:EPOCH"`` (a test hook's value) as a pair; empty means unset."""
    if not value:
        return None
    try:
        rank, epoch = (int(v) for v in value.split(":"))
    except ValueError:
        raise ValueError(f"${name} must be RANK:EPOCH (e.g. 1:2), got {value!r}") from None
    return rank, epoch


@dataclass(frozen=True)
class EngineSettings:
    """The ``HEPSPARK_*`` environment variables the training engines obey, read once on
    the driver (:meth:`from_environ`) and passed down: ranks get them in their spec.

    >>> settings = EngineSettings.from_environ({"HEPSPARK_HOROVOD_THREADS": "1"})
    >>> settings.horovod_threads, settings.to_params()["fail_rank_at_epoch"]
    (1, None)
    """

    # compute threads per Horovod rank; None: the cores Spark offers, shared by the ranks
    horovod_threads: int | None = None
    # test and drill hooks: (rank, epoch) at whose start that rank fails (exits at once,
    # as a crashed executor would) or stalls (sleeps, alive, as on a hung filesystem)
    fail_rank_at_epoch: tuple[int, int] | None = None
    stall_rank_at_epoch: tuple[int, int] | None = None
    # the driver JVM's heap (a Spark size: "8g"); in local mode the executors' too (their
    # tasks run in it). None: hepspark.session.default_driver_memory(), a share of the RAM
    driver_memory: str | None = None

    HOROVOD_THREADS_ENV = "HEPSPARK_HOROVOD_THREADS"
    FAIL_RANK_ENV = "HEPSPARK_FAIL_RANK_AT_EPOCH"
    STALL_RANK_ENV = "HEPSPARK_STALL_RANK_AT_EPOCH"
    DRIVER_MEMORY_ENV = "HEPSPARK_DRIVER_MEMORY"

    def __post_init__(self) -> None:
        if self.horovod_threads is not None and self.horovod_threads < 1:
            raise ValueError(f"${self.HOROVOD_THREADS_ENV} must be >= 1, "
                             f"got {self.horovod_threads}")

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> "EngineSettings":
        """The settings in ``environ`` (default: this process's environment)."""
        import os  # local: this section is appended to the module (issue #15)

        env = os.environ if environ is None else environ
        threads = env.get(cls.HOROVOD_THREADS_ENV, "")
        try:
            horovod_threads = int(threads) if threads else None
        except ValueError:
            raise ValueError(f"${cls.HOROVOD_THREADS_ENV} must be an integer, "
                             f"got {threads!r}") from None
        return cls(
            horovod_threads=horovod_threads,
            fail_rank_at_epoch=_rank_at_epoch(cls.FAIL_RANK_ENV, env.get(cls.FAIL_RANK_ENV, "")),
            stall_rank_at_epoch=_rank_at_epoch(cls.STALL_RANK_ENV,
                                               env.get(cls.STALL_RANK_ENV, "")),
            driver_memory=cls.driver_memory_from_environ(env),
        )

    @classmethod
    def driver_memory_from_environ(cls, environ: dict[str, str] | None = None) -> str | None:
        """``$HEPSPARK_DRIVER_MEMORY`` alone (None when unset or empty): what every Spark
        session needs, converting or training, without the engines' other variables."""
        import os

        env = os.environ if environ is None else environ
        return env.get(cls.DRIVER_MEMORY_ENV) or None

    def to_params(self) -> dict[str, Any]:
        """Flat MLflow params ("RANK:EPOCH" strings for the hooks, None where unset)."""
        def pair(value: tuple[int, int] | None) -> str | None:
            return None if value is None else f"{value[0]}:{value[1]}"

        return {"horovod_threads": self.horovod_threads,
                "fail_rank_at_epoch": pair(self.fail_rank_at_epoch),
                "stall_rank_at_epoch": pair(self.stall_rank_at_epoch)}
