# steppewatch: the entry points the README names.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run pass demo test bench eval venv sources-check freeze clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

## Airflow on this machine (scheduler, DAG processor, triggerer, UI on http://127.0.0.1:8080); Ctrl-C stops it
run: $(STAMP)
	$(BIN)/python scripts/airflow_local.py

## one pass of the pipeline over include/sources.yaml, without Airflow
pass: $(STAMP)
	$(BIN)/steppewatch db upgrade
	$(BIN)/steppewatch run

## one pass over sample sources served from loopback (no internet needed), then the relevant rows
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

## the test suite (needs PostgreSQL on 127.0.0.1:5432, see README)
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## throughput and extraction quality on ../shared/corpus, tagging throughput
bench: $(STAMP)
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.tagging
	$(BIN)/python -m bench.dags

## the tagger against the labelled texts of evaluation/ (and the keyword baseline)
eval: $(STAMP)
	$(BIN)/python -m evaluation.evaluate --set all --json bench-results/eval.json

sources-check: $(STAMP)
	$(BIN)/steppewatch sources check

## re-resolve requirements.txt from pyproject.toml (needs the package index)
freeze:
	rm -rf /tmp/steppewatch-freeze && $(PYTHON) -m venv /tmp/steppewatch-freeze
	/tmp/steppewatch-freeze/bin/pip install --quiet --upgrade pip
	/tmp/steppewatch-freeze/bin/pip install --quiet ".[airflow]" apache-airflow-providers-smtp
	/tmp/steppewatch-freeze/bin/pip freeze --exclude steppewatch > requirements.txt

clean:
	rm -rf $(VENV) .pytest_cache bench-results
