# rstq: make run / make test work on a fresh machine with Python >= 3.11, make and the registries.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA_DIR ?= ./rstq-data
STAMP := $(VENV)/.installed

.PHONY: run test venv lint typecheck bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Reinstall when the dependency pins change.
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/rstq server --data-dir $(DATA_DIR)

test: $(STAMP)
	$(VENV)/bin/ruff check core query pgwire tracing sdk cli tests bench examples
	$(VENV)/bin/mypy core query pgwire tracing sdk cli
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/log_append.py

clean:
	rm -rf $(VENV) build *.egg-info
