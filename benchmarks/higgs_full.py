"""The whole HIGGS path at the size users work at: generate (or take) the 11M-event file,
convert it, and train one epoch on each engine, through the CLI as a user runs it.

    python benchmarks/higgs_full.py [--rows 11000000 | --input HIGGS.csv.gz] [--epochs 1]
        [--engines keras,horovod,bigdl[,torch]] [--out results/higgs-full]

Prints one table (also ``--out``/higgs_full.json and .md): per step its wall time, rows/s,
the fraction of a reference (ingest: pyarrow's ``read_csv`` + ``write_table`` of the same
file on one thread, in a process pinned to one core; training: the FLOP ceiling of the cores used, fp32
matmul measured here) and the peak resident memory of the step's processes (the sum over
the step's process tree, sampled every 0.5 s: the driver, its JVM, Python workers, ranks).
A step that fails is one row with its own error line; the steps after it that need its
output are skipped. Not in CI at full size (tens of minutes); ``tests/test_bench_full.py``
runs it on a small sample.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass

from common import pyarrow_convert_s

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
UCI_ROWS = 11_000_000
ENGINES = ("keras", "horovod", "bigdl", "torch")


@dataclass
class Step:
    step: str
    wall_s: float | None = None
    rows_per_s: float | None = None
    fraction: float | None = None  # of `reference`
    reference: str = ""
    peak_rss_mb: float | None = None
    status: str = "ok"  # ok, FAILED: <its error line>, skipped: <why>


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--rows", type=int, default=UCI_ROWS,
                        help=f"events to generate (default {UCI_ROWS:,d}, the UCI file's)")
    source.add_argument("--input", help="an existing HIGGS .csv(.gz), e.g. the UCI file")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--engines", default="keras,horovod,bigdl,torch",
                        help="comma-separated; torch runs only where `import torch` works "
                        "and hepspark has the engine (default: all four)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--cores", type=int, default=2,
                        help="Spark local[N] and Horovod ranks (default 2)")
    parser.add_argument("--workdir", default="/tmp/hepspark-bench-full",
                        help="where the CSV and the dataset are written (kept for reruns)")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "higgs-full"))
    parser.add_argument("--gflops", type=float,
                        help="fp32 GFLOP/s of the cores used (default: measured at start; on "
                        "a busy machine that measure is low and fractions come out high)")
    parser.add_argument("--no-pyarrow", action="store_true",
                        help="skip the pyarrow reference (it holds the whole table in memory)")
    args = parser.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        parser.error(f"--engines: unknown {unknown}; choose from {', '.join(ENGINES)}")
    os.makedirs(args.workdir, exist_ok=True)
    os.makedirs(os.path.join(args.out, "logs"), exist_ok=True)

    from hepspark.hardware import cpu_model, matmul_gflops

    gflops = args.gflops or matmul_gflops(threads=args.cores)
    print(f"[higgs-full] {cpu_model()}, {args.cores} cores: fp32 matmul {gflops:.0f} GFLOP/s "
          f"({'given' if args.gflops else 'measured now'}; the training ceiling)", flush=True)
    steps: list[Step] = []
    csv = args.input
    if csv is None:
        csv = os.path.join(args.workdir, f"higgs-{args.rows}.csv.gz")
        step = run_step("generate", ["generate", "higgs", "--rows", str(args.rows),
                                     "--output", csv, "--overwrite"], args)
        step.rows_per_s = args.rows / step.wall_s if step.status == "ok" else None
        steps.append(step)
    elif not os.path.exists(csv):
        parser.error(f"--input {csv}: no such file")
    rows = args.rows if args.input is None else None
    data = os.path.join(args.workdir, "data")
    if steps and steps[-1].status != "ok":
        steps.append(Step("convert", status="skipped: no input (generate failed)"))
    else:
        steps.append(convert_step(csv, data, rows, args))
    ready = steps[-1].status == "ok"
    for engine in engines:
        if not ready:
            steps.append(Step(f"train {engine}", status="skipped: no dataset (convert failed)"))
        else:
            steps.append(train_step(engine, data, gflops, args))
    print_and_write(steps, args, csv)
    return 0 if all(s.status == "ok" or s.status.startswith("skipped") for s in steps) else 1


# ----------------------------------------------------------------------------- steps
def convert_step(csv: str, data: str, rows: int | None, args) -> Step:
    step = run_step("convert", ["convert", "higgs", "--input", csv, "--output", data,
                                "--overwrite", "--no-checksum"], args)
    if step.status != "ok":
        return step
    with open(os.path.join(data, "hepspark_dataset.json")) as handle:
        meta = json.load(handle)
    rows = rows or sum(split["rows"] for split in meta["splits"].values())
    step.rows_per_s = rows / step.wall_s
    if not args.no_pyarrow:
        out = os.path.join(args.workdir, "pyarrow.parquet")
        reference, _ = pyarrow_convert_s(csv, out, one_core=True)
        os.remove(out)
        step.fraction = reference / step.wall_s
        step.reference = f"pyarrow on 1 core ({rows / reference:,.0f} rows/s)"
    return step


def torch_missing() -> str | None:
    """Why the torch engine cannot run here, or None."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return "import torch fails"
    from hepspark.backends.base import BACKENDS

    return None if "torch" in BACKENDS else "hepspark has no torch engine yet"


def train_step(engine: str, data: str, gflops: float, args) -> Step:
    name = f"train {engine}"
    if engine == "torch" and (why := torch_missing()):
        return Step(name, status=f"skipped: {why}")
    flags = ["--backend", engine, "--master", f"local[{args.cores}]"]
    if engine in ("horovod", "torch"):  # rank engines: one rank per core
        flags += ["--executors", str(args.cores)]
    step = run_step(name, ["train", "higgs", "--data", data, "--epochs", str(args.epochs),
                           "--batch-size", str(args.batch_size), "--experiment",
                           "higgs-full", *flags], args)
    if step.status != "ok":
        return step
    log = open(step_log(args, name)).read()
    rate = re.search(r"training rate \(rows/s\)\s+mean ([\d,]+)", log)
    params = re.search(r"parameters\s+([\d,]+)", log)
    if rate and params:
        from hepspark.hardware import training_ceiling_rows_per_s

        step.rows_per_s = float(rate[1].replace(",", ""))
        ceiling = training_ceiling_rows_per_s(int(params[1].replace(",", "")), gflops)
        step.fraction = step.rows_per_s / ceiling
        step.reference = f"FLOP ceiling ({ceiling:,.0f} rows/s)"
    return step


# ------------------------------------------------------------------- running a step
def step_log(args, name: str) -> str:
    return os.path.join(args.out, "logs", name.replace(" ", "-") + ".log")


def run_step(name: str, cli_args: list[str], args) -> Step:
    """``python -m hepspark CLI_ARGS`` with its output in the step's log; wall time, peak
    RSS of its process tree, and on failure its own last error line."""
    log = step_log(args, name)
    env = {**os.environ, "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
           "PYSPARK_DRIVER_PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH"))
                                         if p)}
    env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{os.path.abspath(args.out)}/mlflow.db")
    print(f"[higgs-full] {name}: hepspark {' '.join(cli_args)}  (log: {log})", flush=True)
    start = time.perf_counter()
    with open(log, "w") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "hepspark", *cli_args], cwd=args.out,
                                env=env, stdout=handle, stderr=subprocess.STDOUT)
        peak = PeakRss(proc.pid)
        code = proc.wait()
        peak.stop()
    step = Step(name, wall_s=time.perf_counter() - start, peak_rss_mb=peak.mb)
    if code != 0:
        step.status = f"FAILED (exit {code}): {error_line(log)}"
    print(f"[higgs-full] {name}: {step.status} in {step.wall_s:.1f} s", flush=True)
    return step


def error_line(log: str) -> str:
    """The step's own error: the CLI's 'hepspark: error: ...' line, else the last line."""
    lines = [line.strip() for line in open(log, errors="replace") if line.strip()]
    mine = [line for line in lines if line.startswith("hepspark: ")]
    return (mine or lines or ["no output"])[-1][:300]


class PeakRss:
    """Peak of the summed resident memory of ``pid`` and its descendants, sampled."""

    INTERVAL_S = 0.5

    def __init__(self, pid: int) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.mb = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        while not self._done.is_set():
            total = 0
            try:
                for process in [self.root, *self.root.children(recursive=True)]:
                    try:
                        total += process.memory_info().rss
                    except psutil.Error:
                        pass  # ended between the listing and the reading
            except psutil.Error:
                pass
            self.mb = max(self.mb, total / 1e6)
            self._done.wait(self.INTERVAL_S)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


# --------------------------------------------------------------------------- output
def table(steps: list[Step]) -> list[str]:
    def num(value, fmt):
        return format(value, fmt) if value is not None else "-"

    lines = ["| step | wall time (s) | rows/s | fraction | of | peak RSS (MB) | status |",
             "|---|---:|---:|---:|---|---:|---|"]
    for s in steps:
        lines.append(f"| {s.step} | {num(s.wall_s, '.1f')} | {num(s.rows_per_s, ',.0f')} | "
                     f"{num(s.fraction, '.3g')} | {s.reference or '-'} | "
                     f"{num(s.peak_rss_mb, ',.0f')} | {s.status} |")
    return lines


def print_and_write(steps: list[Step], args, csv: str) -> None:
    lines = table(steps)
    print("\n" + "\n".join(lines), flush=True)
    conditions = {"input": os.path.abspath(csv), "rows": args.rows if args.input is None
                  else None, "epochs": args.epochs, "batch_size": args.batch_size,
                  "cores": args.cores, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    with open(os.path.join(args.out, "higgs_full.json"), "w") as handle:
        json.dump({"conditions": conditions, "steps": [asdict(s) for s in steps]}, handle,
                  indent=2)
    with open(os.path.join(args.out, "higgs_full.md"), "w") as handle:
        handle.write("# HIGGS end to end (benchmarks/higgs_full.py)\n\n"
                     + ", ".join(f"{k}: {v}" for k, v in conditions.items()) + "\n\n"
                     + "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
