#!/usr/bin/env bash
# Opt-in: PyTorch for the torch engine (--backend torch), into the hepspark venv.
#
# Idempotent: nothing is done when the venv already imports torch 2.13.0.
# The CPU build only: a plain `pip install torch` resolves to the multi-GB CUDA build.
# Where pip has a local wheel (pip's find-links, e.g. /opt/wheels) it is taken from there.
#
# torch is installed with --no-deps and its runtime needs named here, because torch
# 2.13.0 declares setuptools>=77.0.3 (for building C++ extensions, unused here) and
# letting pip resolve it upgraded setuptools to 84, which has no pkg_resources: Petastorm
# 0.13.1 then fails to import (it needs setuptools<70, STACK.md).
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${HEPSPARK_VENV:-.venv}"
TORCH_VERSION="2.13.0"
CPU_INDEX="https://download.pytorch.org/whl/cpu"

log() { printf '[install-torch] %s\n' "$*" >&2; }

[ -x "$VENV/bin/python" ] || { log "ERROR: no venv at $VENV; run 'make install' first"; exit 1; }
if "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  log "torch $TORCH_VERSION already installed in $VENV"
  exit 0
fi

log "installing torch==$TORCH_VERSION (CPU build) into $VENV"
start=$(date +%s)
# the CPU index as an extra source: pip prefers a local/CPU wheel of the pinned version
"$VENV/bin/pip" install -q --no-deps --extra-index-url "$CPU_INDEX" "torch==$TORCH_VERSION"
"$VENV/bin/pip" install -q "sympy>=1.13.3" "networkx>=2.5.1" filelock jinja2 \
  "fsspec>=0.8.5" "typing-extensions>=4.10.0" "setuptools<70"
"$VENV/bin/python" -c "import torch, torch.distributed as d; assert d.is_gloo_available(); print('[install-torch] torch', torch.__version__, 'gloo ok')"
"$VENV/bin/python" -c "import petastorm, pkg_resources" || { log "ERROR: the base stack broke (petastorm)"; exit 1; }
log "done in $(( $(date +%s) - start )) s"
