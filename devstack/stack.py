"""The local stack: moto's server (DynamoDB, Secrets Manager, SQS over real HTTP) and the Polyv
simulator, with AWS resources created from the definitions in ``template.yaml``."""

from __future__ import annotations

import copy
import json
import logging
import secrets
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import boto3
from cfnlint.decode import cfn_yaml
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from .aws_fault_proxy import AwsFaultProxy
from .loopback_http import ServerThread
from .polyv_simulator import PolyvSimulator

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"
USERID = "e6b23c6f51"  # the documented example account
SECRET_NAME = "polyv-prewarm/local"
STACK_NAME = "polyv-prewarm-local"  # what ${AWS::StackName} stands for in the local stack


def journal_moto_transactions() -> None:
    """Make moto's ``TransactWriteItems`` undo a cancelled transaction from a journal of the items
    it touches, instead of deep-copying the whole table once per action (moto 5.x), whose cost
    grows with everything stored and made a 51-action claim take seconds on a full day. What a
    transaction does and when it is cancelled stay moto's own code; only the rollback changes.
    A test-stack fix for moto's speed, so it is written here rather than taken from a library.
    """
    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    backend = models.DynamoDBBackend
    if getattr(backend.transact_write_items, "journaled", False):
        return
    original = backend.transact_write_items

    class _NoTableCopy:
        """Stands in for the ``copy`` module inside moto's transaction: tables are not copied."""

        @staticmethod
        def deepcopy(value: Any) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        journal = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName"))
            if table is None:
                continue
            key = op.get("Key") or op.get("Item") or {}
            hash_value = DynamoType(key[table.hash_key_attr]) if table.hash_key_attr in key else None
            range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr in key else None
            if hash_value is None or (table.range_key_attr and range_value is None):
                continue  # moto reports the malformed key itself
            before = table.get_item(hash_value, range_value)
            journal.append((table, hash_value, range_value, copy.deepcopy(before)))
        setattr(models, "copy", _NoTableCopy)  # noqa: B010 (moto's module-level import)
        try:
            return original(self, transact_items)
        except Exception:
            for table, hash_value, range_value, before in reversed(journal):
                rows = table.items[hash_value] if range_value is not None else table.items
                slot = range_value if range_value is not None else hash_value
                if before is None:
                    rows.pop(slot, None)
                else:
                    rows[slot] = before
            raise
        finally:
            setattr(models, "copy", copy)  # noqa: B010

    transact_write_items.journaled = True  # type: ignore[attr-defined]
    backend.transact_write_items = transact_write_items  # type: ignore[method-assign]


class SerialMotoServer:
    """moto's server, answering one request at a time.

    moto's own ``ThreadedMotoServer`` serves requests on parallel threads, and moto does not lock
    an item while it evaluates a conditional update, so two concurrent ``UpdateItem`` calls can
    both pass a condition that only one of them should. DynamoDB applies each write to an item
    atomically. Serving moto one request at a time restores that guarantee (more strictly than
    needed), so the concurrency tests test this project's conditions, not moto's locking.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        journal_moto_transactions()
        app = DomainDispatcherApplication(create_backend_app)
        server: BaseWSGIServer = make_server(
            host, port, app, threaded=False, request_handler=MotoRequestHandler
        )
        self._http = ServerThread(server, "moto-server")

    def start(self) -> None:
        self._http.start()

    def stop(self) -> None:
        self._http.stop()

    def get_host_and_port(self) -> tuple[str, int]:
        host, port = self._http.server.server_address[:2]
        return str(host), int(port)


def sqs_on_clock(clock: Any) -> None:
    """Make moto's SQS (visibility timeouts, receive counts, retention) keep the stack's time, so
    that moving the stack's clock moves its queues too: a message handed back for 720 s comes
    again once the clock has moved 720 s, whatever the wall clock did. moto's own time functions,
    as its SQS module imported them, are replaced by ones that read ``clock``."""
    from moto.sqs import models

    setattr(models, "unix_time", lambda dt=None: clock().timestamp())  # noqa: B010 (moto's own name)
    setattr(models, "unix_time_millis", lambda dt=None: clock().timestamp() * 1000)  # noqa: B010


def template_resources(resource_type: str, template: Path = TEMPLATE) -> dict[str, dict[str, Any]]:
    """Logical id -> Properties of every resource of one type in the SAM template."""
    document = cfn_yaml.load(str(template))
    return {
        name: resource.get("Properties", {})
        for name, resource in document.get("Resources", {}).items()
        if resource.get("Type") == resource_type
    }


def template_default(parameter: str, template: Path = TEMPLATE) -> str:
    """A parameter's Default in the SAM template."""
    return str(cfn_yaml.load(str(template))["Parameters"][parameter]["Default"])


QUOTA_TIMEZONE = ZoneInfo(template_default("QuotaTimezone"))  # the local stack's, as deployed by default


def create_queues_from_template(client: Any, stack_name: str = STACK_NAME) -> dict[str, str]:
    """Create the template's SQS queues (logical id -> queue URL) with their visibility timeout,
    retention and redrive policy (``maxReceiveCount`` to the dead-letter queue), as CloudFormation
    would, dead-letter queues first."""
    queues = template_resources("AWS::SQS::Queue")
    urls: dict[str, str] = {}
    ordered = sorted(queues, key=lambda q: "RedrivePolicy" in queues[q])  # DLQs before their sources
    for logical_id in ordered:
        props = queues[logical_id]
        name = _queue_name(props.get("QueueName"), stack_name) or f"{stack_name}-{logical_id}"
        attributes: dict[str, str] = {
            key: str(props[key]) for key in ("VisibilityTimeout", "MessageRetentionPeriod") if key in props
        }
        redrive = props.get("RedrivePolicy")
        if redrive:
            dlq = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
            dlq_arn = client.get_queue_attributes(QueueUrl=urls[dlq], AttributeNames=["QueueArn"])
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"],
                    "maxReceiveCount": int(redrive["maxReceiveCount"]),
                }
            )
        urls[logical_id] = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return urls


def _queue_name(value: Any, stack_name: str) -> str | None:
    if isinstance(value, dict) and "Fn::Sub" in value:
        return str(value["Fn::Sub"]).replace("${AWS::StackName}", stack_name)
    return value if isinstance(value, str) else None


def create_table_from_template(client: Any, logical_id: str, props: dict[str, Any], name: str) -> None:
    """Create a DynamoDB table exactly as the template defines its keys, billing and TTL."""
    args: dict[str, Any] = {
        "TableName": name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    for indexes in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if indexes in props:
            args[indexes] = props[indexes]
    client.create_table(**args)
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        client.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
        )


@dataclass
class DevStack:
    """Both servers on 127.0.0.1, on free ports. ``env`` is what the function needs to use them."""

    daily_limit: int = 2000
    userid: str = USERID
    secretkey: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    moto: SerialMotoServer | None = None
    aws_faults: AwsFaultProxy | None = None  # in front of moto: what the function talks to
    polyv: PolyvSimulator | None = None
    tables: dict[str, str] = field(default_factory=dict)  # logical id -> table name
    queues: dict[str, str] = field(default_factory=dict)  # logical id -> queue URL
    others: dict[str, str] = field(default_factory=dict)  # more accounts served: userid -> secretkey
    day_offset: int = 0  # a controllable clock: how many days ahead of real time the stack lives
    seconds_offset: float = 0.0  # ...and how many seconds more (a redelivery after a visibility timeout)

    def now(self) -> datetime:
        """The stack's clock: real time moved ``day_offset`` days and ``seconds_offset`` seconds
        ahead (Polyv's and the function's)."""
        return datetime.now(UTC) + self.offset()

    def offset(self) -> timedelta:
        return timedelta(days=self.day_offset, seconds=self.seconds_offset)

    def move_to_hour(self, hour: int, *, next_day: bool = False) -> datetime:
        """Move the clock forward (never back) to ``hour``:00 in the quota's time zone: later on
        the stack's current quota day, else (or when ``next_day``) on the next one. A story told
        from a set hour does not depend on the hour it runs at (16:00 UTC is Shanghai's midnight,
        and the day's outlook, the reserve's release and the late sweeps all read the hour)."""
        now = self.now().astimezone(QUOTA_TIMEZONE)
        target = now.replace(hour=hour, minute=0, second=0, microsecond=0)
        if next_day or target < now:
            # the next day's hour, by the calendar (a date, then the hour: DST-safe)
            day = now.date() + timedelta(days=1)
            target = datetime(day.year, day.month, day.day, hour, tzinfo=QUOTA_TIMEZONE)
        self.seconds_offset += (target - now).total_seconds()
        return target

    def start(self) -> DevStack:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
        self.moto = SerialMotoServer()
        self.moto.start()
        sqs_on_clock(self.now)
        self.aws_faults = AwsFaultProxy(
            self.moto.get_host_and_port(), clock=lambda: self.now().timestamp()
        ).start()
        self.polyv = PolyvSimulator(
            daily_limit=self.daily_limit, clock=lambda: self.now().timestamp()
        ).start()
        self.polyv.add_account(self.userid, self.secretkey)
        self.provision()
        return self

    def stop(self) -> None:
        if self.polyv is not None:
            self.polyv.stop()
        if self.aws_faults is not None:
            self.aws_faults.stop()
        if self.moto is not None:
            self.moto.stop()

    @property
    def aws_endpoint(self) -> str:
        assert self.moto is not None, "start() first"
        host, port = self.moto.get_host_and_port()
        return f"http://{host}:{port}"

    def aws_env(self) -> dict[str, str]:
        """What the function uses: AWS through the fault proxy (``aws_faults``) in front of moto."""
        assert self.aws_faults is not None, "start() first"
        return {
            "AWS_ENDPOINT_URL": self.aws_faults.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",  # moto's dummy credentials, not a secret
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }

    def env(self) -> dict[str, str]:
        """The function's environment variables, as template.yaml sets them in AWS."""
        assert self.polyv is not None, "start() first"
        return {
            **self.aws_env(),
            "POLYV_SECRET_ID": SECRET_NAME,
            "QUOTA_TABLE": self.tables["QuotaTable"],
            "POLYV_API_URL": self.polyv.url,
            "DAILY_FILE_LIMIT": str(self.daily_limit),
            "QUOTA_TIMEZONE": QUOTA_TIMEZONE.key,
            "DEFAULT_BR_INDEXES": "1,2,3",
            "POWERTOOLS_SERVICE_NAME": "polyv-prewarm",
            "POWERTOOLS_METRICS_NAMESPACE": "PolyvPrewarm",
            "POLYV_BACKOFF_BASE_SECONDS": "0.01",
            "POLYV_CONNECT_TIMEOUT_SECONDS": "1",
            "POLYV_READ_TIMEOUT_SECONDS": "2",
            "MANUAL_RESERVE": "0",  # the local stack's limits are small; tests that need one set it
            "PREWARM_QUEUE_URL": self.queues["PrewarmQueue"],  # the callback endpoint's, and the function's
            "DEAD_LETTER_QUEUE_URL": self.queues["PrewarmDeadLetterQueue"],
        }

    def _direct(self) -> dict[str, str]:
        """moto itself, past the fault proxy: what the stack and the tests read and write with."""
        return {
            "endpoint_url": self.aws_endpoint,
            "region_name": REGION,
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }

    def client(self, service: str) -> Any:
        return boto3.client(service, **self._direct())  # type: ignore[call-overload]

    def resource(self, service: str) -> Any:
        return boto3.resource(service, **self._direct())  # type: ignore[call-overload]

    def provision(self) -> None:
        """Create the template's tables and queues, and the Polyv secret (a template parameter in
        AWS)."""
        self.queues = create_queues_from_template(self.client("sqs"))
        dynamodb = self.client("dynamodb")
        for logical_id, props in template_resources("AWS::DynamoDB::Table").items():
            name = f"polyv-prewarm-{logical_id}"
            create_table_from_template(dynamodb, logical_id, props, name)
            self.tables[logical_id] = name
        self.client("secretsmanager").create_secret(Name=SECRET_NAME, SecretString=self._secret_string())

    def _secret_string(self) -> str:
        """The Polyv secret as a person writes it: the one-account form, or with more accounts
        the ``accounts`` form, this stack's own account first (the home account, docs/ledger.md)."""
        if not self.others:
            return json.dumps({"userid": self.userid, "secretkey": self.secretkey})
        accounts = {self.userid: self.secretkey, **self.others}
        return json.dumps({"accounts": [{"userid": u, "secretkey": k} for u, k in accounts.items()]})

    def add_account(self, userid: str, *, daily_limit: int | None = None) -> str:
        """Serve one more Polyv account (a group's 分帐号): a secretkey of its own in the simulator
        (with its own daily limit, if given) and in the Polyv secret, rewritten in the ``accounts``
        form. Returns the secretkey. :meth:`reset` goes back to the one account."""
        assert self.polyv is not None, "start() first"
        secretkey = secrets.token_urlsafe(18)
        self.polyv.add_account(userid, secretkey, daily_limit=daily_limit)
        self.others[userid] = secretkey
        self.client("secretsmanager").put_secret_value(
            SecretId=SECRET_NAME, SecretString=self._secret_string()
        )
        return secretkey

    def reset(self, *, daily_limit: int | None = None) -> None:
        """Empty every AWS resource and the simulator's counts; create the resources again."""
        assert self.polyv is not None
        if self.aws_faults is not None:
            self.aws_faults.clear()
        request = urllib.request.Request(f"{self.aws_endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=300):  # loopback only; moto may hold a lot
            pass
        if daily_limit is not None:
            self.daily_limit = daily_limit
        self.day_offset = 0
        self.seconds_offset = 0.0
        self.others.clear()
        self.polyv.reset(daily_limit=self.daily_limit)
        self.polyv.add_account(self.userid, self.secretkey)
        self.tables.clear()
        self.provision()

    def rotate_secret(self) -> str:
        """Give the account a new secretkey, in Polyv and in Secrets Manager."""
        assert self.polyv is not None
        self.secretkey = secrets.token_urlsafe(18)
        self.polyv.add_account(self.userid, self.secretkey)
        self.client("secretsmanager").put_secret_value(
            SecretId=SECRET_NAME, SecretString=self._secret_string()
        )
        return self.secretkey

    def _scoped(self, key: str, userid: str | None) -> str:
        """An account's key (docs/ledger.md, "Accounts"): the home account's is the one-account
        version's, another's is suffixed with its userid."""
        return key if userid in (None, self.userid) else f"{key}#{userid}"

    def quota_used(self, day: str, userid: str | None = None) -> int:
        """An account's day count in the ledger (None: this stack's own account's), read directly
        (not through the product's code)."""
        item = self.client("dynamodb").get_item(
            TableName=self.tables["QuotaTable"],
            Key={"pk": {"S": f"DAY#{day}"}, "sk": {"S": self._scoped("QUOTA", userid)}},
            ConsistentRead=True,
        )
        return int(item["Item"]["used"]["N"]) if "Item" in item else 0

    def backlog_keys(self, userid: str | None = None) -> list[str]:
        """``vid#brIndex`` of every file an account deferred (None: this stack's own), read directly."""
        pages = (
            self.client("dynamodb")
            .get_paginator("query")
            .paginate(
                TableName=self.tables["QuotaTable"],
                KeyConditionExpression="pk = :b",
                ExpressionAttributeValues={":b": {"S": self._scoped("BACKLOG", userid)}},
            )
        )
        return [item["sk"]["S"] for page in pages for item in page["Items"]]
