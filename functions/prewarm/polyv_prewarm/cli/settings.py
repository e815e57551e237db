"""Where a command's settings come from: a deployed stack's (refusing a flag that contradicts
it), or the options' over the shell's environment."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError

from .. import deployment
from .exits import EXIT_UNAVAILABLE, EXIT_USAGE, CliError
from .terminal import warn

ENVIRONMENT_OPTIONS = {
    # option -> the environment variable it sets (the function's own configuration)
    "secret_id": "POLYV_SECRET_ID",
    "table": "QUOTA_TABLE",
    "api_url": "POLYV_API_URL",
    "daily_limit": "DAILY_FILE_LIMIT",
    "manual_reserve": "MANUAL_RESERVE",
    "drain_order": "DRAIN_ORDER",
    "backlog_max_age_days": "BACKLOG_MAX_AGE_DAYS",
    "priority_br_indexes": "PRIORITY_BR_INDEXES",
    "timezone": "QUOTA_TIMEZONE",
}
AWS_OPTIONS = {"profile": "AWS_PROFILE", "region": "AWS_REGION"}


def flags(args: argparse.Namespace) -> dict[str, str]:
    """The settings given as options, as their environment variables."""
    return {
        variable: str(getattr(args, option))
        for option, variable in ENVIRONMENT_OPTIONS.items()
        if getattr(args, option) is not None
    }


def configure(args: argparse.Namespace) -> None:
    """The environment the use cases are built from: the deployed stack's, or the options' over
    the shell's. With neither --stack nor a table anywhere, samconfig.toml's stack."""
    given = flags(args)
    stack = args.stack
    unset = "QUOTA_TABLE" not in {**os.environ, **given}
    if stack is None and args.command != "callback-url" and unset and Path("samconfig.toml").is_file():
        stack = deployment.default_stack_name()
    if stack is not None and args.command != "callback-url":
        _apply_deployment(stack, given)
    else:
        os.environ.update(given)


def _apply_deployment(stack: str, flags: dict[str, str]) -> None:
    """Read the stack, refuse a flag that contradicts it, and put its settings in the environment
    (a shell's variable that differs is replaced, loudly; one it does not set is dropped)."""
    try:
        deployed = deployment.read_deployment(stack, boto3.client("cloudformation"), boto3.client("lambda"))
    except deployment.DeploymentUnavailable as exc:
        raise CliError(str(exc), EXIT_UNAVAILABLE) from None
    except (deployment.DeploymentError, BotoCoreError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    settings = deployed.settings
    for variable, value in flags.items():
        if variable in settings and not _same(settings[variable], value):
            option = next(f"--{o.replace('_', '-')}" for o, v in ENVIRONMENT_OPTIONS.items() if v == variable)
            raise CliError(
                f"{option} {value} contradicts stack {stack!r}, whose function runs with "
                f"{variable}={settings[variable]!r}: drop the option (or --stack to act on other settings)",
                EXIT_USAGE,
            )
    for variable in sorted(deployment.SETTINGS_VARIABLES):
        shell = os.environ.get(variable)
        if variable in settings:
            if shell is not None and not _same(shell, settings[variable]) and variable not in flags:
                warn(f"{variable} of the environment ignored: {stack!r} runs with {settings[variable]!r}")
            os.environ[variable] = settings[variable]
        elif variable in flags:
            os.environ[variable] = flags[variable]  # a setting the stack leaves to the code's default
        elif shell is not None:
            warn(f"{variable} from the environment ignored: stack {stack!r} does not set it")
            del os.environ[variable]


def _same(a: str, b: str) -> bool:
    """Two spellings of one setting's value (``2000`` and ``2000.0``, ``2, 3`` and ``2,3``)."""

    def norm(value: str) -> str:
        parts = [p.strip() for p in value.split(",")]
        try:
            return ",".join(str(float(p)) for p in parts)
        except ValueError:
            return ",".join(parts)

    return norm(a) == norm(b)
