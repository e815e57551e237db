"""`make demo` keeps working: the whole job on a fresh local stack, in its own process."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.integration


def test_the_demo_runs_every_event_the_next_days_drain_and_the_faults():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "functions" / "prewarm")])}
    result = subprocess.run(
        [sys.executable, "-m", "devstack.demo", "--faults"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for event in sorted(p.name for p in (ROOT / "events").glob("*.json")):
        assert f"── {event}" in out
    assert "invocation error" not in out
    assert "the next quota day begins" in out
    assert "deferred" in out
    drain = out.split("── scheduled-drain.json")[1].split("──")[0]
    assert "submitted" in drain
    assert "Polyv call:" in drain
    callbacks = out.split("── Polyv's callbacks")[1].split("── Polyv answers 503")[0]
    assert callbacks.count("HTTP 200, queued to prewarm") == 3  # two encodes and TranscodeComplete
    assert "encode_failed: HTTP 200, a definition failed to transcode" in callbacks
    assert "forged (signed with a wrong secretkey): HTTP 403" in callbacks
    assert "Polyv call: 2 files, brIndex [1, 2]" in callbacks
    assert "from Polyv's get-video-msg: ['" in callbacks
    assert "replayed: HTTP 200, already received: nothing queued (Polyv calls since: 0)" in callbacks
    outage = out.split("── Polyv answers 503")[1].split("── a lost callback")[0]
    lost = out.split("── a lost callback")[1].split("── two Polyv accounts")[0]
    assert "reconcile 15 min later: 1 video(s) listed, 2 file(s) no event brought" in lost
    assert "reconcile 30 min later: 1 video(s) listed, 0 file(s) no event brought" in lost  # once
    assert lost.count("Polyv call: 2 files, brIndex [1, 2]") == 1
    assert "handed back: 0" in outage
    assert "Polyv call: 4 files" in outage  # the 4 files of its 2 messages (one repeats a file), once
    assert "dead-lettered by the outage: 0" in outage
    accounts = out.split("── two Polyv accounts")[1].split("── faults")[0]
    calls = re.findall(r"Polyv call signed by (\w+): (\d+) files, vids of ([\w, ]+)", accounts)
    assert len({signer for signer, _, _ in calls}) == 2
    assert all(owners == signer for signer, _, owners in calls)  # never mixed
    quotas = re.findall(r"account (\w+): .*quota used (\d+) of (\d+), Polyv counted (\d+)", accounts)
    assert len(quotas) == 4  # each account on the first day and after the next day's drain
    first_day = quotas[:2]
    assert all(used == limit == polyv for _, used, limit, polyv in first_day)  # each filled its own
    assert "signed with e6b23c6f51's secretkey: HTTP 403" in accounts
    faults = out.split("── faults")[1]
    assert faults.count("fate: submitted") == 4
    assert "fate: handed_back — being submitted by another invocation" in faults
    for line in faults.splitlines():
        if "DynamoDB counter" in line:
            counter, polyv = (int(x) for x in re.findall(r"(?:counter|counted) (\d+)", line))
            assert counter >= polyv  # never under-counts
