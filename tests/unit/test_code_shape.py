"""The product code's shape, held by counts (docs/architecture.md): small functions and classes,
a file's intent as one value, and docstrings that point only inside the repository."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "functions" / "prewarm" / "polyv_prewarm"
MODULES = sorted(PACKAGE.rglob("*.py"))

MAX_BRANCHES = 14
MAX_METHODS = 15
#: The claim's switches: they travel in ``domain/claims.py``'s values, never as loose parameters.
CLAIM_FLAGS = {"force", "forced", "explicit", "resend", "first_rank"}


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


#: Each of these is one more way the flow can go.
BRANCHING = (ast.If, ast.IfExp, ast.For, ast.AsyncFor, ast.While, ast.ExceptHandler, ast.match_case)


def branches(function: ast.AST) -> int:
    """Every way the flow can go another way: if/elif/ternary, loops, except, match cases,
    comprehension loops and their conditions, and each extra operand of and/or."""
    count = 0
    for node in ast.walk(function):
        if isinstance(node, BRANCHING):
            count += 1
        elif isinstance(node, ast.comprehension):
            count += 1 + len(node.ifs)
        elif isinstance(node, ast.BoolOp):
            count += len(node.values) - 1
    return count


def functions(module: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(module) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_function_has_more_than_14_branches(path):
    wide = {f.name: n for f in functions(tree(path)) if (n := branches(f)) > MAX_BRANCHES}
    assert not wide


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_class_has_more_than_15_methods(path):
    classes = [n for n in ast.walk(tree(path)) if isinstance(n, ast.ClassDef)]
    large = {
        c.name: n
        for c in classes
        if (n := sum(isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef) for s in c.body)) > MAX_METHODS
    }
    assert not large


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_claims_switches_are_no_functions_parameters(path):
    loose = {}
    for f in functions(tree(path)):
        names = {a.arg for a in (*f.args.posonlyargs, *f.args.args, *f.args.kwonlyargs)}
        if names & CLAIM_FLAGS:
            loose[f.name] = sorted(names & CLAIM_FLAGS)
    assert not loose


#: What an exception's text is read through: ``str(e)``, ``repr(e)``, ``e.args``, ``e.message``.
TEXT_OF = {"str", "repr", "format"}
TEXT_ATTRIBUTES = {"args", "message", "msg", "text"}


def is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def reads_text_of(node: ast.AST, name: str) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in TEXT_OF:
            if any(is_name(a, name) for a in sub.args):
                return True
        elif isinstance(sub, ast.Attribute) and sub.attr in TEXT_ATTRIBUTES and is_name(sub.value, name):
            return True
    return False


def decisions_on_text(module: ast.Module) -> list[int]:
    """Lines where a caught exception's text is compared, matched or searched: a decision taken on a
    message's wording, which the next rewording breaks silently."""
    lines = []
    for handler in (n for n in ast.walk(module) if isinstance(n, ast.ExceptHandler) and n.name):
        for node in ast.walk(handler):
            tests = []
            if isinstance(node, ast.Compare):
                tests = [node.left, *node.comparators]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr in {"startswith", "endswith", "find", "index", "count"}:
                    tests = [node.func.value, *node.args]
                elif node.func.attr in {"match", "search", "fullmatch"}:
                    tests = list(node.args)
            if any(reads_text_of(t, handler.name) for t in tests):
                lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_decision_is_taken_on_an_exceptions_text(path):
    assert not decisions_on_text(tree(path))


#: A path in a docstring: folders and a file with an extension.
PATH_IN_TEXT = re.compile(r"(?<![\w/.])((?:\.\./|[\w-]+/)+[\w.-]+\.(?:md|py|yaml|txt|json|toml))")


def docstrings(module: ast.Module) -> list[str]:
    nodes = [module, *(n for n in ast.walk(module) if isinstance(n, ast.ClassDef | ast.FunctionDef))]
    return [doc for n in nodes if (doc := ast.get_docstring(n))]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_docstrings_name_only_paths_inside_the_repository(path):
    named = {m for doc in docstrings(tree(path)) for m in PATH_IN_TEXT.findall(doc)}
    roots = (ROOT, PACKAGE, ROOT / "functions" / "prewarm")
    outside = {p for p in named if p.startswith("../") or not any((r / p).exists() for r in roots)}
    assert not outside


def test_the_shape_checks_can_fail():
    """The counters count: a function of 15 branches, a decision on an exception's wording and a path
    that is not there are caught."""
    wide = ast.parse("def f(x):\n" + "".join(f"    if x == {i}:\n        pass\n" for i in range(15)))
    assert branches(wide.body[0]) == 15
    worded = ast.parse(
        "try:\n    pass\nexcept ValueError as e:\n"
        "    if str(e).startswith('configuration error'):\n        pass\n"
        "    if 'timeout' in e.args[0]:\n        pass\n"
    )
    assert decisions_on_text(worded) == [4, 6]
    assert PATH_IN_TEXT.findall("see ../shared/polyv-api.md and docs/ledger.md") == [
        "../shared/polyv-api.md",
        "docs/ledger.md",
    ]
