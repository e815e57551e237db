"""The claim rule: may a request claim (and count) a file, given what the day ledger holds for it?

One pure function, :func:`decide`. The DynamoDB ledger evaluates the same rule as condition
expressions inside the claim's transaction (``adapters/ledger/schema.py``), the in-memory fake
of the tests calls this function, and one table of cases holds all three to it
(``tests/contract/claim_cases.py``).

====================================================  =============================================
the file's entry today                                the decision
====================================================  =============================================
none                                                  claim
claimed, lease running                                held: the owner may still be sending it
refused for now (a bitrate not there yet), its time   claim
come, or the request names that bitrate (explicit)
submitted or rejected                                 known (a duplicate), unless ``force``: claim
claimed with its lease ended, or in doubt             in doubt: not now, unless ``resend`` (then claim,
                                                      counted again: over, never under) or ``force``
handed back                                           claim (it was certainly not sent)
====================================================  =============================================

A file in doubt may well be warm already (a lost answer usually means Polyv acted), while a file
never sent is certainly cold: a request claims it again only when it says so (``resend``), which
the logic does from quota no never-sent file needs (``domain/quota.py``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from .model import EntryState, FileRef, FileRequest, LedgerEntry, epoch_ms


class ClaimRequest(NamedTuple):
    """How a request claims a file: the claim rule's three switches."""

    force: bool = False  # send it again even if it was settled today
    explicit: bool = False  # the event named this bitrate (a callback's df, an explicit brIndex)
    resend: bool = False  # claim it even if it is in doubt (its call may have reached Polyv)


class Decision(StrEnum):
    CLAIM = "claim"  # claim it now, and count it
    HELD = "held"  # another invocation's live claim: not now, and not a duplicate
    KNOWN = "known"  # handled today already: a duplicate
    IN_DOUBT = "in_doubt"  # its last call's outcome is unknown: claimed again only by a resend


def in_doubt(entry: LedgerEntry, now: datetime) -> bool:
    """A call may have taken it: recorded in doubt, or claimed by an invocation that died."""
    return entry.state is EntryState.IN_DOUBT or (entry.state is EntryState.CLAIMED and not held(entry, now))


def held(entry: LedgerEntry, now: datetime) -> bool:
    """Claimed by an invocation whose lease has not ended: nobody else may touch it."""
    return (
        entry.state is EntryState.CLAIMED
        and entry.lease_until_ms is not None
        and entry.lease_until_ms >= epoch_ms(now)
    )


NO_FLAGS = ClaimRequest()
FORCE = ClaimRequest(force=True)  # a person's "send it again, even if it was sent today"


class FileClaim(NamedTuple):
    """A file's intent, the one value every port takes from the plan to the ledger and the
    backlog: which file, the request that asked for it (its origin, for the report and the
    ledger), how it is claimed, and whether it is a fresh first-rank file (counted in the day's
    rate, ``domain/quota.py``)."""

    file: FileRef
    request: FileRequest
    rule: ClaimRequest = NO_FLAGS
    first_rank: bool = False

    @property
    def origin(self) -> str:
        """How the ledger and the backlog name where it came from."""
        return self.request.origin.describe()

    def resent(self) -> FileClaim:
        """The same claim, taking the file even if it is in doubt (counted again)."""
        return self._replace(rule=self.rule._replace(resend=True), first_rank=False)


def decide(entry: LedgerEntry | None, now: datetime, request: ClaimRequest = NO_FLAGS) -> Decision:
    """The claim rule (the table above), for the entry a file has today (None: none)."""
    if entry is None:
        return Decision.CLAIM
    if held(entry, now):
        return Decision.HELD
    if entry.retry_after_ms is not None and (request.explicit or entry.retry_after_ms < epoch_ms(now)):
        return Decision.CLAIM
    if request.force:
        return Decision.CLAIM
    if entry.state in (EntryState.SUBMITTED, EntryState.REJECTED):
        return Decision.KNOWN
    if in_doubt(entry, now) and not request.resend:
        return Decision.IN_DOUBT
    return Decision.CLAIM
