"""One training step of a Keras 3 model on the torch backend, written once for the torch
engine's ranks (the model wrapped in ``DistributedDataParallel``) and the single-GPU
baseline (``benchmarks/gpu_baseline.py``, the bare model).

It does what Keras' own torch trainer does (``keras/src/backend/torch/trainer.py``):
forward, loss (with the model's regularization losses), ``backward``, then the Keras
optimizer applies the ``.grad`` of each trainable variable. Under DDP the backward pass
averages those gradients over the ranks, so every rank applies the same update and the
optimizers are Keras' own (the same defaults as every other engine). Only numpy, torch and
Keras are imported (inside the functions): the GPU machine has nothing else.

>>> step = TorchStep(keras, model, keras_optimizer(keras, "adam"), "binary_crossentropy")
>>> loss = step(x, y)                      # a 0-d torch tensor (not synchronized)
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

# The loss names tasks use (hepspark.backends.tasks.Task.loss) -> Keras loss classes;
# their default reduction (sum over the batch size, sample weights included) is Keras fit's.
LOSSES = {
    "binary_crossentropy": "BinaryCrossentropy",
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
}


class TorchStep:
    """``model``: a built Keras 3 model (torch backend); ``module``: what the forward pass
    goes through (its ``DistributedDataParallel`` wrapper, default the model itself)."""

    def __init__(self, keras: ModuleType, model: Any, optimizer: Any, loss: str,
                 module: Any = None) -> None:
        if keras.backend.backend() != "torch":
            raise RuntimeError(f"TorchStep needs Keras on the torch backend, this Keras runs "
                               f"{keras.backend.backend()} (set KERAS_BACKEND=torch before "
                               "the first import of keras)")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
        self.keras, self.model, self.optimizer = keras, model, optimizer
        self.module = module if module is not None else model
        self.loss = getattr(keras.losses, LOSSES[loss])()
        self.variables = list(model.trainable_variables)
        optimizer.build(self.variables)

    def __call__(self, x: Any, y: Any, sample_weight: Any = None) -> Any:
        import torch

        ops = self.keras.ops
        x, y = ops.convert_to_tensor(x), ops.convert_to_tensor(y)
        weight = None if sample_weight is None else ops.convert_to_tensor(sample_weight)
        self.model.zero_grad(set_to_none=True)
        scores = self.module(x, training=True)
        # torch's binary_cross_entropy raises on NaN scores ("all elements of input should
        # be between 0 and 1"; a device-side assert on CUDA) where TensorFlow returns NaN: a
        # diverged model then killed its rank instead of stopping with EpochBook's message.
        # Score NaNs as 0.5 and make the loss NaN instead (no host sync).
        bad = torch.isnan(scores)
        loss = self.loss(y, torch.where(bad, 0.5, scores), sample_weight=weight)
        loss = loss + torch.where(bad.any(), float("nan"), 0.0)
        if self.model.losses:  # L2 penalties of the zoo's regularized layers
            loss = loss + ops.sum(ops.stack(self.model.losses))
        loss.backward()
        gradients = [v.value.grad for v in self.variables]
        with torch.no_grad():
            self.optimizer.apply(gradients, self.variables)
        return loss.detach()
