# Nexus developer commands. `make` alone lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app nexus
PIP_COMPILE := $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links --no-emit-trusted-host
STAMP := $(VENV)/.installed

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): requirements-dev.txt requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -c 'import sys; sys.exit(not (3, 11, 2) <= sys.version_info < (3, 14))' \
		|| { echo "Nexus needs CPython 3.11.2 to 3.13; $(PYTHON) is $$($(PYTHON) -V 2>&1). Try: make $(MAKECMDGOALS) PYTHON=python3.12" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --editable .
	touch $@

.PHONY: venv
venv: $(STAMP) ## Create .venv with the locked dependencies (other targets do this first)

.PHONY: dev
dev: $(STAMP) ## Run web + worker on real PostgreSQL and Redis (started here unless DATABASE_URL/REDIS_URL are set)
	$(BIN)/python -m nexus_dev.devstack

.PHONY: serve
serve: $(STAMP) ## Run the app under gunicorn (NEXUS_SERVER=granian: granian), JSON logs, on :8000, against the make dev servers
	GUNICORN_BIND=$${GUNICORN_BIND:-127.0.0.1:8000} NEXUS_LOG_FORMAT=$${NEXUS_LOG_FORMAT:-json} \
		$(BIN)/python -m nexus.serve

.PHONY: up
up: ## Build and start the Docker Compose stack, wait for /healthz, print the URL (needs Docker and python3 only)
	PYTHONPATH=src $(PYTHON) -m nexus_dev.compose up

.PHONY: down
down: ## Stop the Docker Compose stack (its data stays in the postgres-data and redis-data volumes)
	docker compose down

.PHONY: logs
logs: ## Follow the Docker Compose stack's logs
	docker compose logs --follow --tail=100

OVERLAY ?= prod
KUBECTL ?= kubectl
K8S_CHECK := deploy/kubernetes/check

.PHONY: k8s
k8s: ## Print the rendered Kubernetes manifests (prod; OVERLAY=dev for the other), for kubectl apply -f -
	@command -v $(KUBECTL) >/dev/null || { echo "make k8s needs kubectl (Debian: apt-get install kubernetes-client)" >&2; exit 1; }
	@test -d deploy/kubernetes/overlays/$(OVERLAY) || { echo "no overlay '$(OVERLAY)': dev or prod" >&2; exit 1; }
	@$(KUBECTL) kustomize deploy/kubernetes/overlays/$(OVERLAY) 2>/dev/null \
		|| $(KUBECTL) kustomize deploy/kubernetes/overlays/$(OVERLAY)

.PHONY: k8s-check
k8s-check: $(STAMP) ## Render every overlay and check it offline: Kubernetes and KEDA schemas, checkov, the manifest tests
	test -x .venv-k8s/bin/checkov || { $(PYTHON) -m venv .venv-k8s && \
		.venv-k8s/bin/python -m pip install --quiet --require-hashes -r $(K8S_CHECK)/requirements.txt; }
	cd $(K8S_CHECK) && npm ci --silent --no-audit --no-fund --ignore-scripts
	.venv-k8s/bin/python $(K8S_CHECK)/check.py $(foreach k,$(KUBECTL) $(KUBECTL_LEGACY),--kubectl $(k))
	KUBECTL=$(KUBECTL) $(BIN)/pytest -p no:cacheprovider -q tests/test_kubernetes.py

.PHONY: test
test: $(STAMP) ## Run the test suite against real PostgreSQL and Redis, with coverage
	$(BIN)/pytest --cov --cov-report=term -m "not docker and not reliability and not contract and not browser" $(PYTEST_ARGS)

.PHONY: bench
bench: $(STAMP) ## Nexus /livez against plain Flask and FastAPI+uvicorn, side by side (needs wrk and make dev's servers)
	test -x .venv-bench/bin/uvicorn || { $(PYTHON) -m venv .venv-bench && \
		.venv-bench/bin/python -m pip install --quiet -r bench/requirements-peers.txt; }
	$(BIN)/python bench/http_throughput.py $(BENCH_ARGS)

.PHONY: reliability
reliability: $(STAMP) ## Hostile input, load and faults against a real stack; results in data/reliability/
	NEXUS_RELIABILITY=$${NEXUS_RELIABILITY:-full} $(BIN)/pytest -m reliability -p no:cacheprovider -s \
		tests/reliability $(PYTEST_ARGS)

.PHONY: contract
contract: $(STAMP) ## Fuzz the running app against its OpenAPI document (schemathesis; anonymous, member, admin)
	$(BIN)/pytest -m contract -p no:cacheprovider -s tests/contract $(PYTEST_ARGS)

.PHONY: test-browser
test-browser: $(STAMP) ## /docs and /admin/jobs in headless Chromium (apt-get install chromium)
	$(BIN)/pytest -m browser -p no:cacheprovider tests/browser $(PYTEST_ARGS)

.PHONY: test-container
test-container: $(STAMP) ## Run `make up` from a clean checkout on the Docker engine and check the stack
	$(BIN)/pytest -m docker -p no:cacheprovider -s tests/test_container.py $(PYTEST_ARGS)

.PHONY: lint
lint: $(STAMP) ## ruff, mypy --strict, the import rules, hadolint, the compose schema, lock-check
	$(BIN)/ruff check src tests bench gunicorn.conf.py .ci deploy
	$(BIN)/ruff format --check src tests bench gunicorn.conf.py .ci deploy
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/hadolint Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	$(MAKE) --no-print-directory lock-check

.PHONY: fmt
fmt: $(STAMP) ## Format and auto-fix with ruff
	$(BIN)/ruff check --fix src tests bench gunicorn.conf.py .ci deploy
	$(BIN)/ruff format src tests bench gunicorn.conf.py .ci deploy

.PHONY: lock
lock: $(STAMP) ## Re-lock requirements*.txt from requirements*.in, keeping existing pins
	$(PIP_COMPILE) --output-file requirements.txt requirements.in
	$(PIP_COMPILE) --output-file requirements-dev.txt requirements-dev.in
	$(PIP_COMPILE) --output-file .ci/requirements-docker.txt .ci/requirements-docker.in
	$(PIP_COMPILE) --output-file $(K8S_CHECK)/requirements.txt $(K8S_CHECK)/requirements.in
	$(BIN)/python .ci/lockcheck.py record requirements.txt requirements-dev.txt .ci/requirements-docker.txt \
		$(K8S_CHECK)/requirements.txt

.PHONY: lock-check
lock-check: $(STAMP) ## Fail if a requirements*.in changed since `make lock`
	$(BIN)/python .ci/lockcheck.py check requirements.txt requirements-dev.txt .ci/requirements-docker.txt \
		$(K8S_CHECK)/requirements.txt

.PHONY: migrate
migrate: $(STAMP) ## Apply database migrations (flask --app nexus db upgrade)
	$(FLASK) db upgrade

.PHONY: worker
worker: $(STAMP) ## Run an RQ worker on the high, default and low queues
	$(FLASK) worker

.PHONY: create-admin
# EMAIL reaches the command through the environment, never pasted into the
# shell line: an address like a"; rm -rf ~; echo " stays an (invalid) address.
create-admin: export NEXUS_CREATE_ADMIN_EMAIL = $(value EMAIL)
create-admin: $(STAMP) ## Create or promote an admin: make create-admin EMAIL=you@example.com (password: NEXUS_ADMIN_PASSWORD or a prompt)
	@test -n "$$NEXUS_CREATE_ADMIN_EMAIL" || { echo "usage: make create-admin EMAIL=you@example.com" >&2; exit 2; }
	$(FLASK) create-admin "$$NEXUS_CREATE_ADMIN_EMAIL"

.PHONY: openapi
openapi: $(STAMP) ## Write the OpenAPI document to data/openapi.json (for client generators; needs no server)
	@mkdir -p data
	DATABASE_URL=$${DATABASE_URL:-postgresql+psycopg://unused@127.0.0.1/unused} \
	REDIS_URL=$${REDIS_URL:-redis://127.0.0.1/0} $(FLASK) openapi --output data/openapi.json
	@echo "wrote data/openapi.json"

.PHONY: mail
mail: $(STAMP) ## List the mail make dev caught (MAIL=N shows message N)
	$(BIN)/python -m nexus_dev.mailcatcher $(if $(MAIL),show $(MAIL),list) \
		--dir $${NEXUS_DEV_DATA_DIR:-data/dev}/mail

.PHONY: psql
psql: $(STAMP) ## Open psql on the dev database
	$(BIN)/python -m nexus_dev.devstack psql

.PHONY: redis-cli
redis-cli: $(STAMP) ## Open redis-cli on the dev Redis
	$(BIN)/python -m nexus_dev.devstack redis-cli

.PHONY: clean
clean: ## Remove caches and coverage files (keeps .venv and data/)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov
