# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test local-stack lint typecheck cfn-lint check clean

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

cfn-## Keep the local stack up for the CLI: writes .local-stack.env (Ctrl-C to stop).
local-stack: $(STAMP)
	$(PY) -m devstack.serve

lint: $(STAMP)
	$(VENV)/bin/cfn-lint template.yaml

check: lint typecheck test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .aws-sam
