# Two commands for a new user: `make run` (serve a demo on http://127.0.0.1:8000) and
# `make test` (ruff, mypy, pytest). Both create .venv on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
# Threads per worker: 1 serves with sync workers, more with gthread (README, Serving).
THREADS ?= $(or $(CONSENT_LEDGER_THREADS),8)

# The outside witness the tests run (aics-witness from PyPI) needs Python 3.12: a python3.12 on
# PATH that runs (a pyenv shim may not), else the newest 3.12 pyenv has; override with
# `make WITNESS_PYTHON=/path/to/python3.12 test`. Without one, the witness tests are skipped
# (and fail when REQUIRE_WITNESS=1, as in CI).
WITNESS_PYTHON ?= $(or $(shell python3.12 -c 'import sys; print(sys.executable)' 2>/dev/null),$(lastword $(sort $(wildcard $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions/3.12*/bin/python))))
WITNESS_VENV ?= .venv-witness

.PHONY: run test lint typecheck bench clean witness-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/consent-ledger init
	$(BIN)/consent-ledger demo --url http://$(HOST):$(PORT)
	$(BIN)/consent-ledger serve --host $(HOST) --port $(PORT) --workers $(WORKERS) --threads $(THREADS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

$(WITNESS_VENV)/.installed:
	$(WITNESS_PYTHON) -m venv $(WITNESS_VENV)
	$(WITNESS_VENV)/bin/pip install --quiet aics-witness==0.1.0 aics-tlog==0.2.1
	touch $@

witness-venv:
	@if [ -n "$(WITNESS_PYTHON)" ]; then \
		$(MAKE) --no-print-directory $(WITNESS_VENV)/.installed; \
	elif [ "$$REQUIRE_WITNESS" = 1 ]; then \
		echo "make: no Python 3.12 found for the witness tests (set WITNESS_PYTHON)" >&2; exit 1; \
	else \
		echo "make: no Python 3.12 found (set WITNESS_PYTHON): the witness tests will be skipped" >&2; \
	fi

test: lint typecheck witness-venv
	WITNESS_VENV=$(abspath $(WITNESS_VENV)) $(BIN)/pytest

# Benchmarks (not tests): each prints its figures against a baseline measured in the same run.
# bench_scale builds 10k/100k/1M-entry logs once (about 5 minutes, 900 MB in bench/.cache).
bench: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_engine.py
	$(BIN)/python bench/bench_appends.py
	$(BIN)/python bench/bench_http.py
	$(BIN)/python bench/bench_wrk.py
	$(BIN)/python bench/bench_log.py
	$(BIN)/python bench/bench_verify.py
	$(BIN)/python bench/bench_record.py
	$(BIN)/python bench/bench_scale.py --sizes 10000,100000,1000000 --memory

clean:
	rm -rf $(VENV) $(WITNESS_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
