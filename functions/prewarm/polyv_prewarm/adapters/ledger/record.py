"""Writes after the claim: a chunk's record (each file's fate, the quota given back once), the
late count of a call that straddled midnight, and the counter alone (a re-send, an exhausted day)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ...domain.model import EntryState, FileRef, Lease
from ...domain.ports import Settlement, StoreUnavailable
from ..aws_errors import error_code
from ..dynamo import store_errors
from .claim import MAX_CLAIM_FILES, balanced_parts
from .schema import RELEASE_SK, STORE, Expiry, LedgerTable, count_action, file_key, quota_key, state, text
from .transactions import MAX_ACTIONS, Cancelled, Part, transact

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

RELEASE, RECEIPT = "release", "receipt"


def settle(
    client: DynamoDBClient,
    table: LedgerTable,
    expiry: Expiry,
    day: str,
    settlement: Settlement,
    *,
    lease: Lease,
    now: datetime,
) -> None:
    """Record the fates of the files claimed under ``lease`` (each conditional on the claim still
    being ours) and give back ``settlement.release``, in transactions of up to 100 parts."""
    parts: list[Part] = []
    if settlement.release:
        parts += _release(table, expiry, day, settlement.release, lease)
    for file, settled in settlement.fates.items():
        # the taskId of a submitted file, the reason of a rejected or handed back one
        name = "t" if settled.state is EntryState.SUBMITTED else "r"
        texts = {name: settled.text} if settled.text is not None else {}
        update = _fate(table, day, file, settled.state, lease, now, texts, settled.retry_after_ms)
        parts.append(Part(f"fate:{file.key}", update))
    for start in range(0, len(parts), MAX_ACTIONS):  # the release and its receipt come first: together
        _transact_owned(client, parts[start : start + MAX_ACTIONS])


def _fate(
    table: LedgerTable,
    day: str,
    file: FileRef,
    fate: EntryState,
    lease: Lease,
    now: datetime,
    texts: Mapping[str, str],
    retry_after_ms: int | None,
) -> dict[str, Any]:
    """Record one file's fate, ending its lease, if the claim is still ours."""
    values = {":s": state(fate), ":at": {"S": now.isoformat()}, ":owner": {"S": lease.owner}}
    sets = "SET #s = :s, #at = :at"
    for name, value in texts.items():
        values[f":{name}"] = text(value)
        sets += f", {name} = :{name}"
    if retry_after_ms is not None:
        values[":x"] = {"N": str(retry_after_ms)}
        sets += ", x = :x"
    return {
        "Update": {
            "TableName": table.name,
            "Key": file_key(day, file),
            "UpdateExpression": sets + " REMOVE #l",
            "ConditionExpression": "#w = :owner",
            "ExpressionAttributeNames": {"#s": "s", "#at": "at", "#l": "l", "#w": "w"},
            "ExpressionAttributeValues": values,
        }
    }


def _release(table: LedgerTable, expiry: Expiry, day: str, release: int, lease: Lease) -> list[Part]:
    """Give back ``release`` files of quota, once: with a receipt item (``RELEASE#<owner>``) that
    only the first run can create, so a record run again (after an error whose write had
    committed) cannot give the same quota back twice."""
    give_back = {
        "TableName": table.name,
        "Key": quota_key(day, table.counter),
        "UpdateExpression": "SET used = used - :released",
        "ExpressionAttributeValues": {":released": {"N": str(release)}},
    }
    receipt = {
        "TableName": table.name,
        "Item": {
            "pk": {"S": f"DAY#{day}"},
            "sk": {"S": RELEASE_SK + lease.owner},
            "n": {"N": str(release)},
            "expiresAt": expiry.of(day),
        },
        "ConditionExpression": "attribute_not_exists(pk)",
    }
    return [Part(RELEASE, {"Update": give_back}), Part(RECEIPT, {"Put": receipt})]


def _transact_owned(client: DynamoDBClient, parts: list[Part]) -> None:
    """Run a record. Drop the files whose claim another invocation took over once our lease
    ended (theirs is the newer truth), and a release whose receipt exists (done before), then
    run the rest again."""
    while parts:
        try:
            transact(client, parts, retry_conflicts=True)
            return
        except Cancelled as cancelled:
            lost = set(cancelled.failed)
            if not lost:
                raise StoreUnavailable(f"{STORE}: a record kept being cancelled") from None
            if RECEIPT in lost:
                lost.add(RELEASE)  # given back before: not again
            parts = [p for p in parts if p.name not in lost]


def carry_over(
    client: DynamoDBClient,
    table: LedgerTable,
    expiry: Expiry,
    day: str,
    submitted: Mapping[FileRef, str],
    origins: Mapping[FileRef, str],
    *,
    now: datetime,
) -> None:
    """Count files Polyv accepted in ``day`` although they were claimed the day before (a call
    that straddled midnight), whatever the limit, and record them as submitted."""
    expires = expiry.of(day)
    for part in balanced_parts(list(submitted), MAX_CLAIM_FILES):
        parts = [Part("counter", count_action(table, day, len(part), expires))]
        for file in part:
            item = {
                **file_key(day, file),
                "s": state(EntryState.SUBMITTED),
                "at": {"S": now.isoformat()},
                "t": text(submitted[file]),
                "o": text(origins.get(file) or "-"),
                "w": {"S": uuid.uuid4().hex},
                "expiresAt": expires,
            }
            parts.append(Part(f"file:{file.key}", {"Put": {"TableName": table.name, "Item": item}}))
        transact(client, parts, retry_conflicts=True)


# -- the counter alone --------------------------------------------------------------------------
def reserve_extra(client: DynamoDBClient, table: LedgerTable, day: str, count: int, limit: int) -> bool:
    """Count ``count`` more files (all or nothing), to re-send a call of unknown outcome."""
    return _update_counter(
        client,
        table,
        day,
        "SET used = used + :n",
        {":n": {"N": str(count)}, ":room": {"N": str(limit - count)}},
        condition="used <= :room AND attribute_not_exists(exhausted)",
    )


def mark_exhausted(client: DynamoDBClient, table: LedgerTable, expiry: Expiry, day: str) -> None:
    """Polyv itself says the day's quota is spent: no further claim today (the count stays)."""
    _update_counter(
        client,
        table,
        day,
        "SET exhausted = :true, used = if_not_exists(used, :zero) + :zero, "
        "expiresAt = if_not_exists(expiresAt, :ttl)",
        {":true": {"BOOL": True}, ":zero": {"N": "0"}, ":ttl": expiry.of(day)},
    )


def _update_counter(
    client: DynamoDBClient,
    table: LedgerTable,
    day: str,
    expression: str,
    values: dict[str, Any],
    *,
    condition: str | None = None,
) -> bool:
    """False when ``condition`` failed."""
    args: dict[str, Any] = {
        "TableName": table.name,
        "Key": quota_key(day, table.counter),
        "UpdateExpression": expression,
        "ExpressionAttributeValues": values,
    }
    if condition:
        args["ConditionExpression"] = condition
    with store_errors(STORE):
        try:
            client.update_item(**args)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
    return True
