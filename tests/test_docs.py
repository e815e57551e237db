"""The docs a newcomer reads: every link resolves inside the repository (a clone has nothing
else), the README stays short and in a user's order, and every setting it or the configuration
page names can be set through the template or is said to be code-level."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml

from polyv_prewarm.config import DEFAULTS
from tests.helpers import ROOT

SKIPPED_DIRS = {".git", ".venv", ".venv-sam", ".venv-tools", ".aws-sam", "node_modules"}
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def markdown_files() -> list[Path]:
    return sorted(
        p
        for p in ROOT.rglob("*.md")
        if not any(part in SKIPPED_DIRS or part.startswith(".") for part in p.relative_to(ROOT).parts)
    )


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def links(path: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", path.read_text(encoding="utf-8")))


def test_there_are_docs_to_check():
    names = {p.relative_to(ROOT).as_posix() for p in markdown_files()}
    assert {"README.md", "docs/polyv-api.md", "docs/ledger.md", "docs/operations.md"} <= names


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_resolves_inside_the_repository(path):
    for target in links(path):
        assert not re.match(r"^[a-z][a-z0-9+.-]*:", target), f"{path.name}: {target} leaves the repository"
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        assert resolved.is_relative_to(ROOT), f"{path.name}: {target} points outside the clone"
        assert resolved.exists(), f"{path.name}: {target} does not exist"
        if anchor:
            assert resolved.suffix == ".md", f"{path.name}: {target}"
            assert anchor in anchors(resolved), f"{path.name}: {target} has no such heading"


def test_the_readme_is_short_and_in_a_users_order():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    headings = re.findall(r"^## (.+)$", FENCE.sub("", readme), re.M)
    order = ["Two commands", "Prerequisites to deploy", "Deploy", "First checks", "Teardown", "Documentation"]
    assert [h for h in headings if h in order] == order
    assert "make demo" in readme
    assert "make test" in readme


def test_every_setting_is_a_template_parameter_or_said_to_be_code_level():
    template = cfn_yaml.load(str(ROOT / "template.yaml"))
    parameters = set(template["Parameters"])
    environment = template["Resources"]["PrewarmFunction"]["Properties"]["Environment"]["Variables"]
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([A-Z_]+)`.*$", page, re.M)}
    for variable in sorted(set(DEFAULTS) | {"POLYV_SECRET_ID", "QUOTA_TABLE"}):
        value = environment.get(variable)
        set_by_parameter = isinstance(value, dict) and any(
            ref in str(value) for ref in parameters | set(template["Resources"])
        )
        row = next((r for name, r in rows.items() if name == variable or f"`{variable}`" in r), "")
        assert row, f"{variable} is not on docs/configuration.md"
        assert set_by_parameter or "code-level" in row, f"{variable}: neither a parameter nor code-level"


def test_every_variable_the_docs_name_is_one_the_code_reads():
    known = set(DEFAULTS) | {"POLYV_SECRET_ID", "QUOTA_TABLE"}
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    table = page.split("## Template parameters")[0]
    named = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)`", table, re.M))
    named |= set(re.findall(r"^\| `[A-Z_]+`, `([A-Z][A-Z0-9_]+)`", table, re.M))
    assert {n for n in named - known if not n.startswith("POWERTOOLS_")} == set()
