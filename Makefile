# Everything a newcomer needs is installed by these targets: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
AIRFLOW_VERSION ?= 3.3.2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-airflow-$(AIRFLOW_VERSION)
# The oldest supported Airflow: the unit suite runs there too, so compatibility is proven.
OLDEST_AIRFLOW ?= 3.0.6

.PHONY: install demo test lint unit test-oldest-airflow docs e2e-distributed clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "apache-airflow==$(AIRFLOW_VERSION)" -e ".[dev]"
	touch $@

install: $(STAMP)

## The main job: emulator + example DAG through `airflow dags test`, prints request id, URL and saved video.
demo: install
	$(BIN)/python scripts/demo.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

## The whole suite on the newest Airflow, plus the unit suite on the oldest supported one.
test: lint
	$(BIN)/pytest
	$(MAKE) test-oldest-airflow

## Unit tests only (no Airflow metadata DB); used for the oldest-Airflow compatibility run.
unit: install
	$(BIN)/pytest tests/unit tests/hook tests/emulator -m "not airflow_cli and not e2e" -q -p no:cacheprovider

test-oldest-airflow:
	$(MAKE) unit VENV=.venv-airflow-$(OLDEST_AIRFLOW) AIRFLOW_VERSION=$(OLDEST_AIRFLOW)

DOCS_STAMP := $(VENV)/.installed-docs

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e ".[docs]"
	touch $@

## Sphinx docs, warnings as errors; -n also fails on any broken internal reference.
docs: $(DOCS_STAMP)
	$(BIN)/sphinx-build -W --keep-going -n -q -b html docs docs/_build/html

clean:
	rm -rf .venv .venv-airflow-* build *.egg-info .pytest_cache .mypy_cache .ruff_cache demo-output
