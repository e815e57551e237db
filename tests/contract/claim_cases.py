"""The claim rule as a table of cases: what the day ledger's entry for a file, and what the
request asks, decide. Written out by hand (not computed by the product's rule), and held to three
implementations: the domain's rule (tests/unit/test_claim_rule.py), the in-memory fake and the
DynamoDB ledger's conditions on moto (tests/integration/test_ledger_contract.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from polyv_prewarm.domain.claims import ClaimRequest, Decision
from polyv_prewarm.domain.model import EntryState, LedgerEntry, epoch_ms

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
CLAIM, HELD, KNOWN, DOUBT = Decision.CLAIM, Decision.HELD, Decision.KNOWN, Decision.IN_DOUBT
PLAIN, FORCED, EXPLICIT = ClaimRequest(), ClaimRequest(force=True), ClaimRequest(explicit=True)
RESEND = ClaimRequest(resend=True)


def at(seconds: float) -> int:
    """Epoch ms, ``seconds`` from NOW."""
    return epoch_ms(NOW + timedelta(seconds=seconds))


def entry(state: EntryState, *, lease_in: float | None = None, retry_in: float | None = None) -> LedgerEntry:
    return LedgerEntry(
        state=state,
        at=(NOW - timedelta(minutes=5)).isoformat(),
        task_id="t-earlier" if state is EntryState.SUBMITTED else None,
        reason="illeagal vid" if state is EntryState.REJECTED else None,
        origin="m-earlier",
        owner="another-claim",
        lease_until_ms=at(lease_in) if lease_in is not None else None,
        retry_after_ms=at(retry_in) if retry_in is not None else None,
    )


class Case(NamedTuple):
    name: str
    entry: LedgerEntry | None
    request: ClaimRequest
    expected: Decision


def _each(
    name: str,
    found: LedgerEntry | None,
    plain: Decision,
    forced: Decision,
    explicit: Decision,
    resend: Decision | None = None,
) -> list[Case]:
    """The four requests: plain, forced, naming the bitrate, and a resend (as plain unless given)."""
    return [
        Case(f"{name}", found, PLAIN, plain),
        Case(f"{name}, forced", found, FORCED, forced),
        Case(f"{name}, bitrate named", found, EXPLICIT, explicit),
        Case(f"{name}, a resend", found, RESEND, plain if resend is None else resend),
    ]


CASES: list[Case] = [
    *_each("no entry", None, CLAIM, CLAIM, CLAIM),
    *_each("claimed, lease running", entry(EntryState.CLAIMED, lease_in=60), HELD, HELD, HELD),
    *_each("claimed, lease ends this very ms", entry(EntryState.CLAIMED, lease_in=0), HELD, HELD, HELD),
    *_each("claimed, lease ended", entry(EntryState.CLAIMED, lease_in=-0.001), DOUBT, CLAIM, DOUBT, CLAIM),
    *_each("submitted", entry(EntryState.SUBMITTED), KNOWN, CLAIM, KNOWN),
    *_each("rejected for good", entry(EntryState.REJECTED), KNOWN, CLAIM, KNOWN),
    *_each(
        "refused for now, asked again later", entry(EntryState.REJECTED, retry_in=60), KNOWN, CLAIM, CLAIM
    ),
    *_each(
        "refused for now, its time is this ms", entry(EntryState.REJECTED, retry_in=0), KNOWN, CLAIM, CLAIM
    ),
    *_each(
        "refused for now, its time has come", entry(EntryState.REJECTED, retry_in=-1), CLAIM, CLAIM, CLAIM
    ),
    *_each("in doubt", entry(EntryState.IN_DOUBT), DOUBT, CLAIM, DOUBT, CLAIM),
    *_each("handed back", entry(EntryState.HANDED_BACK), CLAIM, CLAIM, CLAIM),
]
