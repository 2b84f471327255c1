# `make test` is the one test command: on a fresh machine it installs the Debian servers the
# tests run for real (PostgreSQL, Redis, Prometheus, Alertmanager, exporters, Chromium),
# creates the virtualenv, builds the pinned OpenTelemetry Collector with Go and runs every
# test. `make test-fast` is the laptop subset: unit tests that start no server.
# `make demo` installs only the [demo] extra into its own virtualenv and runs the demo.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
DEMO_VENV := .venv-demo
DEMO_STAMP := $(DEMO_VENV)/.installed-demo-$(shell sha1sum pyproject.toml | cut -c1-12)
# Tests that need no server, no Collector build and no browser (about a minute).
FAST_TESTS := tests/core tests/queues/test_envelope.py tests/queues/test_hot_metrics.py \
	tests/queues/test_jobs.py tests/test_docs.py tests/test_compose.py

.PHONY: test test-fast demo lint typecheck system-deps venv demo-venv collector bench clean

test: system-deps venv collector lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(PY) -m pytest -m "not slow and not browser" $(FAST_TESTS) $(PYTEST_ARGS)

# Ctrl-C is the documented way to stop the demo: it flushes and exits 0. The demo runs as
# the terminal's foreground job (scripts/foreground.py), so the Ctrl-C reaches it and not
# make, and its exit status is make's.
demo: demo-venv
	@$(DEMO_VENV)/bin/python scripts/foreground.py $(DEMO_VENV)/bin/otel-assist demo $(DEMO_ARGS)

system-deps:
	scripts/install-system-deps.sh

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

demo-venv: $(DEMO_STAMP)

$(DEMO_STAMP): pyproject.toml
	test -x $(DEMO_VENV)/bin/python || $(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install -q --disable-pip-version-check -e '.[demo]'
	rm -f $(DEMO_VENV)/.installed-demo-*
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
	rm -rf $(VENV) $(DEMO_VENV) .pytest_cache .mypy_cache .ruff_cache
