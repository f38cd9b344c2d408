# Qunyun: `make run` starts everything, `make test` checks everything.
# Both work on a fresh machine with only Python 3.11, pip and the local Postgres.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/qunyun up

test: install lint
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check services tests
	$(BIN)/ruff format --check services tests
	$(BIN)/mypy services tests

format: install
	$(BIN)/ruff format services tests
	$(BIN)/ruff check --fix services tests

bench: install
	$(BIN)/python -m tests.bench.run_all

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
