# useraudit developer entry points. Each target does its own set-up, so on a
# fresh Debian machine (as root) `make test` or `make demo` is all it takes.
#
#   make test    venv + system packages, a real OpenSearch node on
#                127.0.0.1:$(OPENSEARCH_PORT), the whole pytest suite, node stopped
#                again (also when tests fail); exit code is pytest's.
#   make demo    .venv-demo with the base install only (python3-venv if missing),
#                then `useraudit demo` (PORT=8080: the admin UI's port)
#   make bench   every benchmark against such a node, via `python -m bench.report`,
#                which writes docs/bench/last-run.md and the plots
#                (BENCH_REPORT_ARGS='--quick' or '--only indexer,search')
#   make regen   rewrite the files generated from the schema (index template,
#                Dashboards objects, field table)
#   make lint    ruff check, ruff format --check, mypy and the import contracts
#                (tests/test_lint.py, tests/test_layers.py)
#
# Variables: OPENSEARCH_PORT (9200-9299), OPENSEARCH_HOME, OPENSEARCH_HEAP,
# PYTEST_ARGS, BENCHES, BENCH_ARGS_<name>, e.g.
#   make test OPENSEARCH_PORT=9280 PYTEST_ARGS='-x tests/webapp'
#   make bench-one B=search BENCH_ARGS_search='--events 20000 --rounds 5'

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
BENCHES ?= middleware indexer search backends export detect sinks api chaos
# the option by which each benchmark takes the node's URL
BENCH_URL_OPT_indexer := --url
BENCH_URL_OPT_sinks := --url
BENCH_URL_OPT_api := --opensearch
BENCH_URL_OPT_search := --opensearch
BENCH_URL_OPT_backends := --opensearch
BENCH_URL_OPT_export := --opensearch
BENCH_URL_OPT_detect := --opensearch
bench_cmd = $(PY) -m bench.$(1) $(if $(BENCH_URL_OPT_$(1)),$(BENCH_URL_OPT_$(1)) $(OPENSEARCH_URL)) $(BENCH_ARGS_$(1))

.PHONY: help test demo bench bench-one bench-deps lint regen deps system-deps test-system-deps java-maven venv \
  browser-test-deps

help:
	@sed -n '1,20p' Makefile | sed 's/^# \{0,1\}//'

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
	$(call apt_ensure,chromium:chromium docker-compose:docker-compose curl:curl valgrind:valgrind)

# The OpenSearch test node runs on Java and fetches its jars with Maven.
java-maven:
	@ok=1; \
	if ! command -v java >/dev/null && [ -z "$${JAVA_HOME:-}$${USERAUDIT_OPENSEARCH_JAVA_HOME:-}" ]; then \
	  echo "ERROR: Java 17+ not found: the OpenSearch test node needs it." >&2; ok=0; fi; \
	if ! command -v mvn >/dev/null; then \
	  echo "ERROR: Maven (mvn) not found: it fetches the OpenSearch test node's jars." >&2; ok=0; fi; \
	if ! command -v javac >/dev/null && [ -z "$${JAVA_HOME:-}$${USERAUDIT_OPENSEARCH_JAVA_HOME:-}" ]; then \
	  echo "ERROR: javac not found: the 3-node cluster test compiles its small launcher class." >&2; ok=0; fi; \
	if [ $$ok = 0 ]; then \
	  echo "       On Debian: apt-get install -y openjdk-17-jdk-headless maven" >&2; exit 1; fi

$(STAMP): pyproject.toml
	@if [ ! -x $(PY) ]; then echo ">> creating $(VENV)"; $(PYTHON) -m venv $(VENV); fi
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

venv: system-deps $(STAMP)

deps: venv test-system-deps java-maven browser-test-deps

# npm packages the chromium tests inject into pages (axe-core), pinned by the
# committed lock file; installed once, again when the lock changes.
BROWSER_TESTS := tests/browser
$(BROWSER_TESTS)/node_modules/.installed: $(BROWSER_TESTS)/package-lock.json
	@command -v npm >/dev/null || { echo "ERROR: npm not found: apt-get install -y npm" >&2; exit 1; }
	npm ci --prefix $(BROWSER_TESTS) --no-audit --no-fund
	@touch $@

browser-test-deps: $(BROWSER_TESTS)/node_modules/.installed

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

# The benchmarks' own needs: wrk (Debian) as the load generator, valgrind
# (Debian) for bench.instructions' counts, and the peers bench.middleware
# compares against (the `bench` extra).
bench-deps: deps
	$(call apt_ensure,wrk:wrk valgrind:valgrind)
	$(PY) -m pip install -q -e '.[bench]'

bench: bench-deps
	$(call with_node,$(PY) -m bench.report --opensearch $(OPENSEARCH_URL) $(BENCH_REPORT_ARGS))

# One benchmark by hand: make bench-one B=search BENCH_ARGS_search='--events 20000'
bench-one: bench-deps
	$(call with_node,$(call bench_cmd,$(B)))

# The demo needs only the base install, in a venv of its own: no dev extras
# (Playwright, mypy, matplotlib, Django...). PORT is the admin UI's port.
DEMO_VENV ?= .venv-demo
DEMO_STAMP = $(DEMO_VENV)/.useraudit-installed
PORT ?= 8080

$(DEMO_STAMP): pyproject.toml
	@if [ ! -x $(DEMO_VENV)/bin/python ]; then echo ">> creating $(DEMO_VENV)"; $(PYTHON) -m venv $(DEMO_VENV); fi
	$(DEMO_VENV)/bin/python -m pip install -q -e .
	@touch $@

demo: system-deps $(DEMO_STAMP)
	$(DEMO_VENV)/bin/useraudit demo --port $(PORT)

# Every tool runs even when an earlier one finds something; mypy and
# import-linter see the installed layout through useraudit/'s symlinks.
lint: venv
	@rc=0; \
	echo ">> ruff check ."; $(VENV)/bin/ruff check . || rc=1; \
	echo ">> ruff format --check ."; $(VENV)/bin/ruff format --check . || rc=1; \
	echo ">> mypy -p useraudit"; $(VENV)/bin/mypy -p useraudit || rc=1; \
	echo ">> lint-imports"; $(VENV)/bin/lint-imports --no-cache || rc=1; \
	exit $$rc

# Files derived from the schema and the catalog: the index template, the
# Dashboards objects, the field table in docs/fields.md (tests/test_regen.py).
regen: venv
	$(PY) tests/support/regen.py

# -- OpenSearch 3.x compatibility (docs/compatibility.md) ---------------------
#
#   make compat  a node of another OpenSearch version (default: runner 3.8.0.0
#                on Java 25) on a free port in 9270-9279, the suites that talk
#                to OpenSearch against it (tests/devnode's cluster runs that
#                version too), node stopped again; the pytest summary goes to
#                $(COMPAT_REPORT). CI keeps testing 2.19 only (`make test`).
#   make compat COMPAT_VERSION=3.0.0.0 COMPAT_TESTS='tests/store'
COMPAT_VERSION ?= 3.8.0.0
COMPAT_JAVA_HOME ?= /usr/lib/jvm/temurin-25-jdk-amd64
COMPAT_PORT ?=
COMPAT_HEAP ?= 512m
COMPAT_HOME ?= $(CURDIR)/.useraudit/compat-opensearch-$(COMPAT_VERSION)
COMPAT_TESTS ?= tests/indexer tests/store tests/devnode tests/index_templates tests/demo
COMPAT_REPORT ?= $(CURDIR)/.useraudit/compat-$(COMPAT_VERSION).txt

.PHONY: compat
compat: deps
	@port="$(COMPAT_PORT)"; \
	if [ -z "$$port" ]; then \
	  for p in $$(seq 9270 9279); do \
	    if ! (exec 3<>/dev/tcp/127.0.0.1/$$p) 2>/dev/null; then port=$$p; break; fi; \
	  done; \
	fi; \
	[ -n "$$port" ] || { echo "ERROR: no free port in 9270-9279" >&2; exit 1; }; \
	stop() { $(UA) opensearch stop --home "$(COMPAT_HOME)" || true; }; \
	trap stop EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; \
	export USERAUDIT_OPENSEARCH_VERSION=$(COMPAT_VERSION); \
	export USERAUDIT_OPENSEARCH_JAVA_HOME=$(COMPAT_JAVA_HOME); \
	$(UA) opensearch start --port $$port --home "$(COMPAT_HOME)" --heap $(COMPAT_HEAP) \
	  --wait 300; \
	export USERAUDIT_TEST_OPENSEARCH=http://127.0.0.1:$$port; \
	mkdir -p "$$(dirname "$(COMPAT_REPORT)")"; \
	served=$$(curl -s "$$USERAUDIT_TEST_OPENSEARCH" | $(PY) -c 'import json,sys; print(json.load(sys.stdin)["version"]["number"])'); \
	{ echo "date: $$(date -u +%FT%TZ)"; echo "opensearch: $$served (runner $(COMPAT_VERSION))"; \
	  echo "java: $$($(COMPAT_JAVA_HOME)/bin/java -version 2>&1 | head -1)"; \
	  echo "command: make compat COMPAT_TESTS='$(COMPAT_TESTS)'"; } > "$(COMPAT_REPORT)"; \
	started=$$(date +%s); set +e; \
	$(PY) -m pytest -p no:cacheprovider -rfE $(COMPAT_TESTS) $(PYTEST_ARGS) 2>&1 \
	  | tee "$(COMPAT_REPORT).log"; \
	rc=$${PIPESTATUS[0]}; set -e; \
	{ echo "seconds: $$(( $$(date +%s) - started ))"; echo "pytest exit: $$rc"; \
	  grep -E '^(FAILED|ERROR) ' "$(COMPAT_REPORT).log" || true; \
	  tail -1 "$(COMPAT_REPORT).log"; } >> "$(COMPAT_REPORT)"; \
	cat "$(COMPAT_REPORT)"; \
	if [ $$rc = 5 ]; then echo "ERROR: exit 5: pytest collected no tests" >&2; rc=1; fi; \
	exit $$rc
