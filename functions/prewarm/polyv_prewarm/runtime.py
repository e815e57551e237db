"""Composition root: builds the use cases and their adapters from configuration, once per container.

Every account served has use cases of its own, built on its first use: its Polyv client (its own
credentials out of the secret, the shared HTTP session), its own part of the day ledger and of the
backlog (``adapters/ledger/schema.LedgerTable``, ``adapters/backlog.backlog_pk``), its own limit
and reserve; the breaker and the clients are shared (``logic/accounts.py``).

AWS endpoints come from the SDK's standard settings (``AWS_ENDPOINT_URL``, ``AWS_REGION``...),
so the same code talks to AWS in Lambda and to moto's server locally.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import NamedTuple, Protocol

import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.config import Config

from .adapters.backlog import DynamoBacklog, backlog_pk
from .adapters.breaker import DynamoBreaker
from .adapters.credentials import AccountCredentials, SecretsManagerCredentials, keep_secrets_out_of_wire_logs
from .adapters.ledger import DynamoDayLedger, LedgerTable
from .adapters.polyv import PolyvClient, RetryPolicy, build_session
from .adapters.queue import SqsMessages
from .adapters.reconcile_marks import DynamoReconcileMarks
from .config import Settings
from .domain.accounts import Account, AccountBook
from .domain.policy import Deadline
from .domain.ports import (
    Backlog,
    DayLedger,
    EventsInFlight,
    PolyvBreaker,
    PolyvGateway,
    ReconcileMarks,
    VideoListing,
)
from .logic.accounts import EveryAccount, UseCases
from .logic.backfill import Backfill
from .logic.chunk import Ports
from .logic.confirm_definitions import ConfirmDefinitions
from .logic.drain import DrainBacklog
from .logic.expiry import ExpireBacklog
from .logic.prewarm import PrewarmFiles
from .logic.queries import LedgerQueries
from .logic.reconcile import ReconcileAccount
from .logic.recovery import RecoverWaiting
from .logic.slices import DrainSlices
from .logic.submission import Submission

# botocore's standard retry mode: backoff with jitter on throttling and transient errors.
AWS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=2, read_timeout=5)
# The ledger's requests are built by code that the tests run against moto (which validates them as
# DynamoDB does); botocore's client-side validation of a 50-item transaction cost more CPU than
# everything else the function does per file (bench/RESULTS.md), so the DynamoDB client skips it.
DYNAMODB_CONFIG = AWS_CONFIG.merge(Config(parameter_validation=False))


__all__ = [
    "AccountPorts",
    "Runtime",
    "UseCases",
    "build_runtime",
    "current",
    "every_account",
    "retry_policy",
    "use_cases",
]


class Runtime(NamedTuple):
    """The deployed function's use cases, every account's, built once per container, with the
    clock."""

    settings: Settings
    accounts: EveryAccount
    clock: Callable[[], datetime]
    messages: SqsMessages | None = None  # its own queue's messages (None outside Lambda: the CLI)

    def deadline(self, remaining_ms: float | None) -> Deadline:
        """An invocation's deadline from the time it has left (Lambda's), or the longest one."""
        now = self.clock()
        return Deadline.default(now) if remaining_ms is None else Deadline.after(now, remaining_ms)

    def book(self) -> AccountBook:
        """The accounts served (reads the Polyv secret: cached)."""
        return self.accounts.book()

    def cases(self, userid: str | None = None) -> UseCases:
        """One account's use cases (None: the first account's)."""
        return self.accounts.of(userid)


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
    http = build_session(retry, proxy_url=settings.polyv_proxy_url)  # one connection pool for every account
    dynamodb = session.client("dynamodb", config=DYNAMODB_CONFIG)  # one client for the ledger and the backlog
    breaker = DynamoBreaker(settings.quota_table, dynamodb)  # Polyv's outage is every account's

    def book() -> AccountBook:
        return settings.account_book(c.userid for c in credentials.accounts())

    def ports(account: Account, home: bool) -> AccountPorts:
        return AccountPorts(
            polyv=PolyvClient(
                settings.api_url,
                AccountCredentials(credentials, account.userid),
                policy=retry,
                session=http,
                now_ms=lambda: int(clock().timestamp() * 1000),
            ),
            ledger=DynamoDayLedger(
                settings.quota_table,
                dynamodb,
                timezone=settings.timezone,
                retention_days=settings.retention_days,
                account=LedgerTable.of_account(settings.quota_table, account.userid, home=home),
            ),
            backlog=DynamoBacklog(settings.quota_table, dynamodb, pk=backlog_pk(account.userid, home=home)),
            marks=DynamoReconcileMarks(settings.quota_table, dynamodb, account.userid),
        )

    messages = _messages(settings, session)
    accounts = every_account(
        settings, book, ports, breaker=breaker, clock=clock, backoff=retry.backoff, events=messages
    )
    return Runtime(settings, accounts, clock, messages=messages)


class PolyvOfAnAccount(PolyvGateway, VideoListing, Protocol):
    """An account's Polyv: its prewarm calls and its list of new videos."""


class AccountPorts(NamedTuple):
    """What one account has of its own: its Polyv client, its part of the ledger and the backlog,
    its reconcile mark."""

    polyv: PolyvOfAnAccount
    ledger: DayLedger
    backlog: Backlog
    marks: ReconcileMarks


def every_account(
    settings: Settings,
    book: Callable[[], AccountBook],
    ports: Callable[[Account, bool], AccountPorts],
    *,
    breaker: PolyvBreaker,
    clock: Callable[[], datetime],
    backoff: Callable[[int], float],
    sleep: Callable[[float], None] = time.sleep,
    events: EventsInFlight | None = None,
) -> EveryAccount:
    """Every account's use cases, each built on its first use over its own ports (``ports(account,
    home)``: the home account keeps the one-account keys), its own limit and reserve
    (``Settings.for_account``), and the breaker and clock all accounts share: the function's
    wiring, and (over fakes) the unit tests'."""
    built: dict[Account, UseCases] = {}

    def cases(account: Account) -> UseCases:
        if account not in built:
            own = ports(account, book().is_home(account))
            built[account] = use_cases(
                settings.for_account(account),
                polyv=own.polyv,
                ledger=own.ledger,
                backlog=own.backlog,
                marks=own.marks,
                breaker=breaker,
                clock=clock,
                backoff=backoff,
                sleep=sleep,
                events=events,
            )
        return built[account]

    return EveryAccount(book, cases)


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
    polyv: PolyvOfAnAccount,
    ledger: DayLedger,
    backlog: Backlog,
    marks: ReconcileMarks,
    breaker: PolyvBreaker,
    clock: Callable[[], datetime],
    backoff: Callable[[int], float],
    sleep: Callable[[float], None] = time.sleep,
    events: EventsInFlight | None = None,
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
        reconcile=ReconcileAccount(
            listing=polyv,
            marks=marks,
            ledger=ledger,
            backlog=backlog,
            policy=policy,
            clock=clock,
            default_br_indexes=settings.default_br_indexes,
            events=events,
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
