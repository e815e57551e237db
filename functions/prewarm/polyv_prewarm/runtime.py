"""Composition root: builds the use cases and their adapters from configuration, once per container.

AWS endpoints come from the SDK's standard settings (``AWS_ENDPOINT_URL``, ``AWS_REGION``...),
so the same code talks to AWS in Lambda and to moto's server locally.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import NamedTuple

import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.config import Config

from .adapters.backlog import DynamoBacklog
from .adapters.breaker import DynamoBreaker
from .adapters.credentials import SecretsManagerCredentials, keep_secrets_out_of_wire_logs
from .adapters.ledger import DynamoDayLedger
from .adapters.polyv import PolyvClient, RetryPolicy
from .adapters.queue import SqsMessages
from .config import Settings
from .domain.policy import Deadline
from .domain.ports import Backlog, DayLedger, PolyvBreaker, PolyvGateway
from .logic.backfill import Backfill
from .logic.chunk import Ports
from .logic.confirm_definitions import ConfirmDefinitions
from .logic.drain import DrainBacklog
from .logic.expiry import ExpireBacklog
from .logic.prewarm import PrewarmFiles
from .logic.queries import LedgerQueries
from .logic.recovery import RecoverWaiting
from .logic.slices import DrainSlices
from .logic.submission import Submission

# botocore's standard retry mode: backoff with jitter on throttling and transient errors.
AWS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=2, read_timeout=5)
# The ledger's requests are built by code that the tests run against moto (which validates them as
# DynamoDB does); botocore's client-side validation of a 50-item transaction cost more CPU than
# everything else the function does per file (bench/RESULTS.md), so the DynamoDB client skips it.
DYNAMODB_CONFIG = AWS_CONFIG.merge(Config(parameter_validation=False))


class UseCases(NamedTuple):
    prewarm: PrewarmFiles  # prewarm files: plan -> claim -> send -> record -> place
    drain: DrainBacklog  # the morning drain and the late sweeps of the backlog
    recover: RecoverWaiting  # the files waiting out an outage, once Polyv answers
    queries: LedgerQueries  # quota, a video's status, the backlog
    backfill: Backfill  # an operator's catalogue, to the backlog's lowest tier
    confirm: ConfirmDefinitions  # a TranscodeComplete's definitions, from Polyv itself


class Runtime(NamedTuple):
    """The deployed function's use cases, built once per container, with the clock and the
    account they serve."""

    settings: Settings
    cases: UseCases
    clock: Callable[[], datetime]
    polyv: PolyvGateway  # the account's Polyv: its userid
    messages: SqsMessages | None = None  # its own queue's messages (None outside Lambda: the CLI)

    def deadline(self, remaining_ms: float | None) -> Deadline:
        """An invocation's deadline from the time it has left (Lambda's), or the longest one."""
        now = self.clock()
        return Deadline.default(now) if remaining_ms is None else Deadline.after(now, remaining_ms)

    def userid(self) -> str:
        return self.polyv.userid()


def build_runtime(
    env: Mapping[str, str],
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    session: boto3.session.Session | None = None,
) -> Runtime:
    """Wire the adapters from ``env``: straight-line construction, one adapter after another,
    kept in one function so that the whole object graph reads in one place. ``session``: the
    boto3 session for the AWS clients (a benchmark counts requests on it)."""
    settings = Settings.from_env(env)
    keep_secrets_out_of_wire_logs()
    session = session or boto3.session.Session()
    secrets = SecretsProvider(boto3_client=session.client("secretsmanager", config=AWS_CONFIG))
    credentials = SecretsManagerCredentials(settings.secret_id, secrets, max_age=settings.secret_max_age)
    retry = retry_policy(settings)
    polyv = PolyvClient(
        settings.api_url,
        credentials,
        policy=retry,
        proxy_url=settings.polyv_proxy_url,
        now_ms=lambda: int(clock().timestamp() * 1000),
    )
    dynamodb = session.client("dynamodb", config=DYNAMODB_CONFIG)  # one client for the ledger and the backlog
    cases = use_cases(
        settings,
        polyv=polyv,
        ledger=DynamoDayLedger(
            settings.quota_table, dynamodb, timezone=settings.timezone, retention_days=settings.retention_days
        ),
        backlog=DynamoBacklog(settings.quota_table, dynamodb),
        breaker=DynamoBreaker(settings.quota_table, dynamodb),
        clock=clock,
        backoff=retry.backoff,
    )
    return Runtime(settings, cases, clock, polyv, messages=_messages(settings, session))


def retry_policy(settings: Settings) -> RetryPolicy:
    """How the Polyv client tries a call, from the settings."""
    return RetryPolicy(
        attempts=settings.polyv_attempts,
        backoff_base=settings.polyv_backoff_base,
        connect_timeout=settings.polyv_connect_timeout,
        read_timeout=settings.polyv_read_timeout,
    )


def use_cases(
    settings: Settings,
    *,
    polyv: PolyvGateway,
    ledger: DayLedger,
    backlog: Backlog,
    breaker: PolyvBreaker,
    clock: Callable[[], datetime],
    backoff: Callable[[int], float],
    sleep: Callable[[float], None] = time.sleep,
) -> UseCases:
    """The use cases over their ports: the function's, and (over fakes) the unit tests' world."""
    policy = settings.policy()
    ports = Ports(polyv, ledger, breaker, policy, clock, backoff, sleep)
    slices = DrainSlices(
        submission=Submission(ports), ledger=ledger, backlog=backlog, policy=policy, clock=clock
    )
    return UseCases(
        prewarm=PrewarmFiles(ports, backlog=backlog, userid=polyv.userid),
        drain=DrainBacklog(
            slices=slices,
            expiry=ExpireBacklog(backlog=backlog, policy=policy, clock=clock),
            ledger=ledger,
            backlog=backlog,
            policy=policy,
            clock=clock,
        ),
        recover=RecoverWaiting(
            slices=slices, ledger=ledger, backlog=backlog, breaker=breaker, policy=policy, clock=clock
        ),
        queries=LedgerQueries(ledger=ledger, backlog=backlog, breaker=breaker, policy=policy, clock=clock),
        backfill=Backfill(
            backlog=backlog,
            ledger=ledger,
            policy=policy,
            clock=clock,
            userid=polyv.userid,
            default_br_indexes=settings.default_br_indexes,
        ),
        confirm=ConfirmDefinitions(
            videos=polyv,
            default_br_indexes=settings.default_br_indexes,
            clock=clock,
            min_time=policy.min_time_per_call,
        ),
    )


def _messages(settings: Settings, session: boto3.session.Session) -> SqsMessages | None:
    if settings.queue_url is None or settings.dead_letter_url is None:
        return None
    sqs = session.client("sqs", config=AWS_CONFIG)
    return SqsMessages(sqs, queue_url=settings.queue_url, dead_letter_url=settings.dead_letter_url)


@functools.cache
def current() -> Runtime:
    """The runtime of this process, built from ``os.environ`` on first use (warm containers reuse it)."""
    return build_runtime(os.environ)
