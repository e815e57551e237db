"""Tracing off means no X-Ray SDK at all; tracing on is Powertools' Tracer as usual."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from polyv_prewarm.tracing import NoTracing, build_tracer, tracing_enabled
from tests.helpers import ROOT


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, False),  # outside Lambda
        ({"LAMBDA_TASK_ROOT": "/var/task"}, True),
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "false"}, True),
        ({"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "true"}, False),
    ],
)
def test_tracing_follows_powertools_rules(env, enabled):
    assert tracing_enabled(env) is enabled


def test_a_disabled_tracer_records_nothing_and_still_decorates():
    tracer = build_tracer({"POWERTOOLS_TRACE_DISABLED": "true"})
    assert isinstance(tracer.provider, NoTracing)

    @tracer.capture_method
    def double(x: int) -> int:
        return 2 * x

    assert double(21) == 42


def imported_modules(env: dict[str, str]) -> str:
    """What ``import app`` imports in a fresh interpreter, as ``-X importtime`` lists it."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import app"],
        cwd=ROOT / "functions" / "prewarm",
        env={k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_TRACE", "LAMBDA_"))} | env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stderr


def test_with_tracing_off_the_function_never_imports_the_xray_sdk():
    lines = imported_modules({"POWERTOOLS_TRACE_DISABLED": "true", "LAMBDA_TASK_ROOT": "/var/task"})
    assert "polyv_prewarm.handler" in lines
    assert "aws_xray_sdk" not in lines


def test_with_tracing_on_it_is_powertools_tracer_with_the_xray_sdk():
    lines = imported_modules({"POWERTOOLS_TRACE_DISABLED": "false", "LAMBDA_TASK_ROOT": "/var/task"})
    assert "aws_xray_sdk.core" in lines
