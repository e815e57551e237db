"""The quota day: Polyv's 2000-files-a-day limit resets at midnight in a configured time zone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


def quota_day(instant: datetime, tz: ZoneInfo) -> str:
    """The quota day (``YYYY-MM-DD``) that ``instant`` falls in."""
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    return instant.astimezone(tz).date().isoformat()


def day_end(day: str, tz: ZoneInfo) -> datetime:
    """The UTC instant at which ``day`` ends in ``tz``."""
    start = datetime.combine(datetime.fromisoformat(day).date(), time.min, tzinfo=tz)
    return (start + timedelta(days=1)).astimezone(UTC)
