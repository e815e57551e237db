"""The secretkey never reaches a log line, an exception or a summary, even at DEBUG."""

from __future__ import annotations

import json

import pytest

from polyv_prewarm import runtime
from polyv_prewarm.events import UnsupportedEvent
from tests.helpers import load_event, sqs_event, vid

pytestmark = pytest.mark.integration


def test_secret_absent_from_all_output_at_debug(stack, invoke, monkeypatch, capsys, caplog):
    from polyv_prewarm import handler as app

    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    app.logger.setLevel("DEBUG")
    caplog.set_level("DEBUG")
    old_secret = stack.secretkey
    outputs = []
    try:
        outputs.append(invoke(load_event("sqs-pipeline-messages.json")))  # malformed + rejected files
        outputs.append(invoke({"vids": [vid(1)], "dryRun": True}))
        # transient faults, each followed by success (a file of its own each: a duplicate makes no call)
        for n, fault in enumerate(("http_error", "non_json", "reset")):
            stack.polyv.add_video(vid(3 + n))
            stack.polyv.inject(fault)
            outputs.append(invoke({"vids": [vid(3 + n)], "brIndexes": [1], "dryRun": False}))
            assert outputs[-1]["counts"] == {"submitted": 1}, fault
        with pytest.raises(UnsupportedEvent) as unsupported:
            invoke({"unknown": "shape"})
        outputs.append(str(unsupported.value))
        stack.rotate_secret()  # warm container holds the old secret: sign rejected, refresh, retry
        stack.polyv.add_video(vid(2))
        outputs.append(invoke(sqs_event({"vid": vid(2), "brIndex": 1})))
        # a secret Polyv never accepts: configuration error path
        stack.polyv.add_account(stack.userid, "something-else-entirely")
        runtime.current.cache_clear()
        outputs.append(invoke(sqs_event({"vid": vid(2), "brIndex": 2})))
    finally:
        app.logger.setLevel("INFO")
    assert outputs[-1]["batchItemFailures"]  # the configuration error handed the work back
    captured = capsys.readouterr()
    text = captured.out + captured.err + caplog.text + json.dumps(outputs)
    assert "configuration error" in text  # the failure scenarios did run and log
    for secret in (old_secret, stack.secretkey):
        assert secret not in text
