# hepspark — `make demo` runs the main job on its embedded default, `make test` the tests.
# Both install the pinned stack first (idempotent; seconds when already installed).
VENV ?= .venv
PY := $(VENV)/bin/python
SPARK_ENV := PYSPARK_PYTHON=$(abspath $(PY)) PYSPARK_DRIVER_PYTHON=$(abspath $(PY)) SPARK_LOCAL_IP=127.0.0.1
PYTEST_ARGS ?=

.PHONY: install install-torch demo test test-all test-cluster test-physics lint bench bench-full scaling kept-scaling clean

install:
	bash scripts/install.sh

# Opt-in PyTorch (CPU build, ~190 MB wheel) for --backend torch; `make test` installs it so
# that CI runs the torch engine's tests too (they skip where torch is absent).
install-torch: install
	bash scripts/install_torch.sh

demo: install
	$(SPARK_ENV) $(VENV)/bin/spark-submit --master "local[*]" spark_jobs/train_higgs.py

test: install-torch
	$(SPARK_ENV) $(PY) -m pytest -m "not cluster and not physics" -q --durations=15 $(PYTEST_ARGS)

test-all: install-torch
	$(SPARK_ENV) $(PY) -m pytest -q $(PYTEST_ARGS)

test-cluster: install-torch
	$(SPARK_ENV) $(PY) -m pytest -m cluster -q $(PYTEST_ARGS)

# The toy HIGGS sample against the paper's DNN ordering: 1M events, 24 epochs (~15 min).
test-physics: install
	$(PY) -m pytest -m physics -q $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check hepspark spark_jobs benchmarks tests
	$(VENV)/bin/lint-imports

bench: install
	$(SPARK_ENV) $(PY) benchmarks/higgs_ingest.py
	$(SPARK_ENV) $(PY) benchmarks/higgs_feed.py
	$(SPARK_ENV) $(PY) benchmarks/higgs_train.py

# The whole HIGGS path at 11M events: generate, convert, one epoch per engine (tens of
# minutes on 2 cores); the table lands in benchmarks/results/higgs-full/.
bench-full: install
	$(SPARK_ENV) $(PY) benchmarks/higgs_full.py

# The scaling sweep (standalone clusters on 127.0.0.1) and its report; about an hour on 2 cores.
scaling: install
	$(SPARK_ENV) $(PY) benchmarks/scaling.py

# The kept scaling report (issue #16) measured in one go: every engine on pinned one-core
# nodes, the model's terms apart, the 11M-event file; ~2.5 hours on 2 cores, run as root (the
# exchange's veth links) with NOTHING else running. OUT=benchmarks/results/scaling-2core-kept
OUT ?= benchmarks/results/scaling-new
kept-scaling: install-torch
	bash benchmarks/kept_scaling.sh $(OUT)

clean:
	rm -rf .pytest_cache .ruff_cache spark-warehouse bigdl.log
