#!/usr/bin/env bash
# The kept scaling report (issue #16, item 6), measured in one go on a quiet machine:
#
#   bash benchmarks/kept_scaling.sh OUT_DIR [WORK_DIR]
#
# Run it with NOTHING else on the machine (no test suite, no helpers): every number it keeps
# is a time. About 2.5 hours on 2 cores. In order:
#   1. the model's terms measured apart: each engine's step against the batch (step_curve.py),
#      what being one rank of a group costs (colocation.py, twice at each of 500, 1000 and
#      4000 rows), the exchange per link and engine
#      (hepspark bench exchange: needs root for the veth and shaped links);
#   2. HIGGS: Horovod, torch and BigDL on 1 and 2 pinned one-core nodes, the seed study's five
#      optimizers at 1000 rows per node, Adam also at 500 and 4000, the Keras baselines on 1
#      and 2 cores (6 epochs; EPOCHS=...);
#   3. CNN: basic_cnn and VGG16 on generated jet images, every engine, N = 1, 2, with the
#      Keras CPU baseline and the CPU zoo table imported (4 epochs);
#   4. the HIGGS runs that measure single terms: N = 1 with the driver on the node's core
#      (the model's h), and a tiny batch (10 rows per node) at N = 1, 2 (c);
#   5. full size: the 11M-event file generated and converted, Horovod and torch on 1 and 2
#      nodes at 1000 rows per node, 2 epochs (the model, fitted on the 200k sample's runs,
#      predicts these held out: the extrapolation in rows its 64-node prediction makes);
#      then every engine at N = 2 over lo shaped to 1 Gbit/s and 500 Mbit/s (--link: the
#      model, fitted over plain loopback, predicts them from the exchange of those links);
#   6. the two reports, with the GPU baselines kept in benchmarks/results/ imported.
# Finished steps are kept (the sweep skips configurations already in its MLflow store), so
# re-running after an interruption goes on where it stopped.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
OUT="${1:?usage: bash benchmarks/kept_scaling.sh OUT_DIR [WORK_DIR]}"
WORK="${2:-$OUT/work}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
HS="$(dirname "$PY")/hepspark"
URI="sqlite:///$WORK/mlflow.db"
EPOCHS="${EPOCHS:-6}"
mkdir -p "$OUT" "$WORK"
export PYSPARK_PYTHON="$PY" PYSPARK_DRIVER_PYTHON="$PY" SPARK_LOCAL_IP=127.0.0.1

step() { printf '\n[kept-scaling] %s  %s\n' "$(date +%H:%M:%S)" "$*"; }
once() {  # once FILE CMD...: run CMD unless FILE exists (the benchmarks refuse to overwrite)
  local file="$1"; shift
  if [ -e "$file" ]; then step "kept: $file"; else "$@"; fi
}
sweep() {  # the options every HIGGS sweep shares
  "$HS" bench scaling --worker-cpus 0 1 --demo-rows 200000 --epochs "$EPOCHS" \
    --cache-dir "$WORK/data" --tracking-uri "$URI" --log-dir "$WORK/logs" --no-progress "$@"
}

step "1. terms measured apart"
for engine in horovod torch; do
  once "$OUT/step_curve_$engine.json" "$PY" "$HERE/step_curve.py" "--$engine" \
    --out "$OUT/step_curve_$engine.json"
  # g and x at the sweep's batches, twice each (one run's g moves by several per cent; the
  # report averages the runs at one batch), about 600 steps per phase
  for spec in 500:2 1000:3 4000:12; do
    batch="${spec%:*}"
    for run in 1 2; do
      file="$OUT/colocation_${engine}_b${batch}_run$run.json"
      once "$file" "$PY" "$HERE/colocation.py" "--$engine" --batch-size "$batch" \
        --epochs "${spec#*:}" --out "$file"
    done
  done
done
once "$OUT/exchange.json" "$HS" bench exchange --engines horovod,torch --output "$OUT/exchange.json" \
  --links loopback,veth,veth-10gbit,veth-1gbit,loopback-1gbit,loopback-500mbit

step "2. HIGGS: five optimizers, three engines, N = 1, 2, Keras on 1 and 2 cores"
sweep --experiment higgs-kept --backends horovod,torch,bigdl \
  --optimizers sgd,adam,adamax,adadelta,adagrad --batch-size 1000
sweep --experiment higgs-kept --backends horovod,torch,bigdl --optimizers adam \
  --batch-size 500,4000
step "3. CNN: basic_cnn and VGG16 on jets, every engine, N = 1, 2"
"$HS" bench scaling --task cnn --dataset jets --models basic_cnn,vgg16 \
  --backends horovod,torch,bigdl --worker-cpus 0 1 --epochs 4 --experiment cnn-kept \
  --cache-dir "$WORK/data" --tracking-uri "$URI" --log-dir "$WORK/logs" --no-progress \
  --worker-memory 4g --submit-arg=--driver-memory --submit-arg=4g \
  --submit-arg=--executor-memory --submit-arg=3g

step "4. the driver on the node's core at N = 1 (the model's h)"
sweep --experiment higgs-kept --backends horovod,torch,bigdl --optimizers adam \
  --batch-size 500,1000,4000 --executors 1 --worker-cpus 0 --driver-cpus 0 --no-baseline
step "4b. tiny batch, 10 rows per node, at N = 1, 2 (the model's c with almost no compute)"
sweep --experiment higgs-kept --backends horovod,torch,bigdl --optimizers adam \
  --batch-size 10 --demo-rows 6000 --no-baseline

step "5. full size: the 11M-event file, Horovod and torch at N = 1, 2 (the model's epoch-rows check)"
FULL="$WORK/full"
once "$FULL/higgs11m.csv.gz" "$HS" generate higgs --rows 11000000 \
  --output "$FULL/higgs11m.csv.gz" --no-progress
once "$FULL/higgs" "$HS" convert higgs --input "$FULL/higgs11m.csv.gz" --output "$FULL/higgs" \
  --no-progress
sweep --experiment higgs-kept --data "$FULL/higgs" --backends horovod,torch --optimizers adam \
  --batch-size 1000 --epochs 2 --no-baseline

step "5b. the link: N = 2 over lo shaped to 1 Gbit/s and 500 Mbit/s (the model's link check)"
for link in loopback-1gbit loopback-500mbit; do
  sweep --experiment higgs-kept --backends horovod,torch,bigdl --optimizers adam \
    --batch-size 1000 --executors 2 --no-baseline --link "$link"
done

step "6. reports"
"$PY" - "$URI" "$ROOT/benchmarks/results" <<'EOF'
import glob, os, sys
from hepspark.bench.baseline import import_baselines
from hepspark.report.runs import load_runs
uri, results = sys.argv[1:]
for experiment, pattern in (("higgs-kept", "gpu_baseline_*.json"),
                            ("cnn-kept", "cnn_zoo_*.json")):
    if not any(r.backend.startswith("keras-") for r in load_runs(experiment, uri)):
        for path in sorted(glob.glob(os.path.join(results, pattern))):
            import_baselines(path, experiment, uri)
EOF
terms=(--exchange "$OUT/exchange.json" --link veth-10gbit --no-mlflow-artifacts)
for engine in horovod torch; do
  terms+=(--step-curve "$OUT/step_curve_$engine.json")
  for file in "$OUT"/colocation_"$engine"*.json; do terms+=(--colocation "$file"); done
done
# what the reports say first about how they were measured (CONTEXT=... to say more)
CONTEXT="${CONTEXT:-Measured by benchmarks/kept_scaling.sh on a $(nproc)-core machine \
($(uname -m)), report written $(date -u +%F); the script is run with nothing else on the \
machine.}"
"$HS" report scaling --experiment higgs-kept --tracking-uri "$URI" --output "$OUT/higgs" \
  --context "$CONTEXT" "${terms[@]}"
"$HS" report scaling --experiment cnn-kept --tracking-uri "$URI" --output "$OUT/cnn" \
  --context "$CONTEXT" \
  --exchange "$OUT/exchange.json" --link veth-10gbit --no-mlflow-artifacts
step "done: $OUT/higgs/report.md, $OUT/cnn/report.md"
