"""Single-GPU HIGGS baseline: the project's own 3x300 tanh model on Keras 3 (torch backend).

The training step is the torch engine's (:class:`hepspark.backends.torch_step.TorchStep`,
here without DistributedDataParallel): one code path for the model step on one GPU and
on the engine's ranks, so the baseline and ``--backend torch`` differ only in the data
feed and the gradient exchange.

The GPU machine lent by the ``device`` tool has PyTorch but neither Java nor TensorFlow, so
this script needs only numpy, torch and Keras 3 (carried there as wheels). It imports the
same model builder (:func:`hepspark.models.keras_dense.build_dense`), optimizer table and
HIGGS generator as the Spark backends; no Spark, no Parquet. Data are generated in memory
with the project's generator and standardized with the training split's mean and std.

Prepare the wheels here (once; ``.hepspark-cache/`` is git-ignored)::

    python benchmarks/gpu_baseline.py --print-carry

then run on the device (``run`` tool, carry ``.hepspark-cache/gpu-wheels``)::

    python benchmarks/gpu_baseline.py --install-wheels .hepspark-cache/gpu-wheels \\
        --rows 2000000 --epochs 4 --output $OUT/gpu_baseline.json

and bring the JSON into the scaling experiment::

    hepspark bench import-baseline gpu_baseline.json --experiment higgs-scaling

Prints per-epoch wall time, rows/s, validation AUC, and rows/s as a fraction of the GPU's
measured fp32 matmul rate (the FLOP ceiling, 6 flops per weight per row).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHEELS = os.path.join(".hepspark-cache", "gpu-wheels")
# Keras 3 and what it needs beyond numpy/torch; the version used on the CPU side (TF 2.21).
KERAS_PIN = "keras==3.15.1"
KERAS_DEPS = ["absl-py", "rich", "namex", "h5py", "optree", "ml-dtypes", "packaging",
              "markdown-it-py", "mdurl", "pygments", "typing-extensions"]


def print_carry(python_version: str) -> None:
    """Download the wheels for the device's Python and print how to run there."""
    os.makedirs(WHEELS, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:",
           "--no-deps", "--python-version", python_version, "--platform", "manylinux2014_x86_64",
           "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux_2_28_x86_64",
           "-d", WHEELS, KERAS_PIN, *KERAS_DEPS]
    print("[gpu-baseline] " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    size = sum(os.path.getsize(os.path.join(WHEELS, f)) for f in os.listdir(WHEELS)) / 2**20
    print(f"[gpu-baseline] {len(os.listdir(WHEELS))} wheels, {size:.1f} MiB in {WHEELS}")
    print("carry:   " + WHEELS)
    print("command: python benchmarks/gpu_baseline.py --install-wheels " + WHEELS
          + " --output $OUT/gpu_baseline.json")


def install_wheels(directory: str, target: str) -> None:
    """Unpack wheels onto ``sys.path`` (a wheel is a zip; no pip needed on the device).

    Packages the interpreter already has (numpy, torch, packaging, ...) are left to it.
    """
    os.makedirs(target, exist_ok=True)
    for name in sorted(os.listdir(directory)):
        if name.endswith(".whl"):
            with zipfile.ZipFile(os.path.join(directory, name)) as wheel:
                wheel.extractall(target)
    sys.path.append(target)  # after site-packages: the device's own packages win


def matmul_tflops(torch, seconds: float = 2.0, n: int = 8192) -> float:
    """Measured fp32 matmul rate of the GPU (TF32 tensor cores off: Keras trains in fp32)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(n, n, device="cuda")
    b = torch.randn(n, n, device="cuda")
    a @ b
    torch.cuda.synchronize()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    torch.cuda.synchronize()
    return 2.0 * n**3 * count / (time.perf_counter() - start) / 1e12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="training rows generated")
    parser.add_argument("--val-rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=4,
                        help="epochs; the first includes compilation and is reported apart")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", help="write the result as JSON here")
    parser.add_argument("--install-wheels", metavar="DIR",
                        help="unpack the wheels in DIR onto sys.path first (device machine)")
    parser.add_argument("--print-carry", action="store_true",
                        help="download the wheels for the device and print how to run there")
    parser.add_argument("--device-python", default="3.12",
                        help="the device's Python version for --print-carry")
    args = parser.parse_args()
    if args.print_carry:
        print_carry(args.device_python)
        return
    if args.install_wheels:
        install_wheels(args.install_wheels, os.path.join("/tmp", "hepspark-gpu-pylib"))
    os.environ.setdefault("KERAS_BACKEND", "torch")
    sys.path.insert(0, REPO)

    import keras
    import numpy as np

    from hepspark.backends.optimizers import keras_optimizer
    from hepspark.backends.torch_step import TorchStep
    from hepspark.data.higgs_generator import generate_events
    from hepspark.metrics import roc_auc
    from hepspark.models.config import higgs_dnn
    from hepspark.models.keras_dense import build_dense

    device, tflops = "CPU: " + (platform.processor() or platform.machine()), None
    if keras.backend.backend() == "torch":
        import torch

        if torch.cuda.is_available():
            device = "GPU: " + torch.cuda.get_device_name(0)
            tflops = matmul_tflops(torch)
    print(f"[gpu-baseline] Keras {keras.__version__} ({keras.backend.backend()}) on {device}"
          + (f", fp32 matmul {tflops:.1f} TFLOP/s" if tflops else ""), flush=True)

    start = time.perf_counter()
    train = generate_events(args.rows, seed=np.random.SeedSequence([args.seed, 0]))
    val = generate_events(args.val_rows, seed=np.random.SeedSequence([args.seed, 1]))
    mean, std = train[:, 1:].mean(axis=0), train[:, 1:].std(axis=0)
    x, y = (train[:, 1:] - mean) / std, train[:, :1]
    x_val, y_val = (val[:, 1:] - mean) / std, val[:, 0]
    print(f"[gpu-baseline] generated {args.rows:,d} + {args.val_rows:,d} rows in "
          f"{time.perf_counter() - start:.1f} s", flush=True)

    config = higgs_dnn()
    model = build_dense(config, n_inputs=x.shape[1], keras=keras, seed=args.seed)
    step = TorchStep(keras, model, keras_optimizer(keras, args.optimizer),
                     "binary_crossentropy")
    import torch

    x_all, y_all = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)
    n_params = model.count_params()
    ceiling = tflops * 1e12 / (6.0 * n_params) if tflops else None

    epochs = []
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(len(x), device=x_all.device)  # a shuffled pass, on the device
        losses = [step(x_all[rows], y_all[rows]) for rows in order.split(args.batch_size)]
        train_loss = float(torch.stack(losses).mean())  # synchronizes: the pass is done
        wall = time.perf_counter() - t0
        scores = model.predict(x_val, batch_size=8192, verbose=0).ravel()
        record = {
            "epoch": epoch,
            "epoch_wall_time_s": wall,
            "rows_per_s": args.rows / wall,
            "train_loss": train_loss,
            "val_auc": float(roc_auc(y_val, scores)),
        }
        epochs.append(record)
        fraction = f", {record['rows_per_s'] / ceiling:.1%} of the FLOP ceiling" if ceiling else ""
        print(f"[gpu-baseline] epoch {epoch}/{args.epochs}: {wall:.2f} s, "
              f"{record['rows_per_s']:,.0f} rows/s{fraction}, loss {record['train_loss']:.4f}, "
              f"val AUC {record['val_auc']:.4f}", flush=True)

    steady = epochs[1:] or epochs
    rate = float(np.median([e["rows_per_s"] for e in steady]))
    result = {
        "kind": "hepspark-gpu-baseline",
        "backend": "keras-gpu" if device.startswith("GPU") else "keras-" + keras.backend.backend(),
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "device": device,
        "matmul_tflops_fp32": tflops,
        "optimizer": args.optimizer,
        "batch_size": args.batch_size,
        "train_rows": args.rows,
        "val_rows": args.val_rows,
        "parameters": n_params,
        "model": config.describe(),
        "epochs": epochs,
        "steady_rows_per_s": rate,
        "higgs_epoch_10_5m_s": 10_500_000 / rate,
    }
    print(f"[gpu-baseline] steady {rate:,.0f} rows/s -> a 10.5M-row HIGGS epoch in "
          f"{result['higgs_epoch_10_5m_s']:.1f} s", flush=True)
    if args.output:
        tmp = args.output + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(result, handle, indent=2)
        os.replace(tmp, args.output)
        print(f"[gpu-baseline] wrote {args.output}")


if __name__ == "__main__":
    main()
