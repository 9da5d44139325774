"""Engine-neutral model descriptions: plain frozen dataclasses that every backend builds.

One description, many engines: the Keras builder (:mod:`hepspark.models.keras_dense`)
and the BigDL/Horovod builders of later backends all read the same config, and tests
check that their parameter counts agree.

>>> cfg = higgs_dnn()                      # 3 x 300 tanh, sigmoid output (Baldi et al.)
>>> cfg.num_parameters(n_inputs=28)
189601
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

ACTIVATIONS = ("tanh", "relu", "sigmoid", "elu", "selu", "gelu", "swish")
INITIALIZERS = ("gaussian", "glorot_uniform", "glorot_normal", "he_normal", "he_uniform")


@dataclass(frozen=True)
class DenseNetConfig:
    """A fully connected classifier: ``depth`` hidden layers of ``width`` units.

    ``init="gaussian"`` draws weights from N(0, ``init_stddev``) as in the HIGGS paper
    (which used 0.1 for the first layer and 0.05 for the others; we use one value).
    """

    depth: int = 3
    width: int = 300
    activation: str = "tanh"
    dropout: float = 0.0
    init: str = "gaussian"
    init_stddev: float = 0.05
    num_outputs: int = 1
    family: str = "dense"

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.init not in INITIALIZERS:
            raise ValueError(f"init must be one of {INITIALIZERS}, got {self.init!r}")
        if self.init_stddev <= 0:
            raise ValueError(f"init_stddev must be > 0, got {self.init_stddev}")
        if self.num_outputs < 1:
            raise ValueError(f"num_outputs must be >= 1, got {self.num_outputs}")

    @property
    def output_activation(self) -> str:
        return "sigmoid" if self.num_outputs == 1 else "softmax"

    def num_parameters(self, n_inputs: int) -> int:
        """Trainable parameters (weights + biases) for ``n_inputs`` input features."""
        sizes = [n_inputs] + [self.width] * self.depth + [self.num_outputs]
        return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))

    def describe(self) -> str:
        return f"{self.depth}x{self.width} {self.activation}" + (
            f", dropout {self.dropout}" if self.dropout else ""
        )

    def to_dict(self) -> dict:
        return asdict(self)


def higgs_dnn(**overrides) -> DenseNetConfig:
    """The HIGGS DNN of Baldi, Sadowski and Whiteson (2014): 3 x 300 tanh, no dropout."""
    return DenseNetConfig(**overrides)
