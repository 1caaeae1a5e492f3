# rstq: make run / make test work on a fresh machine with Python >= 3.11, make and the registries.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA_DIR ?= ./rstq-data
STAMP := $(VENV)/.installed
# The product folders, each importable as rstq.<folder> (pyproject.toml's package-dir).
PARTS := core query pgwire tracing protocol sdk cli app

.PHONY: run test venv lint typecheck bench clean chaos

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Reinstall when the dependency pins change.
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(PY) examples/run.py --data-dir $(DATA_DIR)

test: $(STAMP)
	$(VENV)/bin/ruff check $(PARTS) tests bench examples notebooks
	$(MAKE) typecheck
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# mypy cannot follow the package-dir mapping, so it checks a symlinked `rstq` tree.
typecheck: $(STAMP)
	@mkdir -p .typecheck/rstq && touch .typecheck/rstq/__init__.py
	@for d in $(PARTS); do ln -sfn ../../$$d .typecheck/rstq/$$d; done
	MYPYPATH=.typecheck $(VENV)/bin/mypy -p rstq

# rstq vs restate-server (and DBOS) side by side: bench/README.md. BENCH_ARGS=... for a subset.
bench: $(STAMP)
	$(PY) -m tests.support.harness.restate_server install
	$(PY) bench/suite.py $(BENCH_ARGS)
	$(PY) bench/log_append.py

# The long chaos run (tests/chaos): 100+ kill -9, pauses, network and disk faults, >= 10k fuzzed
# inputs per surface; prints the figures (and to bench/results/chaos-figures.json). `make test`
# runs the same suite short.
chaos: $(STAMP)
	RSTQ_CHAOS=long RSTQ_CHAOS_FIGURES=bench/results/chaos-figures.json $(PY) -m pytest -q -p no:cacheprovider tests/chaos $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
