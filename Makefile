# Two entry points, both from a fresh machine with Python 3.11 and pip:
#   make demo   install everything into .venv and run the main job on simulated instruments
#   make test   install everything into .venv and run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install lint bench soak fuzz torture clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[gui,instruments,test]"
	touch $(STAMP)

install: $(STAMP)

DEMO := out/demo

# The main job at the microscope, on the simulated rig: acquire three monomers and three fused
# dimers with `spad acquire` (photons + spectrum, live verdict, stopping each particle once the
# verdict is sure or after 15 s) into a session directory, then analyse the session and write
# the report.
demo: $(STAMP)
	rm -rf $(DEMO)
	for i in 1 2 3; do \
	  $(BIN)/spad acquire -o $(DEMO) --particle monomer --seed $$i --duration 15 --until-confident 0.95 --exposure 0.5 || exit 1; \
	  $(BIN)/spad acquire -o $(DEMO) --particle dimer --seed $$((i + 10)) --duration 15 --until-confident 0.95 --exposure 0.5 || exit 1; \
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

# One hour of simulated acquisition at 2 M photons/s: resident memory and photons kept.
soak: $(STAMP)
	$(BIN)/python tests/benchmarks/soak_acquire.py --hours 1

# Fuzzing campaign of every reader and the CLI (tests/fuzz/fuzz.py), FUZZ_SECONDS per target;
# inputs that break the contract land in tests/fuzz/corpus/ and are replayed by make test.
# Headless: every command but gui, and gui's file arguments offscreen.
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python tests/fuzz/fuzz.py --seconds-per-target $(FUZZ_SECONDS)

# Reliability campaign (tests/fuzz/torture.py, ~20 min, not part of make test): kill -9, SIGTERM
# and SIGINT during acquire, convert and batch, a disk filling up (tmpfs: needs root), SWMR
# readers attached, corrupt inputs; counts files unreadable, seconds lost per kill, orphans,
# tracebacks and hangs, and writes them into the README.
torture: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python tests/fuzz/torture.py --readme README.md

clean:
	rm -rf $(VENV) build *.egg-info
