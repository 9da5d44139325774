"""Training feed: rows/s of our Petastorm reader vs plain pyarrow read_table, same split.

    python benchmarks/higgs_feed.py [--rows 1000000] [--batch-size 1000]

Target (issue #2): >= 300k rows/s, twice the FLOP-limited training rate, so that the
feed never limits training.
"""
from __future__ import annotations

import argparse

from common import Timer, ensure_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--workdir", default="/tmp/hepspark-bench")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    import pyarrow.fs
    import pyarrow.parquet as pq

    from hepspark.cli.common import spark_session
    from hepspark.data.readers import HiggsDataset

    spark = spark_session("bench-feed", "local[*]")
    _, data = ensure_dataset(args.workdir, args.rows, spark)
    spark.stop()
    ds = HiggsDataset(data)
    n = ds.rows("train")

    fs, root = pyarrow.fs.FileSystem.from_uri(ds.split_uri("train"))
    arrow_times, feed_times, shuffled_times = [], [], []
    for epoch in range(args.epochs):
        with Timer() as t:
            table = pq.read_table(root, filesystem=fs)
            table.to_pandas()
        arrow_times.append(t.seconds)
        with Timer() as t:
            rows = sum(len(y) for _, y in ds.iter_batches("train", args.batch_size))
        assert rows == n
        feed_times.append(t.seconds)
        with Timer() as t:
            rows = sum(len(y) for _, y in ds.iter_batches(
                "train", args.batch_size, shuffle=True, seed=epoch))
        shuffled_times.append(t.seconds)

    best = {k: n / min(v) for k, v in (("arrow", arrow_times), ("feed", feed_times),
                                        ("shuffled", shuffled_times))}
    print(f"\ntrain split: {n:,d} rows x {len(ds.features)} features, batch {args.batch_size}, "
          f"best of {args.epochs}")
    print(f"{'pyarrow read_table -> pandas':<46} {best['arrow']:>12,.0f} rows/s")
    print(f"{'hepspark iter_batches (standardized)':<46} {best['feed']:>12,.0f} rows/s")
    print(f"{'hepspark iter_batches (shuffled, standardized)':<46} {best['shuffled']:>12,.0f} rows/s")
    print(f"ratio feed / pyarrow: {best['feed'] / best['arrow']:.2f}; "
          f"shuffled feed vs 300k rows/s target: {best['shuffled'] / 300_000:.2f}x")


if __name__ == "__main__":
    main()
