# The two quick-start commands of the README are `make run` and `make test`.
# Both create .venv and install what they need: `make run` needs Python 3.11 and
# pip only; `make test` also needs Node and npm (the tests install Azurite from npm).
# Each install runs again only when pyproject.toml changes (a stamp file in .venv;
# the install is editable, so changed code needs none). Flags reach the command
# through ARGS: make run ARGS="--listen 127.0.0.1:8080".

PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
ARGS ?=

.PHONY: run test install install-test system-packages lint bench bench-quick clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

# The test run includes `python -m bench --quick`, so it installs the bench extra too.
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

# Debian packages the tests use: systemd-analyze (validates deploy/systemd), and
# PostgreSQL and Redis (the anchors of bench figures 1 and 5).
system-packages:
	@sh .ci/system-packages.sh

run: install
	$(BIN)/statepump run $(ARGS)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install-test system-packages lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: install-test system-packages
	$(BIN)/python -m bench

bench-quick: install-test system-packages
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .tools .statepump .pytest_cache .mypy_cache .ruff_cache
