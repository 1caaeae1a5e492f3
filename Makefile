# rstq: make run / make test work on a fresh machine with Python >= 3.11, make and the registries.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA_DIR ?= ./rstq-data
# Two installs: `make run` needs the runtime and what the examples need (hypercorn); `make test`
# (and `make venv`, which CI runs first) adds the test toolchain (`.[test]`: pytest, mypy, the
# official restate-sdk, the Postgres clients, ...). Each is redone when pyproject.toml changes.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
STAMP := $(TEST_STAMP)
PIP := $(PY) -m pip install --disable-pip-version-check
# The product folders, each importable as rstq.<folder> (pyproject.toml's package-dir).
PARTS := core query pgwire tracing protocol sdk cli app

.PHONY: run test venv run-venv lint typecheck bench clean chaos

$(VENV)/bin/python:
	@echo "==> creating the virtualenv $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "==> installing rstq and the examples' dependencies into $(VENV) (the first time takes a minute or two)"
	$(PIP) -e '.[examples]'
	@touch $(RUN_STAMP)
	@echo "==> installed: $(VENV)/bin/rstq"

$(TEST_STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "==> installing rstq with the test toolchain into $(VENV) (the first time takes a few minutes)"
	$(PIP) -e '.[test]'
	@touch $(TEST_STAMP) $(RUN_STAMP)
	@echo "==> installed: rstq, examples and test dependencies"

venv: $(TEST_STAMP)

run-venv: $(RUN_STAMP)

run: $(RUN_STAMP)
	$(PY) examples/run.py --data-dir $(DATA_DIR)

test: $(TEST_STAMP)
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
