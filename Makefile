# Two commands for a newcomer: `make demo` and `make test`. Each creates .venv when missing,
# installs torch first (the CPU build where one is on disk, so no CUDA build is pulled by accident),
# then this package with the extras it needs, then runs.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PIP_TORCH_ARGS ?=
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/pip install --quiet $(PIP_TORCH_ARGS) "$(TORCH)"
	touch $@

$(VENV)/.installed-%: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install --quiet -e ".[$*]"
	touch $@

## demo: run the largest end-to-end pipeline that works today
demo: $(VENV)/.installed-dev
	$(BIN)/python -m zerosearch_rl demo

## test: the full suite (fast and slow tests), as CI runs it
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m "not gpu" -q

## test-fast: the default suite without the slow tests
test-fast: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build src/*.egg-info
