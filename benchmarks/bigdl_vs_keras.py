"""BigDL over Spark executors vs the Keras backend, same split, model, batch and cores.

    python benchmarks/bigdl_vs_keras.py [--rows 300000] [--batch-sizes 1000] [--epochs 3]
        [--optimizers adam] [--cluster] [--bigdl-java-opts "-Dbigdl.engineType=mkldnn"]

Steady-state rows/s (first epoch dropped: it includes JIT/graph warm-up) of BigDL on
local[2] (and, with --cluster, on a 2-worker x 1-core standalone cluster on 127.0.0.1) vs
the single-process Keras backend on the same 2 cores; ratios and fractions of the FLOP
ceiling (STACK.md). Target (issue #4): BigDL >= 50% of Keras.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
from common import MACHINE_GFLOPS, ceiling_rows_per_s, ensure_dataset


def steady(records) -> float:
    return float(np.median([r.rows_per_s for r in records[1:]] or [records[0].rows_per_s]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--batch-sizes", default="1000", help="comma-separated")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--optimizers", default="adam", help="comma-separated")
    parser.add_argument("--cluster", action="store_true",
                        help="also run BigDL on a 2-worker x 1-core standalone cluster")
    parser.add_argument("--bigdl-java-opts", default="",
                        help="extra JVM options for BigDL (driver and executors)")
    parser.add_argument("--skip-keras", action="store_true")
    parser.add_argument("--workdir", default="/tmp/hepspark-bench")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from hepspark.backends import get_backend
    from hepspark.backends.bigdl_compat import BIGDL_SPARK_CONF, prepare_python_home
    from hepspark.cli.common import spark_session
    from hepspark.config import TrainConfig
    from hepspark.data.readers import HiggsDataset
    from hepspark.session import bigdl_conf

    prepare_python_home()

    def session(master: str, cluster: dict[str, str] | None = None):
        conf = {**BIGDL_SPARK_CONF, **bigdl_conf(), **(cluster or {})}
        if args.bigdl_java_opts:
            for key in ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions"):
                conf[key] += " " + args.bigdl_java_opts
        return spark_session("bench-bigdl", master, conf=conf)

    spark = session("local[2]")
    _, data = ensure_dataset(args.workdir, args.rows, spark)
    ds = HiggsDataset(data)
    results: list[tuple[str, str, int, float]] = []

    def run(label: str, backend: str, optimizer: str, batch: int, master: str | None):
        config = TrainConfig(data=data, backend=backend, optimizer=optimizer, batch_size=batch,
                             epochs=args.epochs, master=master)
        records = []
        start = time.perf_counter()
        get_backend(backend).fit(config, ds, records.append)
        rate = steady(records)
        print(f"  {label:<22} {optimizer:<8} batch {batch:>5}: epochs "
              + ", ".join(f"{r.rows_per_s:,.0f}" for r in records)
              + f" rows/s ({time.perf_counter() - start:.0f} s)", flush=True)
        results.append((label, optimizer, batch, rate))

    batches = [int(b) for b in args.batch_sizes.split(",")]
    optimizers = args.optimizers.split(",")
    for optimizer in optimizers:
        for batch in batches:
            if not args.skip_keras:
                run("keras 1 process", "keras", optimizer, batch, None)
            run("bigdl local[2]", "bigdl", optimizer, batch, "local[2]")
    if args.cluster:
        from hepspark.cluster import cluster_conf, standalone_cluster

        spark.stop()
        with standalone_cluster(workers=2, cores_per_worker=1, memory="3g") as info:
            session(info.master_url, cluster_conf(info))  # the JVM runs: conf, not env
            for optimizer in optimizers:
                for batch in batches:
                    run("bigdl standalone 2x1", "bigdl", optimizer, batch, info.master_url)

    ceiling = ceiling_rows_per_s(TrainConfig(data=data).model.num_parameters(len(ds.features)))
    print(f"\n{ds.rows('train'):,d} train rows, 3x300 tanh; FLOP ceiling at "
          f"{MACHINE_GFLOPS:.0f} GFLOP/s: {ceiling:,.0f} rows/s"
          + (f"; BigDL JVM options {args.bigdl_java_opts!r}" if args.bigdl_java_opts else ""))
    keras_rate = {(o, b): r for label, o, b, r in results if label.startswith("keras")}
    for label, optimizer, batch, rate in results:
        ratio = rate / keras_rate[(optimizer, batch)] if (optimizer, batch) in keras_rate else None
        print(f"{label:<22} {optimizer:<8} batch {batch:>5} {rate:>9,.0f} rows/s "
              f"{rate / ceiling:6.1%} of ceiling"
              + (f"   vs keras {ratio:.2f} (target >= 0.50)" if ratio and "bigdl" in label
                 else ""))


if __name__ == "__main__":
    main()
