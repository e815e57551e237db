"""The CLI against a deployed stack (a CloudFormation stack and a Lambda function on moto, with the
template's Outputs and the function's environment), and the exit codes a script can trust."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from polyv_prewarm import cli
from tests.helpers import vid

pytestmark = pytest.mark.integration

STACK = "prewarm-prod"
DEPLOYED_LIMIT = "5000"


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return {}\n")
    return buffer.getvalue()


@pytest.fixture
def deployed(stack):
    """A stack as `sam deploy` leaves it: its function runs with the stack's settings, among them
    a daily limit of 5000 and the oldest-first drain that the shell running the CLI does not have."""
    settings = {
        name: value
        for name, value in stack.env().items()
        if not name.startswith(("AWS_", "POWERTOOLS_"))  # Lambda's own, and Powertools'
    }
    settings |= {"DAILY_FILE_LIMIT": DEPLOYED_LIMIT, "DRAIN_ORDER": "oldest", "MANUAL_RESERVE": "0"}
    role = stack.client("iam").create_role(
        RoleName="prewarm-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    function = stack.client("lambda").create_function(
        FunctionName=f"{STACK}-PrewarmFunction",
        Runtime="python3.13",
        Role=role,
        Handler="app.lambda_handler",
        Code={"ZipFile": _zip()},
        Environment={"Variables": {**settings, "POWERTOOLS_SERVICE_NAME": "polyv-prewarm"}},
    )["FunctionArn"]
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {
            "PrewarmFunctionArn": {"Value": function},
            "QuotaTableName": {"Value": settings["QUOTA_TABLE"]},
            "PolyvCallbackUrl": {
                "Value": "https://abc123.execute-api.us-east-1.amazonaws.com/polyv/callback"
            },
        },
    }
    stack.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(template))
    return settings


def test_the_stacks_settings_are_what_the_cli_runs_with(run_cli, stack, deployed, monkeypatch):
    monkeypatch.setenv("DAILY_FILE_LIMIT", "2000")  # the shell's, which the deployment overrides
    code, out, err = run_cli("--stack", STACK, "--json", "quota")
    assert code == cli.EXIT_OK
    assert json.loads(out)["limit"] == 5000
    assert "DAILY_FILE_LIMIT of the environment ignored" in err  # loudly
    stack.polyv.add_video(vid(1))
    code, out, _ = run_cli("submit", vid(1), "--br", "1", "--stack", STACK, "--json")  # options after it
    assert code == cli.EXIT_OK
    assert json.loads(out)["quota"]["limit"] == 5000


def test_a_flag_that_contradicts_the_deployment_is_refused(run_cli, deployed):
    code, _, err = run_cli("--stack", STACK, "--daily-limit", "2000", "quota")
    assert code == cli.EXIT_USAGE
    assert "--daily-limit 2000 contradicts stack 'prewarm-prod'" in err
    assert "DAILY_FILE_LIMIT='5000'" in err
    code, _, err = run_cli("--stack", STACK, "--drain-order", "newest", "drain")
    assert code == cli.EXIT_USAGE
    assert "DRAIN_ORDER='oldest'" in err
    code, out, _ = run_cli("--stack", STACK, "--daily-limit", "5000", "--json", "quota")  # agreeing: fine
    assert (code, json.loads(out)["limit"]) == (cli.EXIT_OK, 5000)


def test_without_a_table_the_cli_takes_samconfigs_stack(run_cli, deployed, tmp_path, monkeypatch):
    (tmp_path / "samconfig.toml").write_text(
        f'version = 0.1\n[default.deploy.parameters]\nstack_name = "{STACK}"\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QUOTA_TABLE")
    code, out, _ = run_cli("quota", "--json")
    assert (code, json.loads(out)["limit"]) == (cli.EXIT_OK, 5000)
    code, out, _ = run_cli("callback-url")
    assert out.strip().endswith("/polyv/callback")


def test_a_stack_that_is_not_ours_or_not_there(run_cli, stack):
    stack.client("cloudformation").create_stack(
        StackName="other", TemplateBody="Resources:\n  Q:\n    Type: AWS::SQS::Queue\n"
    )
    code, _, err = run_cli("--stack", "other", "quota")
    assert code == cli.EXIT_USAGE
    assert "no PrewarmFunctionArn output" in err
    code, _, err = run_cli("--stack", "never-deployed", "quota")
    assert code == cli.EXIT_USAGE
    assert "no stack 'never-deployed'" in err


@pytest.mark.parametrize("position", ["before", "after"])
def test_json_before_or_after_the_command(run_cli, stack, position):
    argv = (
        ["--json", "quota", "--day", "2026-11-27"]
        if position == "before"
        else ["quota", "--day", "2026-11-27", "--json"]
    )
    code, out, _ = run_cli(*argv)
    assert code == cli.EXIT_OK
    assert json.loads(out)["day"] == "2026-11-27"


def test_a_wrong_table_is_configuration_not_an_outage(run_cli, stack):
    for command in (["quota"], ["submit", vid(1)], ["drain"]):
        code, _, err = run_cli("--table", "no-such-table", *command)
        assert code == cli.EXIT_USAGE, command
        assert "ResourceNotFoundException" in err
        assert "--table" in err
        assert len(err.strip().splitlines()) == 1


def test_a_malformed_or_missing_secret_is_configuration(run_cli, stack):
    stack.client("secretsmanager").put_secret_value(SecretId="polyv-prewarm/local", SecretString="not json")
    code, _, err = run_cli("submit", vid(1))
    assert code == cli.EXIT_USAGE
    assert "is not JSON" in err
    code, _, err = run_cli("--secret-id", "no/such/secret", "submit", vid(1))
    assert code == cli.EXIT_USAGE
    assert "ResourceNotFoundException" in err
    assert stack.polyv.tasks() == []


def test_a_wrong_secretkey_is_configuration(run_cli, stack):
    stack.polyv.add_video(vid(1))
    stack.polyv.add_account(stack.userid, "another-secretkey")  # Polyv's differs from the secret's
    code, _, err = run_cli("submit", vid(1), "--br", "1")
    assert code == cli.EXIT_USAGE
    assert err.count("\n") == 1  # one line: the function's own log lines only with -v
    assert "Polyv rejects the signature" in err
    assert stack.secretkey not in err


def test_an_outage_of_aws_is_unavailable(run_cli, stack, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: connection refused
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    code, _, err = run_cli("quota")
    assert code == cli.EXIT_UNAVAILABLE
    assert len(err.strip().splitlines()) == 1


def test_rejected_files_exit_non_zero_and_say_so(run_cli, stack):
    stack.polyv.add_video(vid(1))
    code, out, _ = run_cli("--json", "submit", vid(1), "e6b23c6f51short", "--br", "1")
    assert code == cli.EXIT_REJECTED
    assert json.loads(out)["counts"] == {"submitted": 1, "rejected": 1}


def test_an_unexpected_error_is_one_line_and_exit_70(run_cli, stack, monkeypatch):
    def broken(args):
        raise RuntimeError("something nobody expected")

    monkeypatch.setitem(cli.COMMANDS, "quota", broken)
    code, _, err = run_cli("quota")
    assert code == cli.EXIT_BUG
    assert err.strip().splitlines() == [
        "polyv-prewarm: error: unexpected RuntimeError: something nobody expected (a bug: please report it)"
    ]
    code, _, err = run_cli("-v", "quota")
    assert "Traceback" in err
