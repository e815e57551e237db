"""An account's reconcile mark as one DynamoDB item: ``pk = "RECONCILE"``, ``sk = <userid>``, with
``since`` (ISO instant: the uploads still to look at start there), ``page`` and ``passEnd`` (a pass
in progress), ``failures`` (runs in a row whose listing failed), ``candidates`` (the vids found
unbrought while events were in flight, ``vid#brIndex``: at most a run's, 3,000, ~110 KB). No item: the
account was never reconciled. Written whole after each run (docs/ledger.md, "The reconcile"); two
runs at once (the schedule's and a person's) both write a mark that is safe to resume from: the
last one wins, and a window read twice finds its files in the ledger."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from ..domain.model import FileRef
from ..domain.reconcile import Mark
from .dynamo import plain, store_errors, typed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

PK = "RECONCILE"
STORE = "the reconcile mark"


class DynamoReconcileMarks:
    def __init__(self, table_name: str, client: DynamoDBClient, userid: str) -> None:
        self._table = table_name
        self._client = client
        self._key = {"pk": {"S": PK}, "sk": {"S": userid}}

    def get(self) -> Mark | None:
        with store_errors(STORE):
            raw = self._client.get_item(TableName=self._table, Key=self._key, ConsistentRead=True).get("Item")
        if raw is None:
            return None
        item = plain(raw)
        try:
            return Mark(
                since=datetime.fromisoformat(str(item["since"])),
                page=int(item.get("page", 1)),
                pass_end=datetime.fromisoformat(str(item["passEnd"])) if item.get("passEnd") else None,
                failures=int(item.get("failures", 0)),
                candidates=frozenset(_file(str(key)) for key in item.get("candidates", ())),
            )
        except (KeyError, ValueError, TypeError):
            return None  # a mark written by hand without its fields: a first run again (safe: reads more)

    def put(self, mark: Mark) -> None:
        item = {
            "since": mark.since.isoformat(),
            "page": mark.page,
            "failures": mark.failures,
            **({"passEnd": mark.pass_end.isoformat()} if mark.pass_end is not None else {}),
            # a string set of "vid#brIndex"
            **({"candidates": {f"{f.vid}#{f.br_index}" for f in mark.candidates}} if mark.candidates else {}),
        }
        with store_errors(STORE):
            self._client.put_item(TableName=self._table, Item={**self._key, **typed(item)})


def _file(key: str) -> FileRef:
    vid, _, br = key.rpartition("#")
    return FileRef(vid, int(br))
