"""HIGGS CSV → Parquet: our Spark converter vs plain pyarrow, same file, one run.

    python benchmarks/higgs_ingest.py [--rows 1000000] [--workdir /tmp/hepspark-bench]

Prints MB/s of both, the ratio, and the ratio per core used by our converter.
Target (issue #2): >= 50% of pyarrow's single-process speed per core used.
"""
from __future__ import annotations

import argparse
import os
import shutil

from common import Timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", default="/tmp/hepspark-bench")
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--gzip", action="store_true", help="benchmark a .csv.gz input")
    args = parser.parse_args()

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from hepspark.data.higgs_convert import ConvertConfig, convert_higgs
    from hepspark.data.higgs_csv import write_higgs_csv
    from hepspark.data.higgs_schema import COLUMNS
    from hepspark.session import get_spark, spark_resources

    spark = get_spark("bench-ingest", master=args.master)
    _, cores = spark_resources(spark)
    os.makedirs(args.workdir, exist_ok=True)
    csv = os.path.join(args.workdir, f"ingest-{args.rows}.csv" + (".gz" if args.gzip else ""))
    if not os.path.exists(csv):
        print(f"generating {args.rows:,d} rows into {csv}")
        write_higgs_csv(csv, args.rows, seed=1, spark=spark, progress=lambda _: None)
    size_mb = os.path.getsize(csv) / 1e6

    out_arrow = os.path.join(args.workdir, "ingest-pyarrow.parquet")
    with Timer() as t_arrow:
        table = pacsv.read_csv(
            csv,
            read_options=pacsv.ReadOptions(column_names=list(COLUMNS), use_threads=False),
            convert_options=pacsv.ConvertOptions(
                column_types={c: "float32" for c in COLUMNS}
            ),
        )
        pq.write_table(table, out_arrow)
    out_ours = os.path.join(args.workdir, "ingest-hepspark")
    shutil.rmtree(out_ours, ignore_errors=True)
    with Timer() as t_ours:
        convert_higgs(spark, ConvertConfig(input=csv, output=out_ours, checksum=False),
                      progress=lambda _: None)

    arrow_mbs, ours_mbs = size_mb / t_arrow.seconds, size_mb / t_ours.seconds
    print(f"\ninput: {csv} ({size_mb:,.1f} MB, {args.rows:,d} rows)")
    print(f"{'pyarrow read_csv+write_table (1 thread)':<44} {t_arrow.seconds:8.2f} s "
          f"{arrow_mbs:8.1f} MB/s")
    print(f"{f'hepspark convert ({args.master}, {cores} cores)':<44} {t_ours.seconds:8.2f} s "
          f"{ours_mbs:8.1f} MB/s")
    print(f"ratio hepspark / pyarrow:           {ours_mbs / arrow_mbs:.2f}")
    print(f"ratio per core used (target >= 0.5): {ours_mbs / cores / arrow_mbs:.2f}")
    print("(hepspark also validates every field, finds line numbers, splits, computes "
          "standardization and writes Petastorm metadata)")


if __name__ == "__main__":
    main()
