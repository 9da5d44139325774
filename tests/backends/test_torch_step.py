"""The one Keras-on-torch training step (the torch engine's ranks and the GPU baseline),
with every optimizer of the table, in a subprocess: Keras' backend is fixed per process and
this test session runs Keras on TensorFlow."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("torch", reason="PyTorch is opt-in: 'make install-torch'")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = """
import numpy as np, keras
from hepspark.backends.optimizers import OPTIMIZERS, keras_optimizer
from hepspark.backends.torch_step import TorchStep
from hepspark.models.config import DenseNetConfig
from hepspark.models.keras_dense import build_dense

rng = np.random.default_rng(0)
x = rng.normal(size=(512, 6)).astype("float32")
y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("float32")
for name in sorted(OPTIMIZERS):
    model = build_dense(DenseNetConfig(depth=1, width=16), 6, keras=keras, seed=1)
    step = TorchStep(keras, model, keras_optimizer(keras, name), "binary_crossentropy")
    losses = [float(step(x, y)) for _ in range(40)]
    print(name, losses[0], losses[-1])
# a diverged model: NaN scores are a NaN loss, not torch's "between 0 and 1" error
model = build_dense(DenseNetConfig(depth=1, width=16), 6, keras=keras, seed=1)
step = TorchStep(keras, model, keras_optimizer(keras, "sgd", 1e39), "binary_crossentropy")
print("diverged", [float(step(x, y)) for _ in range(3)][-1])
"""


def test_every_optimizer_trains_through_the_torch_step():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "KERAS_BACKEND": "torch",
                                              "PYTHONPATH": REPO})
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    from hepspark.backends.optimizers import OPTIMIZERS

    assert set(OPTIMIZERS) <= set(lines)
    for name in OPTIMIZERS:
        first, last = map(float, lines[name].split())
        # Adadelta at its default rate barely learns (STACK.md): finite, not worse
        assert last < first or (name == "adadelta" and last <= first + 1e-3), (name, first,
                                                                                last)
    assert lines["diverged"] == "nan"
