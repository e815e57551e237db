"""Where a file goes once a submission is done with it: one table, disposition x caller.

A submission gives every file it was handed exactly one :class:`Disposition` (what became of it:
sent, refused, found in doubt, parked by a stopped run...). What that means depends on who
submitted it: a fresh request (``PREWARM``) stores what was not sent in the backlog; a drain
(``DRAIN``) already holds its files in the backlog and moves, keeps or removes them; the recovery
drain (``RECOVERY``) sends files that wait out an outage, and returns those that find no quota to
the daily drains. :data:`PLACEMENTS` is the whole mapping, each row a fate for the report, the
reason it states and a backlog action; the logic applies it (``logic/placement.py``).
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from .claims import FileClaim
from .model import Fate, Tier


class Disposition(Enum):
    """What became of one file of a submission."""

    SUBMITTED = "Polyv took it (a taskId)"
    REJECTED = "Polyv refused it, alone (for good, or for now: a bitrate not there yet)"
    KNOWN = "handled this quota day already"
    HELD = "another invocation's live claim holds it"
    HANDED_BACK = "not sent (a fault, the run stopped): its message comes again"
    REFUSED = "its call was refused with an error this package does not know"
    NO_ROOM = "the day's quota has no room for it"
    HELD_BACK = "a tight day: a video's other definition waits for what the main ones leave"
    FOUND_IN_DOUBT = "its last call may have reached Polyv (found so before this call)"
    ANSWERED_IN_DOUBT = "Polyv answered its call with something of unknown meaning"
    UNISOLATED = "in a refused call the bisection budget left unsplit: a suspect"
    APART = "of a suspect message, not sent: no bisection call left to send it apart"
    PARKED = "the run stopped for a reason that passes (Polyv down, the deadline): waits"
    PARKED_IN_DOUBT = "as PARKED, and its call may have reached Polyv"


class Caller(Enum):
    PREWARM = "fresh traffic: what is not sent goes to the backlog"
    DRAIN = "a drain of the backlog: its files are there already"
    RECOVERY = "the recovery drain: files waiting out an outage"


class Action(Enum):
    """What the backlog does with the file."""

    NONE = "nothing: a fresh file that is done, or whose message comes again"
    DEFER = "stored in the row's tier (a fresh file)"
    DEFER_WAITING = "stored in the row's tier, waiting until the run's retry time"
    REMOVE = "out of the backlog: done"
    KEEP = "stays where it is"
    MOVE = "to the row's tier"
    WAIT = "waits until the run's retry time (in the row's tier, if it has one)"
    TO_DAILY = "no longer waiting: back to the daily drains"
    COUNT_FAILURE = "one more failed drain (parked after PARK_AFTER_FAILURES)"
    COUNT_REFUSAL = "one more refusal as a suspect, to the suspect tier (rejected after enough)"


class Placed(NamedTuple):
    """One file's disposition, with what the report states of it."""

    claim: FileClaim
    disposition: Disposition
    reason: str | None = None  # Polyv's, the ledger's, or why the calls ended
    task_id: str | None = None
    call: int | None = None  # 1-based index of the accepted call that carried it


class Placement(NamedTuple):
    """A row of the table: the fate, the reason stated (``{why}``: the file's own reason,
    ``{stopped}``: why the run stopped, ``{retry_at}``: when a waiting file is due), the action."""

    fate: Fate
    reason: str | None
    action: Action
    tier: Tier | None = None


DEFERRED_REASON = "today's Polyv quota is spent: deferred to the next quota day"
STILL_DEFERRED_REASON = "today's Polyv quota is spent: stays in the backlog"
HELD_BACK_REASON = "a tight day: held back for the main definitions, sent by the late sweep or a later drain"
#: Why a file in doubt waits: its tier is the backlog's last.
IN_DOUBT_REASON = "in doubt (its call may have reached Polyv): re-sent after every never-sent file"
#: Why a suspect's file waits unsent: the suspect tier isolates it.
SUSPECT_REASON = "of a message whose files Polyv refused, and no bisection call left to send it apart"
WAITS_FRESH = "{stopped}: waits in the backlog, sent again from {retry_at} UTC"
WAITS_DRAINED = "{stopped}: waits in the backlog"

_PREWARM, _DRAIN, _RECOVERY = Caller.PREWARM, Caller.DRAIN, Caller.RECOVERY
_EVERY = (_PREWARM, _DRAIN, _RECOVERY)
_DRAINS = (_DRAIN, _RECOVERY)


def _rows() -> dict[tuple[Disposition, Caller], Placement]:
    d, a, f = Disposition, Action, Fate
    rows: dict[tuple[Disposition, Caller], Placement] = {}

    def row(disposition: Disposition, callers: tuple[Caller, ...], placement: Placement) -> None:
        rows.update({(disposition, c): placement for c in callers})

    row(d.SUBMITTED, (_PREWARM,), Placement(f.SUBMITTED, None, a.NONE))
    row(d.SUBMITTED, _DRAINS, Placement(f.SUBMITTED, None, a.REMOVE))
    row(d.REJECTED, (_PREWARM,), Placement(f.REJECTED, "{why}", a.NONE))
    row(d.REJECTED, _DRAINS, Placement(f.REJECTED, "{why}", a.REMOVE))
    row(d.KNOWN, (_PREWARM,), Placement(f.DUPLICATE, "{why}", a.NONE))
    row(d.KNOWN, _DRAINS, Placement(f.DUPLICATE, "{why}", a.REMOVE))
    row(d.HELD, (_PREWARM,), Placement(f.HANDED_BACK, "{why}", a.NONE))
    row(d.HELD, _DRAINS, Placement(f.HANDED_BACK, "{why}", a.KEEP))
    row(d.HANDED_BACK, (_PREWARM,), Placement(f.HANDED_BACK, "{why}", a.NONE))
    row(d.HANDED_BACK, _DRAINS, Placement(f.HANDED_BACK, "{why}", a.KEEP))
    row(d.REFUSED, (_PREWARM,), Placement(f.HANDED_BACK, "{why}", a.NONE))
    row(d.REFUSED, _DRAINS, Placement(f.HANDED_BACK, "{why}", a.COUNT_FAILURE))
    row(d.NO_ROOM, (_PREWARM,), Placement(f.DEFERRED, DEFERRED_REASON, a.DEFER, Tier.NORMAL))
    row(d.NO_ROOM, (_DRAIN,), Placement(f.DEFERRED, STILL_DEFERRED_REASON, a.KEEP))
    row(d.NO_ROOM, (_RECOVERY,), Placement(f.DEFERRED, STILL_DEFERRED_REASON, a.TO_DAILY))
    row(d.HELD_BACK, (_PREWARM,), Placement(f.DEFERRED, HELD_BACK_REASON, a.DEFER, Tier.LATER))
    for doubt in (d.FOUND_IN_DOUBT, d.ANSWERED_IN_DOUBT):
        row(doubt, (_PREWARM,), Placement(f.DEFERRED, IN_DOUBT_REASON, a.DEFER, Tier.RESEND))
        row(doubt, _DRAINS, Placement(f.DEFERRED, IN_DOUBT_REASON, a.MOVE, Tier.RESEND))
    row(
        d.UNISOLATED,
        (_PREWARM,),
        Placement(f.DEFERRED, "{why}: a suspect, for the drains", a.DEFER, Tier.SUSPECT),
    )
    row(d.UNISOLATED, _DRAINS, Placement(f.DEFERRED, "{why}: a suspect", a.COUNT_REFUSAL, Tier.SUSPECT))
    row(d.APART, (_PREWARM,), Placement(f.DEFERRED, SUSPECT_REASON, a.DEFER, Tier.SUSPECT))
    row(d.APART, _DRAINS, Placement(f.DEFERRED, SUSPECT_REASON, a.MOVE, Tier.SUSPECT))
    row(d.PARKED, (_PREWARM,), Placement(f.DEFERRED, WAITS_FRESH, a.DEFER_WAITING, Tier.NORMAL))
    row(d.PARKED, _DRAINS, Placement(f.DEFERRED, WAITS_DRAINED, a.WAIT))
    row(d.PARKED_IN_DOUBT, (_PREWARM,), Placement(f.DEFERRED, WAITS_FRESH, a.DEFER_WAITING, Tier.RESEND))
    row(d.PARKED_IN_DOUBT, _DRAINS, Placement(f.DEFERRED, WAITS_DRAINED, a.WAIT, Tier.RESEND))
    return rows


#: Every (disposition, caller) a submission can produce; a missing one is a defect (KeyError).
PLACEMENTS = _rows()


def placement(disposition: Disposition, caller: Caller) -> Placement:
    return PLACEMENTS[(disposition, caller)]
