# Set-up and entry points. `make demo` and `make test` each do the whole set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.atmospec-installed
OUT ?= atmospec-demo

.PHONY: setup data demo test lint docs wheel-check benchmarks-quick clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned to the version atmospec is tested with (the CPU build where the package
	# index offers it); the package's torch>= range is then satisfied. Then atmospec with every
	# optional extra and the test tools: `pip install .` alone is the lighter core install.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

data: setup
	$(BIN)/atmospec data fetch

demo: data
	$(BIN)/atmospec demo --out $(OUT)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

# The wheel, installed without extras in a fresh environment, runs --help, models and a prediction.
wheel-check: data
	PYTHON=$(PYTHON) BUILD_PY=$(BIN)/python scripts/check-wheel.sh

test: data lint docs wheel-check
	$(BIN)/python -m pytest -n 2 --durations=15

benchmarks-quick: data
	for b in benchmarks/*.py; do $(BIN)/python $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache dist
