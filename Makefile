# metabench. `make bench` runs the full comparison; `make test` runs the tests.
# TORCH is how torch is installed: CI and CPU machines use the CPU wheel
# (TORCH=torch==2.13.0); a GPU machine can leave the default range (a CUDA build).
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch>=2.11,<2.15
PROFILE ?= standard
BENCH_OUT ?= reports/bench-$(PROFILE)
# Data root: $METABENCH_DATA, else a shared/data folder beside the checkout if there is one,
# else metabench's default (the user cache, downloading what is missing).
DATA_DIR ?= $(firstword $(METABENCH_DATA) $(wildcard ../shared/data))
DATA_FLAG := $(if $(DATA_DIR),--data-dir $(DATA_DIR))
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install bench test lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,dask]"
	touch $(STAMP)

bench: install
	$(VENV)/bin/metabench run suites/*.toml --profile $(PROFILE) --out $(BENCH_OUT) $(DATA_FLAG)

test: install
	$(PY) -m pytest -m "not slow" -q

lint: install
	$(VENV)/bin/ruff check bench tests benchmarks
	$(VENV)/bin/ruff format --check bench tests benchmarks

format: install
	$(VENV)/bin/ruff check --fix bench tests benchmarks
	$(VENV)/bin/ruff format bench tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
