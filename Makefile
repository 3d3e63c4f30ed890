# Every target is self-sufficient on a fresh machine: each one runs `setup` first,
# and `setup` skips what is already in place.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
ENV := . scripts/env.sh &&
PY := .venv/bin/python
STACK ?= local
# apt-get needs root: CI runners and workstations use sudo, containers run as root.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: help setup venv engine system-packages test-packages kube-tools lock up preview destroy refresh test test-fast lint policy schema bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

setup: ## Install everything: virtualenv, Pulumi engine, Prometheus (in parallel)
	@$(MAKE) --no-print-directory -j3 venv engine system-packages

venv: .venv/.installed
.venv/.installed: pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

engine: ## Build the Pulumi CLI and Python language host from their Go modules into bin/
	scripts/build-engine.sh

# The kube target's toolchain is not part of `setup`: only the kube stack and its tests need it.
KUBE_TOOLS := $(if $(filter kube,$(STACK)),kube-tools)
kube-tools: ## Build etcd, the Kubernetes control plane, kwok and the pulumi-kubernetes provider into .kube-tools/ (long the first time)
	scripts/build-kube-tools.sh
	scripts/fetch-kube-crds.sh

system-packages: ## Debian packages the local target needs (Prometheus)
	@command -v prometheus >/dev/null || { \
	  echo "installing prometheus (Debian package)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

test-packages: ## Debian packages only the tests need (headless Chromium for the dashboard and reports; CI runners' Chrome will do)
	@command -v chromium >/dev/null || command -v google-chrome >/dev/null || { \
	  echo "installing chromium (Debian package, headless browser for the tests)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# Each stack is selected with `llmops ci select`: a local-target stack is created on first
# use, a cloud stack never (`pulumi stack select --create` would rewrite its committed stack
# file: comments and secrets provider gone, a passphrase salt added); its message says how.
# An environment split into stacks (`llmops:layout: split`) is its platform stack, then a stack
# per model (`llmops stacks STACK` lists them); destroy takes them in the reverse order.
EACH = stacks=$$(llmops stacks $(STACK)) && for s in $$stacks; do
EACH_REVERSED = stacks=$$(llmops stacks --reverse $(STACK)) && for s in $$stacks; do

up: setup $(KUBE_TOOLS) ## Deploy the local stack: train, serve and monitor the tiny model
	$(ENV) cfg=$$($(PY) -m policies.enforcement $(STACK)) && $(EACH) llmops ci select --stack $$s \
	  && pulumi up --stack $$s --yes --skip-preview --policy-pack policies/pack --policy-pack-config "$$cfg" || exit 1; done
	@$(ENV) llmops outputs --stack $(STACK)

preview: setup $(KUBE_TOOLS) ## Preview STACK (default local) under the policy pack
	$(ENV) cfg=$$($(PY) -m policies.enforcement $(STACK)) && $(EACH) llmops ci select --stack $$s \
	  && pulumi preview --stack $$s --policy-pack policies/pack --policy-pack-config "$$cfg" --diff || exit 1; done

policy: preview ## Alias: preview with policies

refresh: setup $(KUBE_TOOLS) ## Refresh STACK from what is really running
	$(ENV) $(EACH) llmops ci select --stack $$s --existing && pulumi refresh --stack $$s --yes || exit 1; done

destroy: setup $(KUBE_TOOLS) ## Stop and remove everything STACK deployed
	$(ENV) $(EACH_REVERSED) llmops ci select --stack $$s --existing && pulumi destroy --stack $$s --yes || exit 1; done

test: setup test-packages kube-tools ## The whole test suite (unit, mocks, policy, engine, gitops, kube)
	$(ENV) scripts/test-suite.sh

test-fast: setup ## Everything but the engine tests
	$(ENV) $(PY) -m pytest -m "not engine"

lint: setup ## ruff, mypy, registry validation, schema freshness
	$(ENV) ruff check . && ruff format --check . && mypy && llmops registry validate && llmops registry schema --check

schema: setup ## Regenerate models/schema.json from the registry model
	$(ENV) llmops registry schema --write

bench: setup ## Benchmarks, each beside its goal (QUICK=1: smallest sizes, to check they run)
	@$(ENV) failed=""; for b in benchmarks/bench_*.py; do echo "== $$b"; \
	  $(PY) $$b $(if $(QUICK),--quick) || failed="$$failed $$b"; done; \
	  if [ -n "$$failed" ]; then echo "failed:$$failed"; exit 1; fi

lock: venv ## Regenerate requirements.lock from the virtualenv after changing pyproject.toml
	{ echo "# Exact versions the project is tested with (pip constraints). Regenerate: make lock"; \
	  $(PY) -m pip freeze --exclude-editable | sort -f; } > requirements.lock

clean: ## Remove local state (stops nothing: run `make destroy` first)
	rm -rf .state .pulumi
