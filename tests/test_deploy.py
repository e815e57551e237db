"""The deploy path cannot ship unbuilt code: `make sam-build` fails loudly without a way to build
for the runtime, and `deploy/check_build.py` (between `sam build` and `sam deploy` in `make
deploy`) refuses a tree that was not built, or was built before its sources changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "deploy"))
import check_build


def _make(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_sam_build_without_python313_or_docker_fails_and_says_what_to_install(tmp_path):
    # a PATH of the system's own directories: python3.11 there, no python3.13, no docker; a HOME
    # without pyenv
    result = _make("-s", "sam-build", env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"})
    assert result.returncode != 0
    assert "cannot build for the python3.13 runtime" in result.stderr
    assert "pyenv install 3.13" in result.stderr
    assert "--use-container" in result.stderr


def test_deploy_builds_first_with_the_same_sam_cli():
    plan = _make("-n", "deploy", env={**os.environ, "SAM_VENV": ".venv-sam"}).stdout
    build, check, deploy = (plan.index(s) for s in ("sam build", "deploy/check_build.py", "sam deploy"))
    assert build < check < deploy
    assert plan.count(".venv-sam/bin/sam") >= 2  # one SAM CLI for both


def _built(build: Path) -> None:
    """A tree as make sam-build leaves it."""
    (build).mkdir(parents=True)
    (build / "template.yaml").write_text("Resources: {}\n")
    for function, entry in check_build.FUNCTIONS.items():
        package = build / function / check_build.PACKAGE
        (package / "__pycache__").mkdir(parents=True)
        (build / function / entry).write_text("")
        (package / "__init__.py").write_text("")
        (package / "__pycache__" / f"__init__.{check_build.BYTECODE}.pyc").write_bytes(b"")
    for name in check_build.LAYER_PACKAGES:
        (build / check_build.LAYER / "python" / name).mkdir(parents=True)


def _sources(root: Path) -> None:
    for source in check_build.SOURCES:
        path = root / source
        if source.endswith((".yaml", ".txt")):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
        else:
            path.mkdir(parents=True)
            (path / "module.py").write_text("x = 1\n")


def _age(root: Path, seconds: float) -> None:
    for path in root.rglob("*"):
        stat = path.stat()
        os.utime(path, (stat.st_atime - seconds, stat.st_mtime - seconds))


def test_a_built_current_tree_is_deployable(tmp_path):
    _sources(tmp_path / "repo")
    _age(tmp_path / "repo", 60)
    _built(tmp_path / "build")
    assert check_build.problems(tmp_path / "build", root=tmp_path / "repo") == []


def test_an_unbuilt_tree_is_refused_with_every_reason(tmp_path):
    _sources(tmp_path / "repo")
    assert check_build.problems(tmp_path / "build", root=tmp_path / "repo") == [
        f"{tmp_path / 'build' / 'template.yaml'} is missing: run make sam-build"
    ]
    build = tmp_path / "build"
    _built(build)
    for name in check_build.LAYER_PACKAGES:  # a layer of bare requirements: what sam deploy would ship
        (build / "DependenciesLayer" / "python" / name).rmdir()
    for pyc in build.rglob("*.pyc"):
        pyc.unlink()
    _age(build, 60)  # built a minute before the sources last changed
    found = check_build.problems(build, root=tmp_path / "repo")
    assert any("PrewarmFunction has no cpython-313 bytecode" in p for p in found)
    assert any("the layer was not built" in p and "aws_lambda_powertools" in p for p in found)
    assert any(p.startswith("changed since the build: template.yaml, functions/prewarm") for p in found)
    assert check_build.main([str(build)]) == 1
