# One entry point for people and CI. Every target installs what it needs first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint types check bench clean system-deps

# Optional system packages (Debian/Ubuntu): Tesseract with English data (OCR of
# images and scanned PDF pages), LibreOffice writer and impress without a GUI
# (legacy .doc/.ppt), and the PostgreSQL server (tests of the shared ledger).
# docproc runs without them and names the package a file would need.
SYSTEM_PACKAGES := tesseract-ocr tesseract-ocr-eng libreoffice-writer-nogui \
                   libreoffice-impress-nogui postgresql
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

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

## system-deps: install the optional Debian packages (apt-get; sudo when not root)
system-deps:
	@command -v apt-get >/dev/null || { echo "system-deps: apt-get not found; install $(SYSTEM_PACKAGES) with your package manager"; exit 1; }
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
