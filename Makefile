# The two set-up commands: `make run` (the main job) and `make test` (the suite).
# Each creates .venv on first use and installs the package with what it needs:
# `make run` the Numba kernels and plots only (no TensorFlow, asv or scikit-learn),
# `make test` the `dev` extra (everything the suite checks against).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test fuzz figures notebooks notebook-figures docs docs-serve clean

run: $(VENV)/.installed-run
	$(BIN)/fastscratch train --save out/model.npz --plots out

test: $(VENV)/.installed
	$(BIN)/python -m pytest

# the parsers' fuzz tests at full strength (CI runs this after `make test`, which runs 200 cases each)
fuzz: $(VENV)/.installed
	FASTSCRATCH_FUZZ_EXAMPLES=10000 $(BIN)/python -m pytest -m fuzz

# the README's two pictures: the main job's training curve and a `fastscratch bench` throughput
# plot (Fashion-MNIST when installed; a few minutes), copied from out/figures/ into docs/
figures: $(VENV)/.installed
	$(BIN)/fastscratch train --quiet --plots out/figures
	$(BIN)/fastscratch bench --plot out/figures --markdown out/figures/bench.md
	cp out/figures/accuracy.png docs/training-curve.png
	$(BIN)/fastscratch bench --sweep --plot out/figures/sweep --markdown out/figures/sweep.md
	cp out/figures/throughput.png docs/throughput.png
	cp out/figures/sweep/scaling.png docs/scaling.png

# the notebooks in JupyterLab (jupytext keeps each .ipynb and its .py script in sync on save)
notebooks: $(VENV)/.installed-notebooks
	$(BIN)/jupyter lab notebooks/

# the README's two notebook pictures, saved by the notebooks themselves during a full-length run
# of tests/test_notebooks.py (85 s on 2 cores) into a temporary folder (the suite refuses files
# left in the checkout), then copied into docs/
notebook-figures: $(VENV)/.installed
	dir=$$(mktemp -d) && \
	FASTSCRATCH_NOTEBOOK_QUICK=0 FASTSCRATCH_NOTEBOOK_FIGURES=$$dir \
		$(BIN)/python -m pytest -q tests/test_notebooks.py -k runs_top_to_bottom && \
	cp $$dir/forward-pass.png docs/notebook-forward-pass.png && \
	cp $$dir/agreement.png docs/notebook-agreement.png && rm -rf $$dir

# the documentation site (mkdocs.yml): a strict build into site/ (any broken link, anchor or
# docstring fails it), and a live preview at http://127.0.0.1:8000 that rebuilds on edits
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

$(VENV)/.installed-docs: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $@

$(VENV)/.installed-notebooks: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[numba,keras,notebooks]'
	touch $@

$(VENV)/.installed-run: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[numba,plot]'
	touch $@

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache .hypothesis
