# The project's habits, one command each. Everything installs itself into .venv and node_modules.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_VERSION_CHECK := true
# Settings for synth, deploy and check-deploy, key=value each (the keys of cdk.json), separated by spaces:
#   make deploy SETTINGS="import:maxInFlight=10 alarms:email=you@example.com"
# passes -c import:maxInFlight=10 -c alarms:email=you@example.com. CONTEXT takes the -c flags themselves.
SETTINGS ?=
CONTEXT ?=
SETTING_FLAGS = $(foreach setting,$(SETTINGS),-c $(setting)) $(CONTEXT)
# A setting without "=" would reach cdk as a key of its own, or swallow the next flag: refused first.
$(foreach setting,$(SETTINGS),$(if $(findstring =,$(setting)),,\
  $(error SETTINGS: $(setting) is not key=value (e.g. SETTINGS="import:maxInFlight=40"))))
# Extra cdk deploy flags; from CI (no terminal): make deploy DEPLOY_FLAGS="--require-approval never"
DEPLOY_FLAGS ?=

.PHONY: install demo test lint types unit synth deploy check-deploy lock bench clean

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt $(wildcard lambdas/*/requirements.txt)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## make demo: synthesize every stack, then run the pipelines in the sandbox
demo: synth
	$(PY) -m sandbox demo

## make test: lint, types, then the whole test suite (one synth per session)
test: install lint types
	$(PY) -m pytest -n 2 --dist loadgroup

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: install
	@echo "mypy: type-checking every package (about a minute on 2 cores, silent until it ends)"
	$(VENV)/bin/mypy

synth: install
	$(CDK) synth --quiet $(SETTING_FLAGS)

deploy: synth
	$(CDK) deploy --all $(SETTING_FLAGS) $(DEPLOY_FLAGS)

## make check-deploy: prove the deployed pipelines answer (CHECK_FLAGS="--sandbox": the local sandbox)
check-deploy: install
	$(PY) -m deploycheck $(SETTING_FLAGS) $(CHECK_FLAGS)

## make lock: re-pin every Lambda package's distributions for the Lambda platform
lock: install
	$(PY) -m stacks.constructs.python_function lock

bench: install
	$(PY) -m bench

clean:
	rm -rf cdk.out .bench .pytest_cache .mypy_cache .ruff_cache
