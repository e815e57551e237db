# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

SAM_VENV ?= .venv-sam
SAM := SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
# sam build needs a python3.13 interpreter for the python3.13 runtime: pyenv's, or one on PATH.
PY313 := $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) $(shell command -v python3.13 2>/dev/null))

TOOLS_VENV ?= .venv-tools
TOOLS := $(TOOLS_VENV)/bin
LAYER := layers/dependencies
# The lock is for the function's runtime: python3.13 on arm64 (Amazon Linux 2023, glibc 2.34).
LOCK_ARGS := --python-version 3.13 --python-platform aarch64-manylinux_2_34 --generate-hashes \
	--custom-compile-command "make lock" --quiet
# Accepted advisories: one per line in $(LAYER)/audit-accepted.txt, "ID  why", '#' for comments.
AUDIT_IGNORES := $(shell sed -n 's/^\([A-Za-z0-9-]\{1,\}\)[[:space:]].*/--ignore-vuln \1/p' $(LAYER)/audit-accepted.txt)

.PHONY: demo test local-stack lint typecheck cfn-lint check sam-validate sam-build sam-build-prerequisites \
	deploy delete bench bench-quick clean lock lock-check scan audit

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m compileall -q functions/prewarm  # bytecode, as make sam-build ships it (see docs/deploy.md)
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
	$(VENV)/bin/mypy functions/prewarm devstack deploy

cfn-lint: $(STAMP)
	$(VENV)/bin/cfn-lint template.yaml

check: lint typecheck test lock-check scan sam-validate

$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet 'aws-sam-cli>=1.120'
	touch $@

# Deploy-posture tools in a virtual environment of their own (checkov's dependencies are many).
$(TOOLS_VENV)/.installed:
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS)/python -m pip install --quiet --upgrade pip
	$(TOOLS)/python -m pip install --quiet 'checkov>=3.2,<4' 'pip-audit>=2.7,<3' 'uv>=0.5,<1'
	touch $@

## Pin the layer: $(LAYER)/requirements.in (ranges) -> requirements.txt (every package, hashes).
## Existing pins are kept; to upgrade: make lock LOCK_ARGS+=--upgrade (or --upgrade-package NAME).
lock: $(TOOLS_VENV)/.installed
	$(TOOLS)/uv pip compile $(LAYER)/requirements.in -o $(LAYER)/requirements.txt $(LOCK_ARGS)

## Fail when the lock no longer matches requirements.in (the fix: make lock, and commit it).
lock-check: $(TOOLS_VENV)/.installed
	cp $(LAYER)/requirements.txt .lock-check.txt
	$(TOOLS)/uv pip compile $(LAYER)/requirements.in -o .lock-check.txt $(LOCK_ARGS)
	@diff -u $(LAYER)/requirements.txt .lock-check.txt && rm -f .lock-check.txt \
		|| { rm -f .lock-check.txt; echo "lock-check: $(LAYER)/requirements.txt is stale: run make lock"; exit 1; }

## Checkov on the template: every failed check is fixed or suppressed with a reason next to it.
scan: $(TOOLS_VENV)/.installed
	$(TOOLS)/checkov -f template.yaml --framework cloudformation --skip-download --compact --quiet

## pip-audit over the locked layer, from PyPI's advisory data; --strict: what cannot be audited fails.
audit: $(TOOLS_VENV)/.installed
	$(TOOLS)/pip-audit -r $(LAYER)/requirements.txt --require-hashes --disable-pip --strict \
		--progress-spinner off $(AUDIT_IGNORES)

## sam validate --lint (the SAM CLI in its own virtual environment).
sam-validate: $(SAM_VENV)/.installed
	$(SAM) validate --lint --region us-east-1

## sam build for python3.13/arm64, then the bytecode: Lambda's file system is read-only, so without
## .pyc files every cold start compiles every module. unchecked-hash: the artifact never changes
## after the build, so Python need not compare sources. It builds with a python3.13 interpreter
## (pyenv's or one on PATH), else in SAM's build image where Docker runs (SAM_USE_CONTAINER=1
## forces it), else it fails: a tree that was not built must never reach sam deploy.
sam-build: sam-build-prerequisites $(SAM_VENV)/.installed
	@if [ -n "$(PY313)" ] && [ -z "$(SAM_USE_CONTAINER)" ]; then \
		PATH="$(dir $(PY313)):$$PATH" $(SAM) build \
		&& $(PY313) -m compileall -q -j 0 --invalidation-mode unchecked-hash $(BUILT_CODE); \
	else \
		$(SAM) build --use-container \
		&& docker run --rm -v "$$PWD/.aws-sam/build:/var/task/build" $(SAM_BUILD_IMAGE) \
			python -m compileall -q -j 0 --invalidation-mode unchecked-hash $(BUILT_CODE:.aws-sam/%=/var/task/%); \
	fi
	@python3 deploy/check_build.py
	@du -sh $(BUILT_CODE)

BUILT_CODE = .aws-sam/build/PrewarmFunction .aws-sam/build/CallbackFunction .aws-sam/build/DependenciesLayer
SAM_BUILD_IMAGE ?= public.ecr.aws/sam/build-python3.13:latest-arm64

sam-build-prerequisites:
	@docker=$$(docker info >/dev/null 2>&1 && echo yes); \
	if [ -z "$(PY313)$$docker" ] || { [ -n "$(SAM_USE_CONTAINER)" ] && [ -z "$$docker" ]; }; then \
		echo "sam-build: cannot build for the python3.13 runtime: $(if $(SAM_USE_CONTAINER),SAM_USE_CONTAINER is set and no Docker daemon runs,no python3.13 interpreter and no Docker daemon)." >&2; \
		echo "  install one: 'pyenv install 3.13' (make finds pyenv's), python3.13 on PATH, or Docker for sam build --use-container." >&2; \
		exit 1; \
	fi

## Build, refuse what was not built, deploy: all with the same SAM CLI (.venv-sam).
## DEPLOY_ARGS: e.g. --guided the first time, or --parameter-overrides DailyFileLimit=5000.
deploy: $(STAMP) sam-build
	$(SAM) deploy $(DEPLOY_ARGS)

## Delete the stack (the ledger table is retained: README, Teardown).
delete:
	$(SAM) delete $(DELETE_ARGS)

## The benchmark: one Markdown table, also written to bench/RESULTS.md (not part of make test).
bench: $(STAMP) sam-build
	$(PY) bench/run.py

## The benchmark at small sizes, to prove it still works (CI).
bench-quick: $(STAMP)
	$(PY) bench/run.py --quick --out .bench-quick.md

clean:
	rm -rf $(VENV) $(SAM_VENV) $(TOOLS_VENV) .pytest_cache .mypy_cache .ruff_cache .aws-sam
