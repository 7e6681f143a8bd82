# Fraud Detection Studio: the single entry point.
#   make run    create .venv, install, fetch the data set if absent, serve app + API on one port
#   make test   create/update .venv with the test extras and run pytest
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 5006
ADDRESS ?= localhost
PYTEST_ARGS ?=
DATA_DIR ?= $(or $(FRAUD_APP_DATA_DIR),data)

.PHONY: run test venv venv-test data bench screenshots clean help

help:
	@echo "make run      serve the app and the REST API on http://$(ADDRESS):$(PORT)"
	@echo "make test     run the test suite"
	@echo "make data     fetch the real data set into $(DATA_DIR)/creditcard.parquet"
	@echo "make bench    run every benchmark in bench/ on the real data set"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[postgres]"
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[test,postgres]"
	touch $@ $(VENV)/.installed

venv: $(VENV)/.installed
venv-test: $(VENV)/.installed-test

data: venv
	@if [ "$${FRAUD_APP_DATASET:-real}" = "synthetic" ]; then \
		echo "FRAUD_APP_DATASET=synthetic: no data set to fetch"; \
	elif [ -f "$(DATA_DIR)/creditcard.parquet" ]; then \
		echo "data set present: $(DATA_DIR)/creditcard.parquet"; \
	else \
		$(PY) -m fraud_app data fetch; \
	fi

run: venv data
	@echo ""
	@echo "  App: http://$(ADDRESS):$(PORT)/app"
	@echo "  API: http://$(ADDRESS):$(PORT)/api/health  (reference: README.md#rest-api)"
	@echo ""
	$(VENV)/bin/panel serve app.py --plugins fraud_app.api --auth-module fraud_app/token_login.py --warm \
		--port $(PORT) --address $(ADDRESS) \
		--allow-websocket-origin=$(ADDRESS):$(PORT) --index app

test: venv-test
	$(PY) -m pytest $(PYTEST_ARGS)

bench: venv-test data
	$(PY) -m pip install --quiet -e ".[test,postgres,bench]"
	$(PY) -m bench.run_all

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
