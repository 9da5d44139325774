"""Training engines behind one small interface (:mod:`hepspark.backends.base`)."""
from hepspark.backends.base import BACKENDS, Backend, EpochRecord, TrainResult, get_backend

__all__ = ["BACKENDS", "Backend", "EpochRecord", "TrainResult", "get_backend"]
