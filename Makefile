# Executable documentation of the workflow. `make run` and `make test` work on
# a fresh machine with Python 3.11+ and make: they create .venv and install.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
CONFIG ?= config.toml

.PHONY: install run test lint format docs bench bench-detection bench-corpora package-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP) ## create .venv and install feedd with its dev tools

run: install ## run the daemon on config.toml (SQLite, ./dumps -> ./public)
	mkdir -p dumps public
	$(BIN)/feedd --config $(CONFIG) run

test: install ## the whole test suite (PostgreSQL tests skip locally without a server)
	$(BIN)/python -m pytest -n 2 --durations=25 --cov=feedd --cov-report=term
	@# The pure core must stay >= 90% covered.
	$(BIN)/python -m coverage report --include='feedd/core/*' --fail-under=90

lint: install ## ruff lint + format check, mypy (strict on the core)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy feedd

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

docs: install ## regenerate the CLI reference in README.md
	$(BIN)/python -m feedd._reference --write

bench: install ## every benchmark, one table (see docs/performance.md)
	$(BIN)/python bench/run_all.py

bench-detection: install ## regenerate the labelled corpus, score feedd and the baseline; then the real corpora
	$(BIN)/python bench/detection/run.py
	$(BIN)/python bench/detection/corpora.py

bench-corpora: install ## feedd and three baselines on every real corpus of ../shared/corpora, one table
	$(BIN)/python bench/detection/corpora.py

package-check: install ## build a wheel, install it in a clean venv, run feedd --help
	bash .ci/package-check

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .coverage
