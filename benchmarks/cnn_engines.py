"""Zoo CNNs on every engine, side by side: the same jet images, model, optimizer, batch and
cores, through ``train_cnn`` as a user runs it.

    python benchmarks/cnn_engines.py [--rows 4000] [--models basic_cnn,vgg] [--epochs 3]
                                     [--batch-size 64] [--workdir DIR]

Engines on this machine's cores: Keras (one process, all cores), BigDL on ``local[N]``
(N = cores), Horovod with N one-thread ranks. Prints per model and engine the steady
epoch time (median after the first epoch, which includes graph tracing / JVM warm-up),
images/s, the ratio to Keras, test AUC (weighted) and peak memory (Horovod: the largest
rank). The jets are generated once into the workdir and converted with 1 MB row groups
(each rank gets a shard).
"""
from __future__ import annotations

import argparse
import os

import numpy as np

ENGINES = ("keras", "bigdl", "horovod")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000, help="jets generated (default 4000)")
    parser.add_argument("--models", default="basic_cnn,vgg",
                        help="zoo families, comma-separated (every family runs on every engine)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workdir", default=os.path.join(".hepspark-cache", "cnn-engines"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from hepspark.backends.bigdl_compat import bigdl_session
    from hepspark.config import EngineSettings, TrainConfig
    from hepspark.data.image_files import write_generated
    from hepspark.data.images_convert import ImageConvertConfig, convert_images
    from hepspark.data.storage import METADATA_FILE
    from hepspark.hardware import cpu_count, cpu_model
    from hepspark.models.cnn import CnnConfig
    from hepspark.tracking import Tracker
    from hepspark.train_cnn import train_cnn

    cores = cpu_count()
    # BigDL's jars first; Horovod reuses the session
    spark = bigdl_session(f"local[{cores}]",
                          driver_memory=EngineSettings.driver_memory_from_environ())
    quiet = {"progress": lambda _: None}
    data = os.path.join(args.workdir, f"jets-{args.rows}")
    if not os.path.exists(os.path.join(data, METADATA_FILE)):
        os.makedirs(args.workdir, exist_ok=True)
        source = os.path.join(args.workdir, f"jets-{args.rows}.h5")
        write_generated("jets", source, args.rows, seed=3, **quiet)
        convert_images(spark, ImageConvertConfig(source, data, "jets", row_group_size_mb=1,
                                                 overwrite=True), **quiet)
    print(f"CNN engines on {cpu_model()} ({cores} cores): {args.rows:,d} jets "
          f"(33x33x2), adam, batch {args.batch_size}, {args.epochs} epochs", flush=True)
    print(f"{'model':<10} {'engine':<16} {'epoch s':>8} {'images/s':>9} {'vs keras':>8} "
          f"{'test AUC':>8} {'peak MB':>8}", flush=True)
    for family in args.models.split(","):
        model = CnnConfig(family, depth=10) if family == "vgg" else CnnConfig(family)
        keras_rate = None
        for engine in ENGINES:
            config = TrainConfig(data=data, backend=engine, optimizer="adam",
                                 batch_size=args.batch_size, epochs=args.epochs, model=model,
                                 num_executors=cores if engine == "horovod" else 1,
                                 master=f"local[{cores}]")
            outcome = train_cnn(config, Tracker(enabled=False), **quiet)
            times = [e.epoch_wall_time_s for e in outcome.epochs]
            steady = float(np.median(times[1:] or times))
            rate = outcome.epochs[-1].rows / steady
            keras_rate = keras_rate or rate
            label = {"keras": "keras (1 proc)", "bigdl": f"bigdl local[{cores}]",
                     "horovod": f"horovod {cores}x1"}[engine]
            print(f"{family:<10} {label:<16} {steady:>8.2f} {rate:>9,.0f} "
                  f"{rate / keras_rate:>8.2f} {outcome.test_metrics['test_auc']:>8.4f} "
                  f"{outcome.info['peak_rss_mb']:>8,.0f}", flush=True)


if __name__ == "__main__":
    main()
