"""Refuse to deploy what was not built: ``make deploy`` runs this between ``sam build`` and
``sam deploy``. Standard library only (it runs before any virtual environment exists).

A ``sam deploy`` of an unbuilt tree packages the sources as they are: a layer of bare
requirements files, and a function that fails to import on every invocation. So this checks, in
``.aws-sam/build``: the built template; each function's package with its bytecode for the
runtime; the layer's packages installed (not a requirements file); and that nothing the build is
made from changed after it. Exit 0 when deployable, 1 with every reason otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: What each built artifact must hold: the entry module and the package it imports.
FUNCTIONS = {"PrewarmFunction": "app.py", "CallbackFunction": "callback_app.py"}
PACKAGE = "polyv_prewarm"
LAYER = "DependenciesLayer"
LAYER_PACKAGES = ("aws_lambda_powertools", "requests", "boto3", "botocore", "urllib3")
#: The runtime's bytecode tag (template.yaml: Runtime python3.13).
BYTECODE = "cpython-313"
#: What the build is made from.
SOURCES = ("template.yaml", "functions/prewarm", "layers/dependencies/requirements.txt")


def problems(build: Path, root: Path = ROOT) -> list[str]:
    """Every reason the build at ``build`` must not be deployed (none: deployable)."""
    template = build / "template.yaml"
    if not template.is_file():
        return [f"{template} is missing: run make sam-build"]
    found: list[str] = []
    for function, entry in FUNCTIONS.items():
        code = build / function
        if not (code / entry).is_file() or not (code / PACKAGE / "__init__.py").is_file():
            found.append(f"{code} lacks {entry} or {PACKAGE}/")
        elif not any((code / PACKAGE / "__pycache__").glob(f"*.{BYTECODE}.pyc")):
            found.append(f"{code} has no {BYTECODE} bytecode: build it with make sam-build")
    layer = build / LAYER / "python"
    missing = [p for p in LAYER_PACKAGES if not (layer / p).is_dir()]
    if missing:
        found.append(f"{layer} lacks {', '.join(missing)}: the layer was not built (only requirements?)")
    built_at = template.stat().st_mtime
    newer = [source for source in SOURCES if _newest(root / source) > built_at]
    if newer:
        found.append(f"changed since the build: {', '.join(newer)}: run make sam-build again")
    return found


def _newest(path: Path) -> float:
    if path.is_file():
        return path.stat().st_mtime
    files = (p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return max((p.stat().st_mtime for p in files), default=0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", nargs="?", type=Path, default=ROOT / ".aws-sam" / "build")
    args = parser.parse_args(argv)
    found = problems(args.build)
    for problem in found:
        print(f"check-build: {problem}", file=sys.stderr)
    if not found:
        print(f"check-build: {args.build} is built for python3.13 and current")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
