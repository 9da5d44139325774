#!/usr/bin/env bash
# Install the pinned hepspark stack into .venv (see ../shared/STACK.md for why each pin).
#
# Idempotent: a stamp file inside the venv records the hash of this script; when it
# matches, only the editable install of the project is refreshed (seconds).
# Horovod is built from source once into a wheel cache outside the repo
# ($HEPSPARK_WHEEL_CACHE, default ~/.cache/hepspark/wheels) and reused afterwards.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${HEPSPARK_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
WHEELS="${HEPSPARK_WHEEL_CACHE:-$HOME/.cache/hepspark/wheels}"
STAMP="$VENV/.hepspark-stack-$(sha256sum "$0" | cut -c1-16)"

log() { printf '[install] %s\n' "$*" >&2; }

# --- Java 17 (Spark 3.5 and BigDL run on the JVM) --------------------------------
if ! command -v java >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "java not found: installing openjdk-17-jre-headless with apt-get"
    apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless
  else
    log "ERROR: java not found. Install Java 17, e.g. 'sudo apt-get install -y openjdk-17-jre-headless', then re-run 'make install'."
    exit 1
  fi
fi

if [ -f "$STAMP" ]; then
  log "pinned stack already installed in $VENV (stamp $(basename "$STAMP"))"
  "$VENV/bin/pip" install -q --no-deps --no-build-isolation -e . >/dev/null
  exit 0
fi

[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
PIP="$VENV/bin/pip"
"$PIP" install -q --upgrade "pip<25" wheel

log "installing the pinned stack (pyspark, numpy<2, pyarrow 14, petastorm, tensorflow-cpu, mlflow, ...)"
"$PIP" install -q \
  "pyspark==3.5.9" "numpy==1.26.4" "pyarrow==14.0.2" "pandas==2.3.3" \
  "petastorm==0.13.1" "setuptools<70" "tensorflow-cpu==2.21.0" "tensorboard==2.21.0" \
  "ml-dtypes<0.6" "mlflow==3.17.2" "scikit-learn==1.9.1" matplotlib six \
  cloudpickle psutil pyyaml packaging \
  "pytest>=8" "pytest-timeout" ruff "import-linter==2.17"

# venv-pack: `hepspark pack-env` (the venv as an archive for spark-submit --archives).
"$PIP" install -q --no-deps "venv-pack==0.2.0"

# uproot: ROOT TTrees as image input (`hepspark convert images --input F.root`). Its
# other needs (fsspec, packaging, typing-extensions) come with the stack above; --no-deps
# so it can never move numpy.
"$PIP" install -q --no-deps "uproot==5.7.7" "awkward==2.14.0" "awkward-cpp==57" \
  "cramjam==2.14.0" "xxhash==4.1.0"
# isal (ISA-L igzip): `convert higgs` inflates .csv.gz 2-3x faster than zlib (issue #17).
"$PIP" install -q --no-deps "isal==1.9.1"

# tf-keras declares a dependency on `tensorflow`, which would pull the 572 MB GPU wheel.
"$PIP" install -q --no-deps "tf-keras==2.21.0"
# BigDL 2.4.0 declares pyspark==3.1.3, which fails on Java 17 / Python 3.11; bigdl-core is a
# pre-release that must be pinned exactly (else: 'PythonImageFeature does not exist in the JVM').
"$PIP" install -q --no-deps "bigdl-dllib-spark3==2.4.0" "bigdl-core==2.4.0.dev0"

# --- Horovod 0.28.1, patched build, cached as a wheel ------------------------------
mkdir -p "$WHEELS"
HVD_WHEEL="$(ls "$WHEELS"/horovod-0.28.1-*.whl 2>/dev/null | head -n1 || true)"
if [ -z "$HVD_WHEEL" ]; then
  log "building Horovod 0.28.1 from source (about 11 minutes on 2 cores; cached in $WHEELS)"
  SRC="$(mktemp -d)"
  "$PIP" download -q --no-deps --no-binary :all: "horovod==0.28.1" -d "$SRC"
  tar -xzf "$SRC/horovod-0.28.1.tar.gz" -C "$SRC"
  # Horovod 0.28.1 vs TensorFlow 2.21: xla_mpi_ops.cc includes highwayhash headers that the
  # TF wheel does not ship ('highwayhash/arch_specific.h: No such file'). The XLA ops are
  # optional, so drop that one source from the build.
  sed -i '/xla_mpi_ops.cc/d' "$SRC/horovod-0.28.1/horovod/tensorflow/CMakeLists.txt"
  HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_MXNET=1 \
  HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 MAKEFLAGS=-j2 \
    "$PIP" wheel -q --no-build-isolation --no-deps "$SRC/horovod-0.28.1" -w "$WHEELS"
  rm -rf "$SRC"
  HVD_WHEEL="$(ls "$WHEELS"/horovod-0.28.1-*.whl | head -n1)"
fi
# Never with the [spark] extra and never with deps: it pins pyarrow<11 and pulls numpy 2.
"$PIP" install -q --no-deps "$HVD_WHEEL"

"$PIP" install -q --no-deps --no-build-isolation -e .

# Fail loudly if anything above moved a pin.
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
pins = {"numpy": "1.26.4", "pyarrow": "14.0.2", "pyspark": "3.5.9", "pandas": "2.3.3",
        "petastorm": "0.13.1", "mlflow": "3.17.2", "horovod": "0.28.1"}
bad = {k: md.version(k) for k, v in pins.items() if md.version(k) != v}
if bad:
    raise SystemExit(f"pinned versions were changed by the install: {bad}")
PY
touch "$STAMP"
log "done: $VENV is ready"
