# The two commands of the README, plus the pieces they are made of.
#   make local   set up .venv and run the worker against the embedded AWS (no Docker, no account)
#   make test    set up .venv and the tool venv, then lint, type-check and run the whole suite
#   make check   the inner loop (under a minute): lint, types, unit tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# checkov pins a botocore that clashes with aioboto3's, so it gets a venv of its own.
TOOLS_VENV := .venv-tools

.PHONY: local test check lint typecheck pytest unit lock bench clean

$(STAMP): pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

$(TOOLS_VENV)/bin/checkov: requirements-tools.lock
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install -q --require-hashes -r requirements-tools.lock
	touch $@

local: $(STAMP)
	$(BIN)/mailflow local

lint: $(STAMP)
	$(BIN)/ruff check mailflow tests bench tools
	$(BIN)/ruff format --check mailflow tests bench tools

typecheck: $(STAMP)
	$(BIN)/mypy --strict mailflow

pytest: $(STAMP) $(TOOLS_VENV)/bin/checkov
	$(BIN)/pytest

test: lint typecheck pytest

unit: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/unit

check: lint typecheck unit

# Benchmarks print figures, they are not tests (docs/performance.md): bench/results/latest.md
# and .json. Options through BENCH_ARGS: --quick, --compare DIR, --only SECTION, --out PREFIX.
bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

lock:
	tools/lock.sh

clean:
	rm -rf $(VENV) $(TOOLS_VENV) .mypy_cache .ruff_cache .pytest_cache
