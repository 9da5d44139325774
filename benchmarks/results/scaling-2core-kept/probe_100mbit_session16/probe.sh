#!/bin/bash
# Does a much slower link slow BigDL? N = 2 over lo shaped to 100 Mbit/s, Horovod as control.
set -u
cd /work/main
PY=/work/main/.venv/bin/python; HS=/work/main/.venv/bin/hepspark
export PYSPARK_PYTHON=$PY PYSPARK_DRIVER_PYTHON=$PY SPARK_LOCAL_IP=127.0.0.1 TF_CPP_MIN_LOG_LEVEL=2
OUT=/tmp/s16/probe; URI=sqlite:///$OUT/mlflow.db; mkdir -p $OUT
echo "[probe] $(date +%H:%M:%S) exchange over loopback,loopback-100mbit"
$HS bench exchange --engines horovod --links loopback,loopback-100mbit --output $OUT/exchange.json || echo "EXCHANGE FAILED"
sweep() { $HS bench scaling --worker-cpus 0 1 --demo-rows 200000 --epochs 6 --cache-dir /tmp/s14/work/data --tracking-uri $URI --log-dir $OUT/logs --no-progress --optimizers adam --batch-size 1000 --executors 2 --no-baseline "$@"; }
for link in loopback loopback-100mbit; do
  echo "[probe] $(date +%H:%M:%S) $link"
  sweep --experiment probe --backends bigdl,horovod --link $link || echo "SWEEP $link FAILED"
done
echo "[probe] $(date +%H:%M:%S) done"
tc qdisc show dev lo
