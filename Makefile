# Plot Palette: every target runs through uv. `make help` lists them.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PYTEST_ARGS ?=
# uv trusts the system's CA certificates, as curl and git do: installs then work behind a
# proxy whose CA only the system knows (as on the development machines). UV_SYSTEM_CERTS=0 undoes it.
export UV_SYSTEM_CERTS ?= 1

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

uv: ## Install uv if it is missing
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --quiet --user uv || python3 -m pip install --quiet --break-system-packages --user uv

install: uv ## Install the workspace, its test and lint tools (uv.lock), build the web page (package-lock.json) and install Chromium where missing
	@$(UV) sync --frozen --quiet
	@$(UV) run python -m tools.ui
	@$(UV) run python -m tools.chromium

demo: install ## Run a real two-step job end to end on the one-machine stack
	@$(UV) run python -m palette.cli.demo

# Two pytest workers (pytest-xdist), each with its own dev stack, services and RabbitMQ vhost;
# a file's tests stay on one worker. A worker that gets a fault file also starts the fault
# suite's own RabbitMQ node and stack (the cases stop and kill only those), so the quick fault
# cases run beside the rest. TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2

test: install ## Lint, type-check, the page's unit tests, then the unit, integration, browser and deploy tests (2 workers) and the quick fault cases
	@$(UV) run ruff check .
	@$(UV) run ruff format --check .
	@$(UV) run mypy libs/common/src libs/devstack/src libs/cli/src services/gateway/src services/scheduler/src services/generator/src services/accounting/src bench
	@cd services/gateway/ui && npm test --silent
	@$(UV) run pytest -m "(not faults or quick) and not e2e and not long" -n $(TEST_WORKERS) --dist loadfile --durations=20 $(PYTEST_ARGS)

bench: install ## The benchmarks against their targets (~21 min on 2 cores, of which ~10 the quota figures; ARGS=--quick: ~2 min, without them): table, bench/results/latest.json, docs/benchmarks.md
	@$(UV) run --group bench python -m bench $(ARGS)

bench-quick: install ## The quick benchmark run (~2 min; indicative sizes)
	@$(UV) run --group bench python -m bench --quick $(ARGS)

test-unit: install ## Unit tests only (no I/O), the page's too
	@$(UV) run pytest tests/unit -m unit $(PYTEST_ARGS)
	@cd services/gateway/ui && npm test --silent

ui: uv ## Build the web page now (make install does when its sources change)
	@$(UV) run python -m tools.ui --force

test-browser: install ## The page in headless Chromium against the real stack (also in make test)
	@$(UV) run pytest tests/browser -m browser $(PYTEST_ARGS)

test-e2e: install ## The palette command end to end: run, Ctrl-C, --json, errors, the live view on a pty, data kept across down/up and kill -9, make demo (~10 min)
	@$(UV) run pytest -m e2e $(PYTEST_ARGS)

test-long: install ## The slow integration and browser cases make test leaves out (-m long: the 2-generator quota group, the quota page, the README's shell blocks, a job's metrics, a job without generators, JWKS sign-in; ~6 min)
	@$(UV) run pytest -m "long and not faults" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-faults: install ## The full fault suite
	@$(UV) run pytest tests/faults -m faults $(PYTEST_ARGS)

lint: install ## Ruff and mypy
	@$(UV) run ruff check .
	@$(UV) run mypy libs/common/src libs/devstack/src libs/cli/src services/gateway/src services/scheduler/src services/generator/src services/accounting/src bench

test-deploy: install ## Offline checks of the Dockerfile, compose file and Kubernetes manifests
	@$(UV) run pytest tests/deploy -m deploy $(PYTEST_ARGS)

test-image: install ## Build the Dockerfile (Docker, else podman) and run each service from it on RabbitMQ and the dev stack: /health, /ready, one job (minutes; not in make test)
	@UV=$(UV) $(UV) run python -m tools.image $(ARGS)

docs: install ## Regenerate the AsyncAPI documents (docs/asyncapi/) and .env.example
	@$(UV) run python -m tools.asyncapi
	@$(UV) run python -m tools.env_example

env-example: install ## Regenerate .env.example from the settings classes and docker-compose.yml
	@$(UV) run python -m tools.env_example

format: install ## Format the code
	@$(UV) run ruff format .
	@$(UV) run ruff check --fix .

.PHONY: help uv install ui test-browser demo test bench bench-quick test-unit test-e2e test-long test-faults test-deploy test-image docs env-example lint format
