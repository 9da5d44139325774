"""The performance model on runs already measured: fit, held-out check, USL, prediction.

    python benchmarks/perfmodel_check.py [--report benchmarks/results/scaling-2core-pinned/higgs/report.md]
        [--exchange benchmarks/results/exchange_2core.json --link veth-10gbit]
        [--colocation benchmarks/results/colocation_horovod_2core_run1.json
         --colocation benchmarks/results/colocation_torch_2core_run1.json]
        [--step-curve benchmarks/results/step_curve_horovod_2core.json
         --step-curve benchmarks/results/step_curve_torch_2core.json]
        [--output /tmp/hepspark-model-check]

Reads the "Runs" table of a scaling report (the sweep's MLflow store is not always kept;
the kept reports in ``benchmarks/results/`` come without it), rebuilds the runs, and writes the
report's model sections (:mod:`hepspark.report.scaling_model`) to ``OUTPUT/report.md`` with
their plots, then prints per engine the held-out errors, the USL fit and the 64-node
prediction over the chosen link. Nothing is measured here; the numbers are those runs'.
"""
from __future__ import annotations

import argparse
import os

HERE = os.path.dirname(os.path.abspath(__file__))
HIGGS_DNN_PARAMS = 189_601


def read_runs_table(path: str):
    """MeasuredRuns from the '## Runs' table of a scaling report.md."""
    from hepspark.backends.capabilities import batch_is_per_rank
    from hepspark.report.runs import MeasuredRun

    with open(path) as handle:
        lines = handle.read().split("## Runs", 1)[1].splitlines()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines
            if line.startswith("| ") and not line.startswith("| run |")]
    runs = []
    for cells in rows:
        if len(cells) < 15:
            break
        run_id, backend, optimizer, nodes, cores, global_batch, train_rows = cells[:7]
        seconds = float(cells[9].rstrip("*"))
        nodes_i, batch = int(nodes), int(global_batch)
        runs.append(MeasuredRun(
            run_id=run_id, name=run_id, backend=backend, optimizer=optimizer, nodes=nodes_i,
            cores_per_executor=int(cores),
            # the table's batch is global; Horovod's and torch's --batch-size is per rank
            batch_size=batch // nodes_i if batch_is_per_rank(backend) else batch,
            train_rows=int(train_rows.replace(",", "")), parameters=HIGGS_DNN_PARAMS,
            device=cells[14], mode="report",
            epochs=[{"epoch_wall_time_s": seconds}, {"epoch_wall_time_s": seconds,
                                                     "rows_per_s": float(cells[10].replace(",", ""))}]))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", default=os.path.join(HERE, "results",
                                                         "scaling-2core-pinned", "higgs",
                                                         "report.md"))
    parser.add_argument("--exchange", help="'hepspark bench exchange' JSON (default: assumed "
                        "10 Gbit/s, 50 µs)")
    parser.add_argument("--link", default="veth-10gbit")
    parser.add_argument("--colocation", action="append", default=[], metavar="FILE",
                        help="'benchmarks/colocation.py --horovod|--torch --out FILE' JSON: the "
                        "group cost g, x of a one-core node of that engine, measured apart; "
                        "once per engine")
    parser.add_argument("--step-curve", action="append", default=[], metavar="FILE",
                        help="'benchmarks/step_curve.py --horovod|--torch --out FILE' JSON: that "
                        "engine's step time against the batch, measured apart; once per engine")
    parser.add_argument("--output", default="/tmp/hepspark-model-check")
    parser.add_argument("--max-nodes", type=int, default=64)
    args = parser.parse_args()

    from hepspark.report.document import Document
    from hepspark.report.scaling import DISTRIBUTED, HIGGS_TRAIN_ROWS, _baseline_rates
    from hepspark.report.scaling_model import ModelSettings, fit_models, model_sections

    runs = read_runs_table(args.report)
    dist = [r for r in runs if r.backend in DISTRIBUTED]
    settings = ModelSettings(HIGGS_TRAIN_ROWS, args.max_nodes, exchange_file=args.exchange,
                             link=args.link, group_cost_files=tuple(args.colocation),
                             step_curve_files=tuple(args.step_curve))
    os.makedirs(os.path.join(args.output, "plots"), exist_ok=True)
    sections = model_sections(dist, _baseline_rates([r for r in runs if r.backend not in
                                                     DISTRIBUTED]), settings,
                              lambda name: os.path.join(args.output, "plots", name))
    doc = Document(f"Performance model check: {args.report}", sections)
    with open(os.path.join(args.output, "report.md"), "w") as handle:
        handle.write(doc.to_markdown())
    print(f"{len(dist)} distributed runs from {args.report}; link: "
          + (f"{args.link} of {args.exchange}" if args.exchange else "assumed 10 Gbit/s"))
    for backend, model in fit_models(dist, settings).items():
        print(f"{backend}: {model.describe()}")
        for note in model.notes:
            print(f"  note: {note}")
        batch = model.batch_per_node or 1000
        t1 = model.epoch_time_s(HIGGS_TRAIN_ROWS, 1, batch)
        t64 = model.epoch_time_s(HIGGS_TRAIN_ROWS, args.max_nodes, batch)
        print(f"  {HIGGS_TRAIN_ROWS:,d}-row epoch: N=1 {t1:.0f} s, N={args.max_nodes} "
              f"{t64:.1f} s (efficiency {t1 / (args.max_nodes * t64):.2f})")
    for section in sections:
        if section.title.startswith(("Held-out", "Universal")):
            print(f"\n{section.title}")
            for paragraph in section.paragraphs[1:]:
                print(paragraph)
            if section.table:
                for row in section.table.rows:
                    print("  " + " | ".join(row[:8]))
    print(f"\nwrote {os.path.join(args.output, 'report.md')}")


if __name__ == "__main__":
    main()
