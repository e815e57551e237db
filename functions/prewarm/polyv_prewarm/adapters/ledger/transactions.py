"""``TransactWriteItems`` with named parts: a cancellation says, by name, which parts' conditions
failed and what their items held, so no caller depends on where an action sits in the list."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from botocore.exceptions import ClientError

from ...domain.ports import StoreUnavailable
from ..aws_errors import error_code
from ..dynamo import plain, store_errors
from .schema import STORE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

MAX_ACTIONS = 100  # per TransactWriteItems, in DynamoDB and in moto 5
#: Cancellation reasons that say "try again": another transaction, or throttling.
_TRANSIENT = {"None", None, "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}


class Part(NamedTuple):
    """One action of a transaction, by name (``counter``, ``file:<vid>#<br>``, ``release``...)."""

    name: str
    action: dict[str, Any]


class Cancelled(Exception):
    """Conditions failed: per part name, the item whose condition failed (``{}`` when it had no
    item), for those parts only. Empty when only a conflict cancelled it."""

    def __init__(self, failed: dict[str, dict[str, Any]]) -> None:
        super().__init__(", ".join(sorted(failed)) or "a conflict")
        self.failed = failed


def transact(
    client: DynamoDBClient, parts: Sequence[Part], *, retry_conflicts: bool = False, store: str = STORE
) -> None:
    """Run a transaction. When conditions fail, raise :class:`Cancelled`; a conflict with a
    concurrent transaction is tried again when ``retry_conflicts``, else a ``Cancelled`` with no
    failed part. Throttling that outlasts the SDK's retries, or any other cancellation, is
    :class:`StoreUnavailable`."""
    for attempt in range(5 if retry_conflicts else 1):
        reasons = _try(client, parts, store)
        if reasons is None:
            return
        codes = {r.get("Code") for r in reasons}
        if "ConditionalCheckFailed" in codes:
            raise Cancelled(
                {
                    part.name: plain(reason.get("Item") or {})
                    for part, reason in zip(parts, reasons, strict=False)
                    if reason.get("Code") == "ConditionalCheckFailed"
                }
            )
        if not codes <= _TRANSIENT:
            # e.g. ThrottlingError, ValidationError (an item over 400 KB): not ours to fix
            raise StoreUnavailable(f"{store}: transaction cancelled ({sorted(map(str, codes))})")
        if not retry_conflicts:
            raise Cancelled({})
        time.sleep(random.uniform(0, 0.02 * 2**attempt))  # a concurrent transaction: step aside
    raise StoreUnavailable(f"{store}: transaction kept conflicting with concurrent ones")


def _try(client: DynamoDBClient, parts: Sequence[Part], store: str) -> list[dict[str, Any]] | None:
    """None once committed; else DynamoDB's cancellation reasons, one per part, in order."""
    with store_errors(store):
        try:
            client.transact_write_items(TransactItems=[p.action for p in parts])  # type: ignore[misc]
            return None
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise
            return list(exc.response.get("CancellationReasons") or [])  # type: ignore[arg-type]
