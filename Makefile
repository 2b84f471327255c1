# The one test command is `make test`: on a fresh machine it installs the Debian servers,
# creates the virtualenv, builds the pinned OpenTelemetry Collector and runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: test demo lint typecheck system-deps venv collector bench clean

test: system-deps venv collector lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

demo: venv
	$(VENV)/bin/otel-assist demo $(DEMO_ARGS)

system-deps:
	scripts/install-system-deps.sh

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

collector:
	@if [ -x collector/build.sh ]; then collector/build.sh; else echo "collector: no build script yet"; fi

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

bench: venv
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
