"""The DynamoDB day ledger: per quota day, the count of files sent and one item per file handled.

Split by concern: the items and the claim rule's conditions (``schema``), transactions with named
parts (``transactions``), the claim (``claim``), the writes after it (``record``), the reads
(``reads``). :class:`DynamoDayLedger` is the port (``domain.ports.DayLedger``) over them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from ...domain.claims import FileClaim
from ...domain.model import FileRef, Lease, LedgerEntry, QuotaView
from ...domain.ports import ClaimResult, Settlement
from ...domain.quota import DayOutlook
from . import claim as claims
from . import reads, record
from .claim import balanced_parts
from .schema import Expiry, LedgerTable, parse_entry

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

__all__ = ["DynamoDayLedger", "LedgerTable", "balanced_parts", "parse_entry"]


class DynamoDayLedger:
    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient,
        *,
        timezone: ZoneInfo,
        retention_days: int,
        account: LedgerTable | None = None,
    ):
        """``account``: the account's part of the table (none: the home account's keys)."""
        self._table = account or LedgerTable(table_name)
        self._client = client
        self._expiry = Expiry(timezone, timedelta(days=retention_days))

    def claim(
        self,
        day: str,
        files: Sequence[FileClaim],
        limit: int,
        *,
        lease: Lease,
        now: datetime,
    ) -> ClaimResult:
        return claims.claim(self._client, self._table, self._expiry, day, files, limit, lease=lease, now=now)

    def settle(self, day: str, settlement: Settlement, *, lease: Lease, now: datetime) -> None:
        record.settle(self._client, self._table, self._expiry, day, settlement, lease=lease, now=now)

    def carry_over(
        self, day: str, submitted: Mapping[FileRef, str], origins: Mapping[FileRef, str], *, now: datetime
    ) -> None:
        record.carry_over(self._client, self._table, self._expiry, day, submitted, origins, now=now)

    def reserve_extra(self, day: str, count: int, limit: int) -> bool:
        return record.reserve_extra(self._client, self._table, day, count, limit)

    def mark_exhausted(self, day: str, limit: int) -> None:
        record.mark_exhausted(self._client, self._table, self._expiry, day)

    def usage(self, day: str, limit: int) -> QuotaView:
        return reads.usage(self._client, self._table, day, limit)

    def outlook(self, day: str) -> DayOutlook:
        return reads.outlook(self._client, self._table, day)

    def confirmed(self, day: str) -> int:
        return reads.confirmed(self._client, self._table, day)

    def lookup(self, day: str, files: Sequence[FileRef]) -> dict[FileRef, LedgerEntry]:
        return reads.lookup(self._client, self._table, day, files)

    def history(self, vid: str, days: Sequence[str]) -> dict[str, dict[int, LedgerEntry]]:
        return reads.history(self._client, self._table, vid, days)
