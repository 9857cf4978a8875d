# The two set-up commands: `make run` (the main job) and `make test` (the suite).
# Each creates .venv and installs the package with what it needs on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test fuzz clean

run: $(VENV)/.installed
	$(BIN)/fastscratch train --save out/model.npz --plots out

test: $(VENV)/.installed
	$(BIN)/python -m pytest

# the parsers' fuzz tests at full strength (CI runs this after `make test`, which runs 200 cases each)
fuzz: $(VENV)/.installed
	FASTSCRATCH_FUZZ_EXAMPLES=10000 $(BIN)/python -m pytest -m fuzz

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache .hypothesis
