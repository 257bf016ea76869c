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

.PHONY: demo test test-all install clean ot2

# the Opentrons simulator (tests of generated OT-2 protocols) pins numpy<2: its own virtualenv.
# opentrons 10.x imports fail on Python 3.11 (typing.TypedDict in a pydantic model; fine on 3.12),
# and since 9.x `opentrons_simulate` refuses OT-2 files, so qdlab drives opentrons.simulate itself.
OT2_VENV  := .venv-ot2
OT2_STAMP := $(OT2_VENV)/.qdlab-ot2-installed

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

ot2: $(OT2_STAMP)

$(OT2_STAMP):
	test -x $(OT2_VENV)/bin/python || $(PYTHON) -m venv $(OT2_VENV)
	# the set measured to import and simulate on Python 3.11 (newer pydantic may break opentrons)
	$(OT2_VENV)/bin/pip install --quiet opentrons==9.1.2 pydantic==2.14.3 pydantic-settings==2.16.3 numpy==1.26.4
	touch $(OT2_STAMP)

demo: $(STAMP)
	$(BIN)/qdlab demo --out demo_out

test: $(STAMP) $(OT2_STAMP)
	$(BIN)/python -m pytest -m "not slow and not gpu" -q

test-all: $(STAMP) $(OT2_STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(OT2_VENV) demo_out
