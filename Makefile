# The two quick-start commands of the README are `make run` and `make test`.
# Both create .venv and install what they need, so they work on a fresh machine
# with Python 3.11, pip, Node and npm (Azurite is installed from npm by the tests).

PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test install install-test system-packages lint bench bench-quick clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -q -e .

install-test: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'

# Debian tools some tests use as validators (systemd-analyze for deploy/systemd).
system-packages:
	@sh .ci/system-packages.sh

run: install
	$(BIN)/statepump run

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install-test system-packages lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: install-test
	$(BIN)/python -m bench

bench-quick: install-test
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .tools .statepump .pytest_cache .mypy_cache .ruff_cache
