"""Composition root of the callback endpoint: the receiver and its two adapters, once per
container. Kept apart from :mod:`polyv_prewarm.runtime` so that the endpoint's cold start imports
neither requests nor the ledger: boto3 (SQS, Secrets Manager, one DynamoDB item per notification)
and Powertools only."""

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
from .adapters.received_callbacks import DynamoReceivedCallbacks
from .config import CallbackSettings
from .logic.receive_callback import CallbackReceiver

# Polyv waits for the answer: two quick attempts per AWS call, then 503 (Polyv may call again).
# DynamoDB, SQS and Secrets Manager answer in milliseconds; a second's read bounds a hang.
CALLBACK_ATTEMPTS, CALLBACK_CONNECT_S, CALLBACK_READ_S = 2, 0.5, 1.0
CALLBACK_AWS_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": CALLBACK_ATTEMPTS},
    connect_timeout=CALLBACK_CONNECT_S,
    read_timeout=CALLBACK_READ_S,
)
#: The worst case of one AWS call with that configuration: every attempt connecting and reading
#: to its timeout, and botocore's standard back-off between them (at most 1 s before the 2nd, a
#: throttling error's; an x-amz-retry-after header could add to it, which AWS does not send here).
#: 4 s: the function's 10 s Timeout holds the busiest path's two-call step (the record) with room.
STEP_WORST_S = CALLBACK_ATTEMPTS * (CALLBACK_CONNECT_S + CALLBACK_READ_S) + (CALLBACK_ATTEMPTS - 1) * 1.0


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
    received = DynamoReceivedCallbacks(
        settings.quota_table, session.client("dynamodb", config=CALLBACK_AWS_CONFIG)
    )
    return CallbackRuntime(
        settings,
        CallbackReceiver(credentials, queue, received, step_s=STEP_WORST_S, userids=settings.userids),
    )


@functools.cache
def current() -> CallbackRuntime:
    """The runtime of this process, built from ``os.environ`` on first use."""
    return build_callback_runtime(os.environ)
