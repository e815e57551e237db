# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

SAM_VENV ?= .venv-sam
SAM := SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
# sam build needs a python3.13 interpreter for the python3.13 runtime: pyenv's, or one on PATH.
PY313 := $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) $(shell command -v python3.13 2>/dev/null))

.PHONY: demo test local-stack lint typecheck cfn-lint check sam-validate sam-build bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

## Run the whole job on the local stack (moto server + Polyv simulator): every file in events/.
demo: $(STAMP)
	$(PY) -m devstack.demo

## Run the whole test suite (unit, integration over real HTTP, template lint).
test: $(STAMP)
	$(PY) -m pytest

## Keep the local stack up for the CLI: writes .local-stack.env (Ctrl-C to stop).
local-stack: $(STAMP)
	$(PY) -m devstack.serve

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy functions/prewarm devstack

cfn-lint: $(STAMP)
	$(VENV)/bin/cfn-lint template.yaml

check: lint typecheck test sam-validate

$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet 'aws-sam-cli>=1.120'
	touch $@

## sam validate --lint (the SAM CLI in its own virtual environment).
sam-validate: $(SAM_VENV)/.installed
	$(SAM) validate --lint --region us-east-1

## sam build for python3.13/arm64, where a python3.13 interpreter is available.
sam-build: $(SAM_VENV)/.installed
	@if [ -z "$(PY313)" ]; then echo "sam-build: skipped, no python3.13 (see README: Deploy)"; \
	else PATH="$(dir $(PY313)):$$PATH" $(SAM) build && du -sh .aws-sam/build/PrewarmFunction .aws-sam/build/DependenciesLayer; fi

## The benchmark: one Markdown table, also written to bench/RESULTS.md (not part of make test).
bench: $(STAMP) sam-build
	$(PY) bench/run.py

## The benchmark at small sizes, to prove it still works (CI).
bench-quick: $(STAMP)
	$(PY) bench/run.py --quick --out .bench-quick.md

clean:
	rm -rf $(VENV) $(SAM_VENV) .pytest_cache .mypy_cache .ruff_cache .aws-sam
