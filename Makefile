# Two-command set-up: `make demo` runs the whole pipeline on the built-in dataset, `make test` runs the
# tests. Both create (or refresh) the local virtual environment .venv by themselves.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench venv clean

venv: $(STAMP)

# Rebuilt when pyproject.toml or the pinned constraints change. The constraints pin torch/torchvision
# versions that work together on a CPU-only machine (see README, "Environment").
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,pose]"
	touch $(STAMP)

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
