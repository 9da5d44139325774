"""Training engines behind one small interface (:mod:`hepspark.backends.base`), each
declaring what it supports (:mod:`hepspark.backends.capabilities`)."""
from hepspark.backends.base import BACKENDS, Backend, EpochRecord, TrainResult, get_backend
from hepspark.backends.capabilities import CAPABILITIES, Capabilities, check_supported

__all__ = ["BACKENDS", "CAPABILITIES", "Backend", "Capabilities", "EpochRecord", "TrainResult",
           "check_supported", "get_backend"]
