"""Per zoo family: parameters, training images/s on this machine, and the fraction of the
FLOP ceiling that rate reaches.

    python benchmarks/cnn_zoo.py [--shape 33,33,2] [--classes 2] [--batch-size 64]
                                 [--steps 20] [--families vgg,resnet] [--output zoo.json]

Trains each model on random sparse images in memory (``model.fit`` on numpy, no I/O) for
``--steps`` batches after one warm-up epoch that traces the graph. FLOPs are counted from
the layers (2 per multiply-add; training = 3 x forward) and compared with the machine's
matmul ceiling (STACK.md, ``HEPSPARK_MACHINE_GFLOPS``).

On the lent GPU machine (PyTorch, no TensorFlow) it runs on Keras 3's torch backend with
the wheels ``benchmarks/gpu_baseline.py --print-carry`` prepares, and the ceiling is the
GPU's fp32 matmul rate measured in the same run::

    python benchmarks/cnn_zoo.py --install-wheels .hepspark-cache/gpu-wheels \
        --batch-size 256 --output $OUT/cnn_zoo_gpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from common import MACHINE_GFLOPS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def device_and_ceiling(keras) -> tuple[str, float]:
    """(device description, fp32 ceiling in GFLOP/s): the GPU measured now, or the CPU's
    reference rate."""
    if keras.backend.backend() == "torch":
        import torch

        if torch.cuda.is_available():
            from gpu_baseline import matmul_tflops

            return f"GPU: {torch.cuda.get_device_name(0)}", matmul_tflops(torch) * 1e3
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return f"GPU x{len(gpus)} (TensorFlow)", float("nan")
    from hepspark.hardware import cpu_count, cpu_model

    return f"CPU: {cpu_model()} ({cpu_count()} cores)", MACHINE_GFLOPS


def forward_flops(model) -> float:
    """Multiply-adds x 2 of the convolution and dense layers, per image."""
    import keras

    total = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.SeparableConv2D):
            _, h, w, c_out = layer.output.shape
            c_in = layer.input.shape[-1]
            k = np.prod(layer.kernel_size)
            total += 2.0 * h * w * c_in * (k + c_out)
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            c_in = layer.input.shape[-1]
            total += 2.0 * h * w * c_out * c_in * np.prod(layer.kernel_size)
        elif isinstance(layer, keras.layers.Dense):
            total += 2.0 * layer.input.shape[-1] * layer.units
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="33,33,2")
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--families", default="", help="comma-separated subset (default all)")
    parser.add_argument("--output", help="also write the table as JSON here")
    parser.add_argument("--install-wheels", metavar="DIR",
                        help="GPU machine: unpack Keras 3's wheels in DIR and use its torch "
                        "backend (see benchmarks/gpu_baseline.py --print-carry)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.install_wheels:
        from gpu_baseline import install_wheels

        install_wheels(args.install_wheels, os.path.join("/tmp", "hepspark-gpu-pylib"))
        os.environ.setdefault("KERAS_BACKEND", "torch")
    sys.path.insert(0, REPO)
    import keras

    from hepspark.models.cnn import CnnConfig, build_cnn

    shape = tuple(int(v) for v in args.shape.split(","))
    outputs = 1 if args.classes == 2 else args.classes
    configs = [
        CnnConfig("basic_cnn", filters=32), CnnConfig("basic_cnn_bn_pool", filters=64),
        CnnConfig("alexnet_like"), CnnConfig("vgg", depth=16), CnnConfig("vgg", depth=21),
        CnnConfig("resnet", depth=14, bottleneck=True),
        CnnConfig("resnet", depth=29, bottleneck=True),
        CnnConfig("resnet", depth=50, bottleneck=True),
        CnnConfig("inception", modules=2, towers=4), CnnConfig("xception"),
    ]
    if args.families:
        wanted = set(args.families.split(","))
        configs = [c for c in configs if c.family in wanted]
    device, ceiling = device_and_ceiling(keras)
    print(f"CNN zoo on {device}, Keras {keras.__version__} ({keras.backend.backend()}): "
          f"{shape} images, {args.classes} classes, batch {args.batch_size}, fp32 ceiling "
          f"{ceiling:,.0f} GFLOP/s", flush=True)
    print(f"{'model':<22} {'params':>11} {'MFLOP/img':>10} {'images/s':>10} "
          f"{'GFLOP/s':>8} {'of ceiling':>10}")
    rng = np.random.default_rng(0)
    n = args.batch_size * args.steps
    x = (rng.exponential(1.0, (n, *shape)) * (rng.random((n, *shape)) < 0.05)).astype(np.float32)
    y = rng.integers(0, max(args.classes, 2), n)
    loss = "binary_crossentropy" if outputs == 1 else "sparse_categorical_crossentropy"
    rows = []
    for config in configs:
        keras.utils.set_random_seed(0)
        model = build_cnn(config, shape, outputs, keras=keras)
        model.compile(optimizer=keras.optimizers.Nadam(), loss=loss)
        model.fit(x[: args.batch_size * 2], y[: args.batch_size * 2],
                  batch_size=args.batch_size, epochs=1, verbose=0)  # traces the graph
        start = time.perf_counter()
        model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
        rate = n / (time.perf_counter() - start)
        train_flops = 3.0 * forward_flops(model)
        gflops = rate * train_flops / 1e9
        print(f"{model.name:<22} {model.count_params():>11,d} {train_flops / 3e6:>10.1f} "
              f"{rate:>10,.0f} {gflops:>8.1f} {gflops / ceiling:>10.3f}", flush=True)
        rows.append({"model": model.name, "family": config.family,
                     "parameters": int(model.count_params()),
                     "forward_mflop_per_image": train_flops / 3e6, "images_per_s": rate,
                     "gflops": gflops, "fraction_of_ceiling": gflops / ceiling})
        keras.backend.clear_session()
    if args.output:
        result = {"kind": "hepspark-cnn-zoo", "device": device, "keras": keras.__version__,
                  "keras_backend": keras.backend.backend(), "ceiling_gflops": ceiling,
                  "shape": list(shape), "classes": args.classes,
                  "batch_size": args.batch_size, "steps": args.steps, "models": rows}
        with open(args.output + ".tmp", "w") as handle:
            json.dump(result, handle, indent=2)
        os.replace(args.output + ".tmp", args.output)
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
