# One entry point for people and CI. Every target installs what it needs first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint types check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

## run: the daemon on its embedded default: watch ./inbox (seeded with the
## samples on first run), offline provider, ledger in ./state: inside this
## checkout, so a demo never mixes with other runs or another checkout
run: $(STAMP)
	[ -d inbox ] || cp -r examples/inbox inbox
	$(BIN)/docproc --state-dir $(CURDIR)/state run

## test: every check: lint, types, import layers, then the test suite
test: lint types
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check docproc tests bench
	$(BIN)/ruff format --check docproc tests bench
	$(BIN)/lint-imports

types: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/intake.py
	$(BIN)/python bench/results.py
	$(BIN)/python bench/s3.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
