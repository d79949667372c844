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

# The test run includes `python -m bench --quick`, so it installs the bench extra too.
install-test: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,bench]'

# Debian packages the tests use: systemd-analyze (validates deploy/systemd), and
# PostgreSQL and Redis (the anchors of bench figures 1 and 5).
system-packages:
	@sh .ci/system-packages.sh

run: install
	$(BIN)/statepump run

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
