"""The polyv-prewarm command line against the local stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import EVENTS, ROOT, dead_lettered, set_limit, shift_days, vid

pytestmark = pytest.mark.integration


@pytest.fixture
def videos(stack):
    for i in range(10):
        stack.polyv.add_video(vid(i))
    return [vid(i) for i in range(10)]


def test_help_lists_every_subcommand():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "polyv-prewarm"), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    for word in (
        "submit",
        "invoke",
        "quota",
        "status",
        "backlog",
        "drain",
        "callback-url",
        "exit codes",
        "AWS_ENDPOINT_URL",
    ):
        assert word in result.stdout
    for command in ("submit", "invoke", "quota", "status", "backlog", "drain", "callback-url"):
        sub = subprocess.run(
            [sys.executable, "-m", "polyv_prewarm.cli", command, "--help"],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )
        assert sub.returncode == 0
        assert "usage: polyv-prewarm" in sub.stdout


def test_submit_dry_run_shows_the_planned_calls(run_cli, stack, videos):
    code, out, _ = run_cli("--json", "submit", *videos[:4], "--br", "1,2,3", "--dry-run")
    assert code == 0
    summary = json.loads(out)
    assert summary["counts"] == {"planned": 12}
    assert {f["call"] for f in summary["files"]} == {1}
    assert stack.polyv.tasks() == []
    code, out, _ = run_cli("submit", *videos[:4], "--dry-run")
    assert "would make 1 call(s)" in out


def test_submit_then_quota_status_and_force(run_cli, stack, videos):
    code, out, _ = run_cli("--json", "submit", videos[0], "--br", "1,2")
    assert code == 0
    assert json.loads(out)["counts"] == {"submitted": 2}
    code, out, _ = run_cli("--json", "quota")
    assert json.loads(out)["used"] == 2
    code, out, _ = run_cli("--json", "status", videos[0])
    assert json.loads(out)["days"][stack.polyv.today()]["1"]["state"] == "submitted"
    code, out, _ = run_cli("status", videos[0])
    assert "submitted" in out
    code, out, _ = run_cli("--json", "submit", videos[0], "--br", "1")
    assert json.loads(out)["counts"] == {"duplicate": 1}
    code, out, _ = run_cli("--json", "submit", videos[0], "--br", "1", "--force")
    assert json.loads(out)["counts"] == {"submitted": 1}


def test_backlog_and_drain_with_a_progress_bar(run_cli, stack, videos, monkeypatch):
    set_limit(stack, monkeypatch, 3)
    run_cli("submit", *videos[:5], "--br", "1")
    code, out, _ = run_cli("--json", "backlog")
    backlog = json.loads(out)
    assert backlog["files"] == 2
    assert [f["vid"] for f in backlog["oldest"]] == videos[3:5]
    shift_days(stack, monkeypatch, 1)
    code, out, _ = run_cli("drain")
    assert code == 0
    assert "2 submitted" in out
    assert "backlog now: 0 files" in out


def test_invoke_runs_the_handler_with_an_event_file(run_cli, stack, monkeypatch):
    code, out, _ = run_cli("invoke", str(EVENTS / "direct-vids.json"))
    assert code == 0
    assert json.loads(out)["counts"] == {"submitted": 4}
    code, out, _ = run_cli("invoke", str(EVENTS / "sqs-pipeline-messages.json"))
    assert code == 0  # the malformed message is dead-lettered (the stack's DEAD_LETTER_QUEUE_URL)
    assert json.loads(out)["batchItemFailures"] == []
    assert len(dead_lettered(stack)) == 1
    monkeypatch.delenv("DEAD_LETTER_QUEUE_URL")  # without a dead-letter queue it fails, as before
    code, out, _ = run_cli("invoke", str(EVENTS / "sqs-pipeline-messages.json"))
    assert code == 1
    assert json.loads(out)["batchItemFailures"]


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["status", "nope"], 2, "not a Polyv vid"),
        (["quota", "--day", "yesterday"], 2, "YYYY-MM-DD"),
        (["invoke", "/no/such/file.json"], 2, "cannot read"),
        (["--table", "no-such-table", "quota"], 2, "ResourceNotFoundException"),
        (["--api-url", "http://example.com/x", "quota"], 2, "POLYV_API_URL"),
    ],
)
def test_errors_are_one_line_with_a_meaningful_exit_code(run_cli, argv, code, message):
    got, _, err = run_cli(*argv)
    assert got == code
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_invoke_of_an_unknown_event(run_cli, tmp_path):
    path = tmp_path / "odd.json"
    path.write_text('{"hello": 1}')
    code, _, err = run_cli("invoke", str(path))
    assert code == 2
    assert "unknown event" in err


def test_polyv_down_parks_the_files(run_cli, stack, videos):
    stack.polyv.inject("http_error", count=10)
    code, out, _ = run_cli("--json", "submit", videos[0], "--br", "1")
    assert code == 0  # nothing to do by hand: the recovery drain sends them once Polyv answers
    summary = json.loads(out)
    assert summary["counts"] == {"deferred": 1}
    assert "waits in the backlog" in summary["files"][0]["reason"]
    assert summary["polyvDownSince"]


def test_console_script_against_the_local_stack(stack, videos):
    env = {**os.environ, **stack.env()}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "polyv-prewarm"), "--json", "quota"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["limit"] == 2000


def test_submit_with_priority_high_uses_the_reserve(run_cli, stack, videos, monkeypatch):
    set_limit(stack, monkeypatch, 4)
    monkeypatch.setenv("MANUAL_RESERVE", "1")
    run_cli("submit", *videos[:4], "--br", "1")  # the pipeline's share: 3 of 4
    code, out, _ = run_cli("--json", "submit", videos[5], "--br", "1", "--priority", "high")
    assert code == 0
    summary = json.loads(out)
    assert summary["counts"] == {"submitted": 1}
    assert summary["quota"]["reserve"] == {"files": 1, "used": 1}


HOSTILE = "[bold red]x[/x]\x1b]0;pwned\x07\x1b[2J\u202e"


def test_untrusted_text_is_printed_without_markup_or_control_characters(run_cli, stack, monkeypatch):
    """An S3 key (a backlog file's origin) and a Polyv message (its last error) are untrusted."""
    monkeypatch.setenv("COLUMNS", "400")  # a wide terminal: the cells are not wrapped
    stamp = "2026-11-30T01:02:03+00:00"
    stack.client("dynamodb").put_item(
        TableName=stack.tables["QuotaTable"],
        Item={
            "pk": {"S": "BACKLOG"},
            "sk": {"S": f"{vid(1)}#1"},
            "age": {"S": f"{stamp}#{vid(1)}#1"},
            "vid": {"S": vid(1)},
            "brIndex": {"N": "1"},
            "deferredAt": {"S": stamp},
            "origin": {"S": HOSTILE},
        },
    )
    code, out, err = run_cli("backlog")
    assert code == 0, err  # rich would raise MarkupError on "[/x]" if it read markup
    assert "[bold red]x[/x]" in out
    assert "\\x1b" in out
    assert "\\u202e" in out
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "\u202e" not in out
    code, out, _ = run_cli("--json", "backlog")
    assert code == 0
    assert "\x1b" not in out
    assert "\u202e" not in out
    assert json.loads(out)["oldest"][0]["origin"] == HOSTILE  # escaped, not lost


STACK_TEMPLATE = """
Resources:
  Placeholder:
    Type: AWS::SQS::Queue
Outputs:
  PolyvCallbackUrl:
    Value: https://abc123.execute-api.us-east-1.amazonaws.com/polyv/callback
"""


def test_callback_url_prints_the_deployed_stacks_endpoint(run_cli, stack, tmp_path, monkeypatch):
    cloudformation = stack.client("cloudformation")
    cloudformation.create_stack(StackName="prewarm-prod", TemplateBody=STACK_TEMPLATE)
    code, out, _ = run_cli("callback-url", "--stack", "prewarm-prod")
    assert (code, out) == (0, "https://abc123.execute-api.us-east-1.amazonaws.com/polyv/callback\n")
    code, out, _ = run_cli("--json", "callback-url", "--stack", "prewarm-prod")
    assert json.loads(out)["callbackUrl"].endswith("/polyv/callback")
    # without --stack: samconfig.toml's stack_name, read from the working directory as SAM does
    (tmp_path / "samconfig.toml").write_text(
        'version = 0.1\n[default.global.parameters]\nstack_name = "prewarm-prod"\n'
    )
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli("callback-url")
    assert code == 0
    assert out.strip().endswith("/polyv/callback")


def test_callback_url_of_a_missing_stack_or_endpoint_says_what_to_fix(run_cli, stack):
    stack.client("cloudformation").create_stack(
        StackName="no-callback", TemplateBody="Resources:\n  Q:\n    Type: AWS::SQS::Queue\n"
    )
    code, _, err = run_cli("callback-url", "--stack", "no-callback")
    assert code == 2
    assert "PolyvCallback=Disabled" in err
    code, _, err = run_cli("callback-url", "--stack", "never-deployed")
    assert code == 2
    assert "no stack 'never-deployed'" in err
