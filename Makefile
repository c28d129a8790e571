# Two entry points, both from a fresh machine with Python 3.11 and pip:
#   make demo   install everything into .venv and run the main job on simulated instruments
#   make test   install everything into .venv and run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[gui,instruments,test]"
	touch $(STAMP)

install: $(STAMP)

DEMO := out/demo

# A small session at the microscope, on simulated instruments: three monomers and three fused
# dimers, then the per-particle analysis, classification and report.
demo: $(STAMP)
	mkdir -p $(DEMO)
	for i in 1 2 3; do \
	  $(BIN)/spad simulate --particle monomer --vary --seed $$i --duration 30 -o $(DEMO)/monomer_$$i.h5 --force || exit 1; \
	  $(BIN)/spad simulate --particle dimer --vary --seed $$((i + 10)) --duration 30 -o $(DEMO)/dimer_$$i.h5 --force || exit 1; \
	done
	$(BIN)/spad analyze $(DEMO)/*.h5 --report $(DEMO)/report

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -n 2

lint: $(STAMP)
	$(BIN)/ruff check .

# Speed measurements (figures printed, nothing asserted). bench_analyze simulates 100
# particles on its first run (~10 min), then reuses them.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[gui,instruments,test,bench]"
	for b in tests/benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
