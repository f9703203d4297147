# Everything a newcomer needs is installed by these targets: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
AIRFLOW_VERSION ?= 3.3.2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-airflow-$(AIRFLOW_VERSION)
# The oldest supported Airflow: the unit suite runs there too, so compatibility is proven.
OLDEST_AIRFLOW ?= 3.0.6
EXTRA_PINS ?=

.PHONY: install demo test test-integration lint unit test-oldest-airflow docs e2e-distributed clean bench bench-backfill

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "apache-airflow==$(AIRFLOW_VERSION)" $(EXTRA_PINS) -e ".[dev]"
	touch $@

install: $(STAMP)

## The main job: emulator + example DAG through `airflow dags test`, prints request id, URL and saved video.
demo: install
	$(BIN)/python scripts/demo.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# The two test tiers (README "Testing"); the markers are registered in pyproject.toml.
INTEGRATION := integration or e2e
# pytest-xdist workers of `make test` (auto: one per CPU); PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= auto

## Tier 1, every change (a few minutes on 2 cores): lint, types, unit and contract tests (the emulator over
## real HTTP, triggers run in-process, `airflow dags test` runs), spread over CPUs by pytest-xdist.
test: lint
	$(BIN)/pytest -m "not ($(INTEGRATION))" -n $(PYTEST_WORKERS) --dist loadfile

## Tier 2, CI and before a release: real engines (scheduler + triggerer, the fault matrix, the local-run
## guide, the 50-row backfill), the docs and wheel builds, then the unit suite on the oldest supported Airflow.
test-integration: install
	$(BIN)/pytest -m "$(INTEGRATION)"
	$(MAKE) test-oldest-airflow

## Unit tests only (no Airflow metadata DB); used for the oldest-Airflow compatibility run.
unit: install
	$(BIN)/pytest tests/unit tests/hook tests/emulator tests/operators tests/triggers tests/sensors tests/persist tests/lineage \
		-m "not airflow_cli and not ($(INTEGRATION))" -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile

## universal-pathlib<0.3: what Airflow 3.0's own constraints pin; 0.3 breaks its ObjectStoragePath.
test-oldest-airflow:
	$(MAKE) install unit VENV=.venv-airflow-$(OLDEST_AIRFLOW) AIRFLOW_VERSION=$(OLDEST_AIRFLOW) \
		EXTRA_PINS='"universal-pathlib<0.3"'


DOCS_STAMP := $(VENV)/.installed-docs

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e ".[docs]"
	touch $@

## Sphinx docs, warnings as errors; -n also fails on any broken internal reference.
docs: $(DOCS_STAMP)
	$(BIN)/sphinx-build -W --keep-going -n -q -b html docs docs/_build/html

## Distributed Airflow on 127.0.0.1: CeleryExecutor + PostgreSQL + Redis (OS packages; apt-get when missing
## and root), api-server, scheduler, dag-processor, 2 Celery workers, 2 triggerers; a triggerer and a worker
## SIGKILLed mid-job. Settings: scripts/distributed/airflow_env.sh. About 5 minutes.
E2E_STAMP := $(VENV)/.installed-e2e

$(E2E_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q "apache-airflow==$(AIRFLOW_VERSION)" -e ".[e2e]"
	touch $@

e2e-distributed: $(E2E_STAMP)
	$(BIN)/python scripts/distributed/run_e2e.py

## Benchmarks: prints tables, writes docs/performance.rst + benchmarks/results.json (about 20 min on 2 cores).
## BENCH_ARGS=--quick: N = 100 and 1,000 only (about 5 min), prints without rewriting the page.
bench: install
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

## Backfill at the vendor's limits: a real scheduler + triggerer (LocalExecutor, PostgreSQL metadata DB) run
## the asset backfill over 1,000 rows against the emulator (20 concurrent jobs), the provider's example DAG
## beside the http-provider DAG, vendor in queue and in refuse mode. Prints the table, writes
## benchmarks/backfill_results.json and the backfill section of docs/performance.rst. Not part of `make test`.
## BENCH_ARGS="--rows 100 --mode queue": a smaller run that only prints. BENCH_ARGS=--render: rewrite the section
## from the saved figures (after `make bench` regenerated the rest of the page).
bench-backfill: $(E2E_STAMP)
	$(BIN)/python benchmarks/backfill_bench.py $(BENCH_ARGS)

clean:
	rm -rf .venv .venv-airflow-* build *.egg-info .pytest_cache .mypy_cache .ruff_cache demo-output
