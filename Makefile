# The targets CI and people call. `make demo` runs the hub's main job; `make test` runs the tests.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck check bench clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "$(PY) not found: install Python 3.11"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test,dev,bench]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hub demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check hub connectors tests
	$(BIN)/ruff format --check hub connectors tests

typecheck: $(STAMP)
	$(BIN)/mypy --strict hub connectors

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/hub bench

clean:
	-$(BIN)/hub kafka stop
	-HUB_HOME=.hub/secure-broker HUB_KAFKA_BOOTSTRAP=127.0.0.1:9192 HUB_KAFKA_CONTROLLER_PORT=9193 $(BIN)/hub kafka stop
	rm -rf .hub
