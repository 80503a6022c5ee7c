# evcharge — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

# The test suite runs against real PostgreSQL and Redis (defaults: the local servers).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/evcharge
TEST_REDIS_URL    ?= redis://127.0.0.1:6379/1

.PHONY: run test lint format bench install install-dev native clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed native
install-dev: $(VENV)/.installed-dev native

## native: the native pricing core (C; optional: without gcc the Python engine prices everything)
native: $(VENV)/.installed
	$(BIN)/python -m billing.native.build

## run: the whole platform on http://127.0.0.1:8000, no servers needed (SQLite, file broker)
run: $(VENV)/.installed native
	DEBUG=$${DEBUG:-1} LOG_FORMAT=$${LOG_FORMAT:-text} $(BIN)/python manage.py runplatform

## test: the whole suite against PostgreSQL and Redis
test: $(VENV)/.installed-dev native
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		SECRET_KEY=$${SECRET_KEY:-insecure-test-only-key-not-for-production-use} $(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: the benchmarks under bench/, each printing a table against its baseline
bench: $(VENV)/.installed-dev native
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		SECRET_KEY=$${SECRET_KEY:-insecure-bench-only-key-not-for-production-use} $(BIN)/python -m bench

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache billing/_pricing_core*.so
