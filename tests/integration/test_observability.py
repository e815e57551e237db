"""Metrics (CloudWatch EMF) and structured logs that the template's alarms and dashboard read."""

from __future__ import annotations

import json

import pytest

from tests.helpers import load_event, vid

pytestmark = pytest.mark.integration


def emitted(text: str) -> tuple[list[dict], list[dict]]:
    """(EMF metric documents, log lines) printed on stdout."""
    docs = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [d for d in docs if "_aws" in d], [d for d in docs if "level" in d]


def metric_values(documents: list[dict], account: str | None = None) -> dict[str, float]:
    """Each metric's total over the documents of the service as a whole (``account`` None) or of
    one account (dimension ``account``)."""
    values: dict[str, float] = {}
    for doc in documents:
        if doc.get("account") != account:
            continue
        for definition in doc["_aws"]["CloudWatchMetrics"]:
            for metric in definition["Metrics"]:
                value = doc[metric["Name"]]
                values[metric["Name"]] = values.get(metric["Name"], 0) + (
                    sum(value) if isinstance(value, list) else value
                )
    return values


def test_metrics_and_correlated_logs(stack, invoke, capsys, monkeypatch, log_stream):
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    stack.polyv.add_video(vid(1))
    capsys.readouterr()
    invoke(
        {
            "videos": [
                {"vid": vid(1), "brIndex": 1},
                {"vid": vid(1), "brIndex": 1},
                {"vid": "x", "brIndex": 1},
                {"vid": "e6b23c6f51ffffffffffffffffffffff_e", "brIndex": 2},
            ]
        }
    )
    documents, _ = emitted(capsys.readouterr().out)
    _, logs = emitted(log_stream.getvalue())
    values = metric_values(documents)
    assert values["FilesSubmitted"] == 1
    assert values["FilesDuplicate"] == 1
    assert values["FilesRejected"] == 2
    assert values["FilesHandedBack"] == 0
    assert values["PolyvCalls"] == 1
    assert values["QuotaUsed"] == 1
    assert values["QuotaUsedPercent"] == 0.1
    assert values["PolyvLatency"] > 0
    assert values["PolyvErrors"] == 1  # the refused call before bisection isolated the unknown vid
    by_account = metric_values(documents, account=stack.userid)  # the dashboard's "by account"
    assert by_account == {
        "FilesSubmitted": 1,
        "FilesDeferred": 0,
        "QuotaUsed": 1,
        "QuotaRemaining": 1999,
        "QuotaUsedPercent": 0.1,
        "PolyvErrors": 1,
    }
    assert all(
        d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "account"]]
        for d in documents
        if "account" in d
    )
    reasons = {d["reason"] for d in documents if "FilesRejectedByReason" in d}
    assert reasons == {"invalid vid", "illeagal vid"}
    assert all(d["service"] == "polyv-prewarm" for d in documents)
    assert logs
    assert all(line.get("correlation_id") for line in logs)  # every line ties back to its cause


def test_sqs_log_lines_carry_the_message_id(stack, invoke, log_stream):
    event = load_event("sqs-pipeline-messages.json")
    invoke(event)
    _, logs = emitted(log_stream.getvalue())
    first_id = event["Records"][0]["messageId"]
    assert all(line["correlation_id"] == first_id for line in logs)
    malformed = [line for line in logs if line["message"] == "malformed message"]
    assert malformed[0]["message_id"] == "00000000-0000-0000-0000-000000007bbd"


def test_drain_reports_the_backlog(stack, invoke, capsys, monkeypatch):
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    capsys.readouterr()
    summary = invoke({"action": "drain"})
    assert summary["backlog"] == {
        "files": 0,
        "oldestDeferredAt": None,
        "waiting": 0,
        "tiers": {"normal": 0, "later": 0, "backfill": 0, "resend": 0, "suspect": 0},
    }
    documents = emitted(capsys.readouterr().out)[0]
    values = metric_values(documents)
    assert values["BacklogSize"] == 0
    assert values["BacklogOldestAgeHours"] == 0
    assert metric_values(documents, account=stack.userid)["BacklogSize"] == 0
