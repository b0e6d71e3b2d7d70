# Two-command set-up: `make demo` runs the whole pipeline on the built-in dataset, `make test` runs the
# tests. Both create (or refresh) the local virtual environment .venv by themselves.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A package index to take torch and torchvision from; empty (the default) takes them from PyPI with the
# rest. TORCH_INDEX=https://download.pytorch.org/whl/cpu installs the CPU-only wheels (2.14.1+cpu, which
# the torch==2.14.1 pin admits) and none of the CUDA libraries. Switching back to empty needs `make clean`.
TORCH_INDEX ?=
TORCH_INDEX_RECORD := $(VENV)/.torch-index

.PHONY: demo test lint bench venv clean FORCE

venv: $(STAMP)

# Rebuilt when pyproject.toml, the pinned constraints or TORCH_INDEX change. The constraints pin
# torch/torchvision versions that work together (see README, "Environment").
$(STAMP): pyproject.toml constraints.txt $(TORCH_INDEX_RECORD)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet --upgrade --no-deps -c constraints.txt \
		--index-url $(TORCH_INDEX) torch torchvision)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,pose,faiss]"
	touch $(STAMP)

# Rewritten only when TORCH_INDEX differs from the last build's, so that only a change triggers a reinstall.
$(TORCH_INDEX_RECORD): FORCE
	@mkdir -p $(VENV)
	@if [ ! -f $@ ] || [ "$$(cat $@)" != "$(TORCH_INDEX)" ]; then printf '%s\n' "$(TORCH_INDEX)" > $@; fi

FORCE:

demo: $(STAMP)
	$(BIN)/papg-bench demo

test: $(STAMP)
	$(BIN)/ruff check --quiet .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) papg-work .pytest_cache .ruff_cache
