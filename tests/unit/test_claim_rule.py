"""The domain's claim rule against the table of cases (tests/contract/claim_cases.py), and the
in-memory fake's claims against the same table (the DynamoDB ledger's: test_ledger_contract.py)."""

from __future__ import annotations

import pytest

from polyv_prewarm.domain.claims import Decision, decide
from polyv_prewarm.domain.model import FileRef, Lease
from tests.contract.claim_cases import CASES, NOW, at
from tests.fakes import InMemoryLedger, claims_of, vid

DAY = "2026-11-28"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_domain_rule(case):
    assert decide(case.entry, NOW, case.request) is case.expected


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_in_memory_ledger(case):
    ledger = InMemoryLedger()
    file = FileRef(vid(1), 1)
    if case.entry is not None:
        ledger.files[DAY] = {file: case.entry}
    result = ledger.claim(
        DAY,
        claims_of([(file, "contract")], case.request),
        10,
        lease=Lease("contract", at(120)),
        now=NOW,
    )
    decided = {
        Decision.CLAIM: result.granted,
        Decision.HELD: result.held,
        Decision.KNOWN: result.known,
        Decision.IN_DOUBT: result.in_doubt,
    }
    assert [d for d, files in decided.items() if file in files] == [case.expected]
