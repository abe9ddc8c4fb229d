PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-services test-long lint install clean bench bench-quick

# The stamp is rebuilt only when pyproject.toml changes, so installs happen when needed and only then.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/agents-run demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The servers of the services-mode pass (the same variables as tests/services.py).
TEST_REDIS_URL := $(or $(AGENTS_RUN_TEST_REDIS_URL),redis://127.0.0.1:6379/0)
TEST_POSTGRES_URL := $(or $(AGENTS_RUN_TEST_POSTGRES_URL),postgresql://postgres@127.0.0.1:5432/test)

test: lint
	$(BIN)/pytest -n 2 --repeat-deterministic=3
	$(MAKE) --no-print-directory test-services

# The integration and end-to-end suites again in services mode: every test on the real servers,
# in a namespace of its own. Skipped with the reason where they do not answer; a failure where
# AGENTS_RUN_REQUIRE_SERVICES=1.
test-services: install
	@$(BIN)/python -m tests.services; status=$$?; \
	if [ $$status -eq 2 ]; then exit 0; elif [ $$status -ne 0 ]; then exit $$status; fi; \
	set -x; AGENTS_RUN_BUS_URL='$(TEST_REDIS_URL)' AGENTS_RUN_QUEUE_URL='$(TEST_REDIS_URL)' \
	AGENTS_RUN_STORE_URL='$(TEST_POSTGRES_URL)' \
	$(BIN)/pytest --agents-run-services -n 2 --repeat-deterministic=3 tests/integration tests/e2e

# The long forms of the reliability tests (docs/reliability.md): 10,000 generated interleavings,
# 20 worker kills, the long fault and load tests, on the servers of test-services. Not part of
# `make test` (about 10 minutes here).
test-long: install
	AGENTS_RUN_INTERLEAVINGS=10000 AGENTS_RUN_LONG_FAULTS=1 \
	AGENTS_RUN_TEST_REDIS_URL='$(TEST_REDIS_URL)' AGENTS_RUN_TEST_POSTGRES_URL='$(TEST_POSTGRES_URL)' \
	$(BIN)/pytest -p no:randomly -s tests/integration/test_stream_interleavings.py tests/faults

# Benchmarks (docs/benchmarks.md): never part of `make test`. QUICK=1 for a smoke run; the
# servers as for test-services.
bench: install
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	AGENTS_RUN_TEST_REDIS_URL='$(TEST_REDIS_URL)' AGENTS_RUN_TEST_POSTGRES_URL='$(TEST_POSTGRES_URL)' \
	$(BIN)/python -m benchmarks $(if $(QUICK),--quick) $(IDS)

bench-quick:
	$(MAKE) --no-print-directory bench QUICK=1

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .import_linter_cache
