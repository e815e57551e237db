"""The deployed stack, as the CLI reads it: its Outputs, and the settings its prewarm function runs
with, so that an operator's command claims, drains and expires with what production runs.

Only the CLI imports this module (the function knows its settings from its own environment).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .adapters.aws_errors import describe_aws_error, misconfigured
from .config import DEFAULTS, ConfigurationError

DEFAULT_STACK = "polyv-prewarm"

#: The variables ``config.Settings`` reads: what the CLI takes from the deployed function. The
#: function's other variables (Powertools', Lambda's own) are not the CLI's business.
SETTINGS_VARIABLES = frozenset(DEFAULTS) | {"POLYV_SECRET_ID", "QUOTA_TABLE"}

#: The output naming the function whose environment holds the settings.
FUNCTION_OUTPUT = "PrewarmFunctionArn"


class DeploymentError(ConfigurationError):
    """The stack cannot be read, or is not a polyv-prewarm stack: the message says what to fix."""


class DeploymentUnavailable(Exception):
    """CloudFormation or Lambda did not answer (an outage, not a configuration)."""


@dataclass(frozen=True)
class Deployment:
    stack: str
    outputs: Mapping[str, str]
    settings: Mapping[str, str]  # the prewarm function's environment, SETTINGS_VARIABLES only


def default_stack_name(samconfig: Path = Path("samconfig.toml")) -> str:
    """The stack ``sam deploy`` deploys: samconfig.toml's stack_name, as SAM reads it."""
    try:
        config = tomllib.loads(samconfig.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return DEFAULT_STACK
    for section in ("deploy", "global"):
        name = config.get("default", {}).get(section, {}).get("parameters", {}).get("stack_name")
        if isinstance(name, str) and name:
            return name
    return DEFAULT_STACK


def stack_outputs(stack: str, cloudformation: Any) -> dict[str, str]:
    """The stack's Outputs by key."""
    try:
        described = cloudformation.describe_stacks(StackName=stack)
    except (ClientError, BotoCoreError) as exc:
        # DescribeStacks answers a stack it does not know with ValidationError, its one error
        # of the request itself (a name it cannot take is the other): either way, no such stack
        if isinstance(exc, ClientError) and describe_aws_error(exc) == "ValidationError":
            raise DeploymentError(
                f"no stack {stack!r} in this account and region (--stack, --region, --profile)"
            ) from None
        raise _error(exc, f"stack {stack!r}") from None
    return {o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0].get("Outputs", [])}


def read_deployment(stack: str, cloudformation: Any, lambda_client: Any) -> Deployment:
    """The stack's Outputs and its prewarm function's settings (one DescribeStacks, one
    GetFunctionConfiguration)."""
    outputs = stack_outputs(stack, cloudformation)
    function = outputs.get(FUNCTION_OUTPUT)
    if function is None:
        raise DeploymentError(f"stack {stack!r} has no {FUNCTION_OUTPUT} output: not a polyv-prewarm stack?")
    try:
        configuration = lambda_client.get_function_configuration(FunctionName=function)
    except (ClientError, BotoCoreError) as exc:
        raise _error(exc, f"the function of stack {stack!r}") from None
    variables = configuration.get("Environment", {}).get("Variables", {})
    settings = {name: value for name, value in variables.items() if name in SETTINGS_VARIABLES}
    return Deployment(stack, outputs, settings)


def _error(exc: BaseException, what: str) -> Exception:
    """A configuration error for what a person must fix (permissions, credentials, a name); an
    outage for the rest."""
    message = f"cannot read {what}: {describe_aws_error(exc)}"
    return DeploymentError(message) if misconfigured(exc) else DeploymentUnavailable(message)
