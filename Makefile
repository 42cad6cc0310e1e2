# The two commands of the README: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
HTMX := node_modules/htmx.org/dist/htmx.min.js

.PHONY: serve test lint bench setup
setup: $(INSTALLED) $(HTMX)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(HTMX): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

serve: setup
	$(BIN)/quality-forms serve

test: setup
	$(BIN)/ruff check server tests
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check server tests
	$(BIN)/ruff format --check server tests
