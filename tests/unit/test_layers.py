"""The folders are the layers: what each may import (docs/architecture.md)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "functions" / "prewarm" / "polyv_prewarm"


def imported(path: Path) -> set[str]:
    """Top-level names of the modules ``path`` imports (absolute ones), and ``.``-relative targets."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or "") if node.level else node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", sorted((PACKAGE / "domain").glob("*.py")), ids=lambda p: p.name)
def test_the_domain_imports_the_standard_library_and_itself_only(module):
    for name in imported(module):
        assert (name.startswith(".") and not name.startswith("..")) or name in sys.stdlib_module_names, name


@pytest.mark.parametrize("module", sorted((PACKAGE / "logic").glob("*.py")), ids=lambda p: p.name)
def test_the_logic_never_imports_an_aws_or_http_library_or_an_adapter(module):
    names = imported(module)
    assert not names & {"boto3", "botocore", "requests", "urllib3"}
    assert not {n for n in names if n.startswith("..adapters")}
    assert {n for n in names if not n.startswith(".") and n not in sys.stdlib_module_names} <= {
        "aws_lambda_powertools"
    }


def test_the_callback_endpoint_imports_no_http_client_ledger_or_tracer():
    """Its cold start: boto3 (SQS, Secrets Manager; botocore brings urllib3) and Powertools, nothing
    of the prewarm path."""
    import subprocess

    probe = (
        "import sys; import callback_app; "
        "heavy = [m for m in ('requests', 'aws_xray_sdk', 'polyv_prewarm.adapters.ledger', "
        "'polyv_prewarm.adapters.polyv', 'polyv_prewarm.logic.prewarm') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    env = {"PATH": "", "POWERTOOLS_TRACE_DISABLED": "true"}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=PACKAGE.parent,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


LOGIC = {p.stem: p for p in (PACKAGE / "logic").glob("*.py") if p.stem != "__init__"}
#: one module per use case (the submission's parts, ``submission``, ``chunk``, ``sender``,
#: ``placement``, ``slices`` and ``run``, are shared by them)
USE_CASES = {
    "prewarm",
    "drain",
    "recovery",
    "expiry",
    "queries",
    "receive_callback",
    "backfill",
    "confirm_definitions",
    "reconcile",
}


def siblings(module: str) -> set[str]:
    """The logic modules ``module`` imports (``from .x import ...``)."""
    return {
        n[1:].split(".")[0] for n in imported(LOGIC[module]) if n.startswith(".") and not n.startswith("..")
    }


def test_the_use_cases_never_import_each_other():
    assert set(LOGIC) >= USE_CASES
    for module in USE_CASES:
        assert not siblings(module) & (USE_CASES - {module}), module


def test_the_logic_modules_import_no_cycle():
    graph = {module: siblings(module) for module in LOGIC}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for target in graph[module]:
            visit(target, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())
