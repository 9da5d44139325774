"""The model zoo: engine-neutral configs (:mod:`.config`) and one builder per engine."""
from hepspark.models.config import DenseNetConfig, higgs_dnn

__all__ = ["DenseNetConfig", "higgs_dnn"]
