"""Composition root of the callback endpoint: the receiver and its two adapters, once per
container. Kept apart from :mod:`polyv_prewarm.runtime` so that the endpoint's cold start imports
neither requests nor the DynamoDB adapters: boto3 (SQS, Secrets Manager) and Powertools only."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import NamedTuple

import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.config import Config

from .adapters.credentials import SecretsManagerCredentials, keep_secrets_out_of_wire_logs
from .adapters.queue import SqsPrewarmQueue
from .config import CallbackSettings
from .logic.receive_callback import CallbackReceiver

# Polyv waits for the answer: a few quick attempts, then 503 (Polyv may call again).
CALLBACK_AWS_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3}, connect_timeout=1, read_timeout=3
)


class CallbackRuntime(NamedTuple):
    settings: CallbackSettings
    receiver: CallbackReceiver


def build_callback_runtime(
    env: Mapping[str, str], *, session: boto3.session.Session | None = None
) -> CallbackRuntime:
    settings = CallbackSettings.from_env(env)
    keep_secrets_out_of_wire_logs()
    session = session or boto3.session.Session()
    secrets = SecretsProvider(boto3_client=session.client("secretsmanager", config=CALLBACK_AWS_CONFIG))
    credentials = SecretsManagerCredentials(settings.secret_id, secrets, max_age=settings.secret_max_age)
    queue = SqsPrewarmQueue(settings.queue_url, session.client("sqs", config=CALLBACK_AWS_CONFIG))
    return CallbackRuntime(settings, CallbackReceiver(credentials, queue))


@functools.cache
def current() -> CallbackRuntime:
    """The runtime of this process, built from ``os.environ`` on first use."""
    return build_callback_runtime(os.environ)
