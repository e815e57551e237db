"""What the DynamoDB adapters (``ledger``, ``backlog``) share: one low-level client per table, the
mapping of SDK errors to :class:`~polyv_prewarm.domain.ports.StoreUnavailable`, and the batch loops.

Both stores use botocore's low-level client, not boto3's resource layer: the resource would be a
second client (and a second connection pool) for the same table, and loading its model costs
every cold start. Its one convenience the backlog used, ``batch_writer`` (25 writes a request,
resending unprocessed items), is the short loop in :func:`batch_write`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from ..domain.ports import StoreUnavailable
from .aws_errors import describe_aws_error, misconfigured

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

BATCH_GET = 100  # keys per BatchGetItem
BATCH_WRITE = 25  # requests per BatchWriteItem
UNPROCESSED_ROUNDS = 8  # a batch whose items keep coming back unprocessed: the table is throttled

_deserialize = TypeDeserializer().deserialize
_serialize = TypeSerializer().serialize


def plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB-typed item as Python values (numbers as ``Decimal``)."""
    return {k: _deserialize(v) for k, v in item.items()}


def typed(item: Mapping[str, Any]) -> dict[str, Any]:
    """Python values as a DynamoDB-typed item."""
    return {k: _serialize(v) for k, v in item.items()}


@contextmanager
def store_errors(store: str) -> Iterator[None]:
    """Turn the SDK's errors into ``StoreUnavailable("<store>: <error code>")``."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        error = describe_aws_error(exc)
        raise StoreUnavailable(f"{store}: {error}", misconfigured=misconfigured(exc), code=error) from None


def batch_get(
    client: DynamoDBClient, table: str, keys: Sequence[Mapping[str, Any]], *, store: str
) -> Iterator[dict[str, Any]]:
    """Every item of ``keys`` that exists (consistent reads), as Python values."""
    for start in range(0, len(keys), BATCH_GET):
        request: dict[str, Any] = {
            table: {"Keys": list(keys[start : start + BATCH_GET]), "ConsistentRead": True}
        }
        while request:
            with store_errors(store):
                answer = client.batch_get_item(RequestItems=request)
            for raw in answer.get("Responses", {}).get(table, []):
                yield plain(raw)
            request = dict(answer.get("UnprocessedKeys") or {})


def batch_write(
    client: DynamoDBClient, table: str, requests: Iterable[Mapping[str, Any]], *, store: str
) -> None:
    """Run ``PutRequest``/``DeleteRequest`` items, 25 a request, resending unprocessed ones.
    ``requests`` is consumed 25 at a time: a generator keeps thousands of items out of memory."""
    pending_all = iter(requests)
    while batch := list(islice(pending_all, BATCH_WRITE)):
        _write_batch(client, table, batch, store=store)


def _write_batch(client: DynamoDBClient, table: str, pending: list[Mapping[str, Any]], *, store: str) -> None:
    for round_ in range(UNPROCESSED_ROUNDS):
        with store_errors(store):
            answer = client.batch_write_item(RequestItems={table: pending})  # type: ignore[dict-item]
        pending = list((answer.get("UnprocessedItems") or {}).get(table, []))
        if not pending:
            return
        time.sleep(random.uniform(0, min(1.0, 0.05 * 2**round_)))  # throttled: back off
    raise StoreUnavailable(f"{store}: writes kept coming back unprocessed (throttled)")
