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
# The suite mostly waits on real servers (emulator, Azurite, sidecar processes), so
# it runs in more workers than cores; a test file stays in one worker (its module
# fixtures start once). PYTEST_WORKERS=0 runs it in this process.
PYTEST_WORKERS ?= 4
# Python 3.13 for `make test-py313`, built by .ci/python313.sh (Debian 12 has none).
PY313 := .tools/python3.13/bin/python3.13
VENV313 ?= .venv313
PY313_TESTS ?= tests/core tests/plan tests/emulator tests/eventhubs tests/sources tests/stores
ARGS ?=

.PHONY: run test test-py313 install install-test system-packages lint bench bench-quick clean

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
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

$(PY313):
	sh .ci/python313.sh .tools/python3.13

$(VENV313)/.installed-test: pyproject.toml | $(PY313)
	$(PY313) -m venv $(VENV313)
	$(VENV313)/bin/python -m pip install -q --upgrade pip
	$(VENV313)/bin/python -m pip install -q -e '.[test,bench]'
	touch $@

# CI runs this after `make test`: the pure core and every adapter suite on 3.13,
# where pyrsistent has no C extension (its pure-Python path).
test-py313: $(VENV313)/.installed-test system-packages
	$(VENV313)/bin/python -m bench --python-note
	$(VENV313)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS) $(PY313_TESTS)

bench: install-test system-packages
	$(BIN)/python -m bench

bench-quick: install-test system-packages
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) $(VENV313) .tools .statepump .pytest_cache .mypy_cache .ruff_cache
