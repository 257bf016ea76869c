# qdlab — the two quick-start commands: `make demo` and `make test`.
# Each creates .venv (if missing), installs qdlab and runs its job.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.qdlab-installed
# one OpenMP thread, passive waiting: measured 30x slow-downs when two busy-waiting
# processes share the 2 cores of our machines
export OMP_NUM_THREADS ?= 1
export OMP_WAIT_POLICY ?= PASSIVE
export MPLBACKEND ?= Agg

.PHONY: demo test test-all install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	# torch first and pinned: a bare requirement would pull gigabytes of CUDA wheels
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# MatterSim without its declared dependencies (they would replace torch); its runtime needs are in pyproject
	$(BIN)/python -m pip install --quiet --no-deps mattersim==1.2.3
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/qdlab demo --out demo_out

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not gpu" -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo_out
