# The two commands a newcomer types: `make demo` and `make test`. Both create .venv and install everything.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TORCH_VERSION := 2.13.0

.PHONY: install demo test test-slow test-all bench clean

$(STAMP): pyproject.toml tools/install-torch.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, its CPU build from PyTorch's CPU wheel index (plain PyPI's is the CUDA build, ~3 GB); the plain
	# spec where that index is unreachable (tools/install-torch.sh says which it does)
	sh tools/install-torch.sh $(BIN)/python $(TORCH_VERSION)
	@echo "installing jleval and its dependencies (the dev extra)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/jleval demo

# `make test` is the fast suite (a few minutes on 2 cores); tests marked slow (the demo end to end, the wheel
# install, Ray clusters, ...) run in `make test-slow`; `make test-all` is both. CI runs both.
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/preprocess.py

clean:
	rm -rf $(VENV) build dist *.egg-info
