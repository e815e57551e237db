"""Polyv's breaker: once a call has failed for good (its attempts spent on 5xx, resets, timeouts
before sending), invocations stop calling Polyv and park their files; one probe at a time finds
out when it is back. Pure: the state and its rules; the DynamoDB item is ``adapters/breaker.py``.

The breaker opens for OPEN_FIRST, and every failed probe doubles that, up to OPEN_AT_MOST: a
blip costs half a minute of parking, an outage of hours a probe every five minutes (a handful of
calls an hour, far below Polyv's rate limit), and work parked during it is sent within minutes of
Polyv's return by the recovery drain (every 5 minutes).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple


def epoch_ms(instant: datetime) -> int:  # model.epoch_ms's rule: model imports this module
    return int(instant.timestamp() * 1000)


OPEN_FIRST = timedelta(seconds=30)
OPEN_AT_MOST = timedelta(minutes=5)
#: A probe holds its right for this long: the invocation that won it may die, and another may probe.
PROBE_LEASE = timedelta(seconds=60)


class BreakerState(NamedTuple):
    down_since: str | None = None  # ISO time of the first failure of this outage; None: closed
    down_until_ms: int | None = None  # no call before then (but a probe's)
    failures: int = 0  # failed calls and probes of this outage

    @property
    def open(self) -> bool:
        return self.down_since is not None

    def waiting(self, now: datetime) -> bool:
        """Open, and not yet time for a probe."""
        return self.open and self.down_until_ms is not None and self.down_until_ms > epoch_ms(now)

    def down_for(self, now: datetime) -> timedelta:
        if self.down_since is None:
            return timedelta(0)
        return max(timedelta(0), now - datetime.fromisoformat(self.down_since))

    def retry_at(self, now: datetime) -> datetime:
        """When parked work may be tried again: the end of this opening, or now."""
        if self.down_until_ms is None:
            return now
        return max(now, datetime.fromtimestamp(self.down_until_ms / 1000, now.tzinfo))


def opening(failures: int) -> timedelta:
    """How long the breaker stays open after its ``failures``-th failure (1, 2, ...)."""
    doubled: timedelta = OPEN_FIRST * 2 ** max(0, min(failures - 1, 16))
    return min(OPEN_AT_MOST, doubled)


CLOSED = BreakerState()
