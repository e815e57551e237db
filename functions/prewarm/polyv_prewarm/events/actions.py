"""A person's (or a schedule's) invocations: the flags of a direct invocation, and the
operator actions ``{"action": "drain" | "sweep" | "recover" | "reconcile" | "quota" | "status"}``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from ..domain.claims import FORCE, NO_FLAGS, ClaimRequest
from ..domain.plan import VID_RE
from ..domain.preview import preview
from .kinds import InvalidEvent


class DirectFlags(NamedTuple):
    dry_run: bool = False
    rule: ClaimRequest = NO_FLAGS  # "force": true claims its files as FORCE
    priority_high: bool = False  # may use the day's MANUAL_RESERVE


def direct_flags(event: Mapping[str, Any]) -> DirectFlags:
    """The flags of a direct invocation: ``dryRun``, ``force`` (booleans), ``priority``."""
    priority = event.get("priority", "normal")
    if priority not in ("normal", "high"):
        raise InvalidEvent('priority must be "high" or "normal"')
    rule = FORCE if _flag(event, "force") else NO_FLAGS
    return DirectFlags(_flag(event, "dryRun"), rule, priority == "high")


def _flag(event: Mapping[str, Any], name: str) -> bool:
    value = event.get(name, False)
    if not isinstance(value, bool):
        raise InvalidEvent(f"{name} must be true or false")
    return value


class DrainAction(NamedTuple):
    """Submit deferred files as today's quota allows (the daily schedule sends this)."""


class SweepAction(NamedTuple):
    """Spend what is left of the day on the backlog, reserve included (the late schedule)."""


class RecoverAction(NamedTuple):
    """Send the files waiting out an outage, once Polyv answers (a schedule every few minutes)."""


class ReconcileAction(NamedTuple):
    """Queue what Polyv lists as uploaded that no event brought (a schedule every 15 minutes)."""


class QuotaAction(NamedTuple):
    day: str | None = None  # YYYY-MM-DD; None: today


class StatusAction(NamedTuple):
    vid: str


Action = DrainAction | SweepAction | RecoverAction | ReconcileAction | QuotaAction | StatusAction

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_action(event: Mapping[str, Any]) -> Action:
    """``{"action": "drain" | "sweep" | "recover" | "reconcile" | "quota" [, "day"] | "status",
    "vid"}``;
    raises :class:`InvalidEvent`."""
    action = event.get("action")
    if action == "drain":
        return DrainAction()
    if action == "sweep":
        return SweepAction()
    if action == "recover":
        return RecoverAction()
    if action == "reconcile":
        return ReconcileAction()
    if action == "quota":
        day = event.get("day")
        if day is not None and not (isinstance(day, str) and _DAY.fullmatch(day)):
            raise InvalidEvent("day must be a YYYY-MM-DD string")
        return QuotaAction(day)
    if action == "status":
        vid = event.get("vid")
        if not isinstance(vid, str) or not VID_RE.fullmatch(vid):
            raise InvalidEvent("status needs a vid of the Polyv shape")
        return StatusAction(vid)
    raise InvalidEvent(
        f"unknown action {preview(action, 32)!r}: expected drain, sweep, recover, reconcile, status or quota"
    )
