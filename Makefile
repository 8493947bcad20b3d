# driftline: every target does its own set-up on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.driftline-installed

.DEFAULT_GOAL := help
.PHONY: help setup jars demo test test-confluent test-registry-http test-fast lint typecheck check schemas bench clean broker-start broker-stop compose-test

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@scripts/system-deps.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv and install driftline with its dev extra
	@$(BIN)/driftline broker fetch

demo: setup ## Run the demo on the embedded defaults (local broker, SQLite)
	$(BIN)/driftline demo

test: setup ## Run the whole test suite against a real broker, services reaching a registry service over HTTP (SQLite), then the `backends` tests on confluent-kafka and the `registry_http` tests on PostgreSQL
	@scripts/system-deps.sh --postgres
	$(BIN)/python -m pytest
	$(MAKE) test-confluent
	$(MAKE) test-registry-http

test-confluent: setup ## Run the tests marked `backends` (delivery, crash, rebalance) with DRIFTLINE_KAFKA_CLIENT=confluent
	DRIFTLINE_KAFKA_CLIENT=confluent $(BIN)/python -m pytest -m backends tests/integration

test-registry-http: setup ## Run the tests marked `registry_http` with their registry service on PostgreSQL (the suite's default is SQLite)
	@scripts/system-deps.sh --postgres
	DRIFTLINE_TEST_REGISTRY=http-postgresql $(BIN)/python -m pytest -m registry_http tests/integration

test-fast: setup ## Run only the tests that need no broker
	$(BIN)/python -m pytest -m "not integration"

lint: setup ## ruff
	$(BIN)/ruff check .

typecheck: setup ## mypy (strict)
	$(BIN)/mypy

check: lint typecheck ## ruff and mypy

schemas: setup ## Re-export the JSON Schemas under schemas/json/
	$(BIN)/driftline schemas export

bench: setup ## Run every benchmark and write bench/RESULTS.md
	$(BIN)/python -m bench all --write bench/RESULTS.md

broker-start: setup ## Start the local Kafka broker
	$(BIN)/driftline broker start

broker-stop: setup ## Stop the local Kafka broker
	$(BIN)/driftline broker stop

clean: ## Remove the venv and local state
	-$(BIN)/driftline broker stop
	rm -rf $(VENV) .driftline .mypy_cache .ruff_cache .pytest_cache

compose-test: setup ## Build the images and run docker-compose.yml for real (podman; minutes)
	@scripts/system-deps.sh --containers
	DRIFTLINE_COMPOSE_TEST=1 $(BIN)/python -m pytest tests/compose -s -p no:randomly -o addopts="-ra --strict-markers --import-mode=importlib"
