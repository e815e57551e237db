"""Reads of the day ledger: a day's count, some files' entries, a video's history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ...domain.model import BR_INDEXES, EntryState, FileRef, LedgerEntry, QuotaView
from ...domain.quota import DayOutlook
from ..dynamo import batch_get, plain, store_errors
from .schema import STORE, LedgerTable, file_key, file_of, parse_entry, quota_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


def usage(client: DynamoDBClient, table: LedgerTable, day: str, limit: int) -> QuotaView:
    item = _counter(client, table, day)
    return QuotaView(
        day=day, used=int(item.get("used", 0)), limit=limit, exhausted=bool(item.get("exhausted"))
    )


def confirmed(client: DynamoDBClient, table: LedgerTable, day: str) -> int:
    """How many of the day's files Polyv answered a taskId for: a count of its ``submitted`` file
    items (one query, paged; a day of 2,000 files reads ~400 KB: ~50 read units). Kept off the
    hot path (the record's transaction stays one of 100 actions): asked by the late sweeps, the
    morning drain and ``quota`` only."""
    args: dict[str, Any] = {
        "TableName": table.name,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :file)",
        "FilterExpression": "#s = :submitted",
        "ExpressionAttributeNames": {"#s": "s"},
        "ExpressionAttributeValues": {
            ":pk": {"S": f"DAY#{day}"},
            ":file": {"S": table.files},
            ":submitted": {"S": EntryState.SUBMITTED.value},
        },
        "Select": "COUNT",
    }
    count = 0
    while True:
        with store_errors(STORE):
            answer = client.query(**args)
        count += int(answer.get("Count", 0))
        if "LastEvaluatedKey" not in answer:
            return count
        args["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def outlook(client: DynamoDBClient, table: LedgerTable, day: str) -> DayOutlook:
    item = _counter(client, table, day)
    since = item.get("frs")
    return DayOutlook(
        used=int(item.get("used", 0)),
        first_rank=int(item.get("fr", 0)),
        first_rank_since=datetime.fromisoformat(str(since)) if since else None,
    )


def _counter(client: DynamoDBClient, table: LedgerTable, day: str) -> dict[str, Any]:
    """The day's counter item as Python values (empty before the day's first claim)."""
    with store_errors(STORE):
        raw = client.get_item(
            TableName=table.name, Key=quota_key(day, table.counter), ConsistentRead=True
        ).get("Item")
    return plain(raw or {})


def lookup(
    client: DynamoDBClient, table: LedgerTable, day: str, files: Sequence[FileRef]
) -> dict[FileRef, LedgerEntry]:
    keys = [file_key(day, f) for f in dict.fromkeys(files)]
    return {file_of(item): parse_entry(item) for item in batch_get(client, table.name, keys, store=STORE)}


def history(
    client: DynamoDBClient, table: LedgerTable, vid: str, days: Sequence[str]
) -> dict[str, dict[int, LedgerEntry]]:
    keys = [file_key(day, FileRef(vid, br)) for day in days for br in BR_INDEXES]
    found: dict[str, dict[int, LedgerEntry]] = {}
    for item in batch_get(client, table.name, keys, store=STORE):
        day = str(item["pk"]).removeprefix("DAY#")
        found.setdefault(day, {})[file_of(item).br_index] = parse_entry(item)
    return found
