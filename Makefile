# useraudit developer entry points. Each target does its own set-up, so on a
# fresh Debian machine (as root) `make test` or `make demo` is all it takes.
#
#   make test    venv + system packages, a real OpenSearch node on
#                127.0.0.1:$(OPENSEARCH_PORT), the whole pytest suite, node stopped
#                again (also when tests fail); exit code is pytest's.
#   make demo    venv (python3-venv if missing), then `useraudit demo`
#   make bench   the benchmarks (python -m bench.NAME) against such a node
#   make lint    ruff
#
# Variables: OPENSEARCH_PORT (9200-9299), OPENSEARCH_HOME, OPENSEARCH_HEAP,
# PYTEST_ARGS, BENCHES, BENCH_ARGS_<name>, e.g.
#   make test OPENSEARCH_PORT=9280 PYTEST_ARGS='-x tests/webapp'
#   make bench BENCHES=search BENCH_ARGS_search='--events 20000 --rounds 5'

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
export DEBIAN_FRONTEND := noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK := 1

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UA := $(VENV)/bin/useraudit
# Re-install when the project's metadata changes, not on every run.
STAMP := $(VENV)/.useraudit-installed

OPENSEARCH_PORT ?= 9250
OPENSEARCH_HOME ?= $(CURDIR)/.useraudit/test-opensearch
OPENSEARCH_HEAP ?= 1g
OPENSEARCH_URL = http://127.0.0.1:$(OPENSEARCH_PORT)
PYTEST_ARGS ?=
# `python -m bench.NAME` for each; each prints its result as one JSON line.
# bench.chaos starts (and restarts) its own node. Extra arguments per
# benchmark: BENCH_ARGS_search='--events 200000', say.
BENCHES ?= middleware indexer search backends export chaos
# the option by which each benchmark takes the node's URL
BENCH_URL_OPT_indexer := --url
BENCH_URL_OPT_search := --opensearch
BENCH_URL_OPT_backends := --opensearch
BENCH_URL_OPT_export := --opensearch
bench_cmd = $(PY) -m bench.$(1) $(if $(BENCH_URL_OPT_$(1)),$(BENCH_URL_OPT_$(1)) $(OPENSEARCH_URL)) $(BENCH_ARGS_$(1))

.PHONY: help test demo bench lint deps system-deps test-system-deps java-maven venv

help:
	@sed -n '1,14p' Makefile | sed 's/^# \{0,1\}//'

# -- set-up ------------------------------------------------------------------

# Debian packages, installed only when missing (apt-get needs root):
# python3 + venv for the virtualenv; for the tests also chromium (browser
# tests drive it through Playwright; we never run `playwright install`) and
# docker-compose (to validate docker-compose.yml).
define apt_ensure
	@missing=(); \
	for pair in $(1); do \
	  cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	  if [ "$$cmd" = ensurepip ]; then \
	    [ -x $(PY) ] || $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing+=("$$pkg"); \
	  else \
	    command -v "$$cmd" >/dev/null || missing+=("$$pkg"); \
	  fi; \
	done; \
	if [ $${#missing[@]} -gt 0 ]; then \
	  echo ">> installing Debian packages: $${missing[*]}"; \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "ERROR: need root to apt-get install $${missing[*]} (or install them yourself)" >&2; \
	    exit 1; \
	  fi; \
	  apt-get update -q; \
	  apt-get install -y -q "$${missing[@]}"; \
	fi
endef

system-deps:
	$(call apt_ensure,$(PYTHON):python3 ensurepip:python3-venv)

test-system-deps: system-deps
	$(call apt_ensure,chromium:chromium docker-compose:docker-compose)

# The OpenSearch test node runs on Java and fetches its jars with Maven.
java-maven:
	@ok=1; \
	if ! command -v java >/dev/null && [ -z "$${JAVA_HOME:-}$${USERAUDIT_OPENSEARCH_JAVA_HOME:-}" ]; then \
	  echo "ERROR: Java 17+ not found: the OpenSearch test node needs it." >&2; ok=0; fi; \
	if ! command -v mvn >/dev/null; then \
	  echo "ERROR: Maven (mvn) not found: it fetches the OpenSearch test node's jars." >&2; ok=0; fi; \
	if [ $$ok = 0 ]; then \
	  echo "       On Debian: apt-get install -y openjdk-17-jdk-headless maven" >&2; exit 1; fi

$(STAMP): pyproject.toml
	@if [ ! -x $(PY) ]; then echo ">> creating $(VENV)"; $(PYTHON) -m venv $(VENV); fi
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

venv: system-deps $(STAMP)

deps: venv test-system-deps java-maven

# -- targets -------------------------------------------------------------------

# Start the node (idempotent), always stop it on the way out (trap), run $(1),
# and exit with its code; exit 5 (pytest: no tests collected) counts as failure.
define with_node
	@stop() { $(UA) opensearch stop --home "$(OPENSEARCH_HOME)" || true; }; \
	trap stop EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; \
	$(UA) opensearch start --port $(OPENSEARCH_PORT) --home "$(OPENSEARCH_HOME)" \
	  --heap $(OPENSEARCH_HEAP); \
	rc=0; \
	export USERAUDIT_TEST_OPENSEARCH=$(OPENSEARCH_URL); \
	$(1) || rc=$$?; \
	if [ $$rc = 5 ]; then echo "ERROR: exit 5: pytest collected no tests" >&2; rc=1; fi; \
	exit $$rc
endef

test: deps
	$(call with_node,$(PY) -m pytest $(PYTEST_ARGS))

bench: deps
	$(call with_node,{ $(foreach b,$(BENCHES),echo ">> python -m bench.$(b)" && $(call bench_cmd,$(b)) &&) true; })

demo: venv
	$(UA) demo

lint: venv
	$(VENV)/bin/ruff check .
