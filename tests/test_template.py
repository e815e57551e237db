"""template.yaml: cfn-lint clean, and the properties the product relies on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"


@pytest.fixture(scope="module")
def template():
    return cfn_yaml.load(str(TEMPLATE))


def resources(template, kind):
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_cfn_lint_reports_nothing():
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_function_runtime_handler_and_layer(template):
    fn = template["Resources"]["PrewarmFunction"]
    props = {**template["Globals"]["Function"], **fn["Properties"]}
    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == ["arm64"]
    assert props["CodeUri"] == "functions/prewarm/"
    assert props["Handler"] == "app.lambda_handler"
    assert (ROOT / "functions/prewarm/app.py").exists()
    ((layer_id, layer),) = resources(template, "AWS::Serverless::LayerVersion").items()
    assert layer["Metadata"]["BuildMethod"] == "python3.13"
    assert (ROOT / layer["Properties"]["ContentUri"] / "requirements.txt").exists()
    assert {"Ref": layer_id} in props["Layers"]


def test_every_configuration_variable_is_declared(template):
    fn = template["Resources"]["PrewarmFunction"]
    variables = fn["Properties"]["Environment"]["Variables"]
    for name in (
        "POLYV_SECRET_ID",
        "QUOTA_TABLE",
        "POLYV_API_URL",
        "DAILY_FILE_LIMIT",
        "QUOTA_TIMEZONE",
        "DEFAULT_BR_INDEXES",
        "VID_KEY_PATTERN",
        "MANUAL_RESERVE",
        "BACKLOG_MAX_AGE_DAYS",
        "DRAIN_ORDER",
    ):
        assert name in variables
    assert variables["QUOTA_TABLE"] == {"Ref": "QuotaTable"}
    assert "secretkey" not in json.dumps(variables).lower()


def test_sqs_source_reports_batch_item_failures_with_long_enough_visibility(template):
    fn = template["Resources"]["PrewarmFunction"]
    timeout = fn["Properties"].get("Timeout", template["Globals"]["Function"]["Timeout"])
    (event,) = [e for e in fn["Properties"]["Events"].values() if e["Type"] == "SQS"]
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue_id = event["Properties"]["Queue"]["Fn::GetAtt"][0]
    queue = template["Resources"][queue_id]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * timeout
    assert "deadLetterTargetArn" in queue["RedrivePolicy"]


def test_data_at_rest_is_encrypted(template):
    for queue in resources(template, "AWS::SQS::Queue").values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
    (table,) = resources(template, "AWS::DynamoDB::Table").values()
    assert table["Properties"]["SSESpecification"]["SSEEnabled"] is True
    assert table["Properties"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["Properties"]["TimeToLiveSpecification"]["Enabled"] is True


def test_secret_stays_out_of_outputs(template):
    outputs = json.dumps(template.get("Outputs", {}))
    assert "PolyvSecretName" not in outputs
    assert "secret" not in outputs.lower()


def statements(template, role_id):
    role = template["Resources"][role_id]
    assert role["Type"] == "AWS::IAM::Role"
    for policy in role["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:  # [condition, statement, AWS::NoValue]
                condition, statement, _ = statement["Fn::If"]
                yield condition, statement
            else:
                yield None, statement


def as_list(value):
    return value if isinstance(value, list) else [value]


def test_every_function_has_an_explicit_role_of_scoped_statements(template):
    """Without Role, SAM attaches AWS managed policies whose SQS and log statements are on "*"."""
    functions = resources(template, "AWS::Serverless::Function")
    assert functions
    for name, fn in functions.items():
        role = fn["Properties"].get("Role")
        assert role is not None, f"{name} has no explicit role"
        assert "Fn::GetAtt" in role, f"{name}: its role must be the template's own"
        assert "Policies" not in fn["Properties"], f"{name}: SAM policies would join the role"
        for condition, statement in statements(template, role["Fn::GetAtt"][0]):
            assert statement["Effect"] == "Allow"
            assert all("*" not in action for action in as_list(statement["Action"])), statement
            if statement["Resource"] == "*":  # X-Ray's write actions take no resource...
                assert {a.split(":")[0] for a in as_list(statement["Action"])} == {"xray"}
                assert condition == "TracingActive"  # ...and only when tracing is on
        log_group = fn["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        granted = [
            s for _, s in statements(template, role["Fn::GetAtt"][0]) if "logs:PutLogEvents" in s["Action"]
        ]
        assert [s["Resource"] for s in granted] == [{"Fn::GetAtt": [log_group, "Arn"]}]


def test_the_prewarm_role_reaches_its_queue_table_index_and_secret_only(template):
    fn = template["Resources"]["PrewarmFunction"]
    granted = {}
    for _, statement in statements(template, fn["Properties"]["Role"]["Fn::GetAtt"][0]):
        for action in as_list(statement["Action"]):
            granted.setdefault(action.split(":")[0], []).extend(as_list(statement["Resource"]))
    assert {r["Fn::GetAtt"][0] for r in granted["sqs"]} == {"PrewarmQueue", "PrewarmDeadLetterQueue"}
    assert {"Fn::GetAtt": ["QuotaTable", "Arn"]} in granted["dynamodb"]
    assert {"Fn::Sub": "${QuotaTable.Arn}/index/byAge"} in granted["dynamodb"]
    assert all("${PolyvSecretName}-??????" in r["Fn::Sub"] for r in granted["secretsmanager"])


def test_queue_and_bucket_policies_deny_plain_http(template):
    denied = set()
    for kind, key in (("AWS::SQS::QueuePolicy", "Queues"), ("AWS::S3::BucketPolicy", "Bucket")):
        for policy in resources(template, kind).values():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                if isinstance(statement, dict) and statement.get("Effect") == "Deny":
                    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                    denied |= {json.dumps(t) for t in as_list(policy["Properties"][key])}
    assert denied == {
        json.dumps({"Ref": "PrewarmQueue"}),
        json.dumps({"Ref": "PrewarmDeadLetterQueue"}),
        json.dumps({"Ref": "TranscodedBucket"}),
    }


def test_only_the_prewarm_queue_may_dead_letter_into_the_dlq(template):
    queue = template["Resources"]["PrewarmQueue"]["Properties"]
    dlq = template["Resources"]["PrewarmDeadLetterQueue"]["Properties"]
    assert dlq["RedriveAllowPolicy"]["redrivePermission"] == "byQueue"
    (source,) = dlq["RedriveAllowPolicy"]["sourceQueueArns"]
    assert source["Fn::Sub"].endswith(":" + queue["QueueName"]["Fn::Sub"])


def test_the_queue_admits_the_eventbridge_rule_the_readme_suggests(template):
    rule = template["Resources"]["EventBridgeObjectCreatedRule"]["Properties"]
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["PrewarmQueue", "Arn"]}
    assert rule["EventPattern"]["detail-type"] == ["Object Created"]
    policy = template["Resources"]["PrewarmQueuePolicy"]["Properties"]["PolicyDocument"]
    admitted = [s["Fn::If"][1] for s in policy["Statement"] if "Fn::If" in s]
    (events,) = [s for s in admitted if s["Principal"] == {"Service": "events.amazonaws.com"}]
    assert events["Condition"]["ArnEquals"]["aws:SourceArn"] == {
        "Fn::GetAtt": ["EventBridgeObjectCreatedRule", "Arn"]
    }


def test_cloudwatch_alarms_can_publish_to_the_alarm_topic(template):
    """CloudWatch cannot use the AWS managed key alias/aws/sns: every alarm action would fail."""
    (topic,) = resources(template, "AWS::SNS::Topic").values()
    key_ref = topic["Properties"].get("KmsMasterKeyId")
    if key_ref is None:
        return  # an unencrypted topic is deliverable
    assert isinstance(key_ref, dict), f"{key_ref!r}: an AWS managed key admits no alarm"
    assert "Ref" in key_ref, f"{key_ref!r}: the key must be the stack's own"
    key = template["Resources"][key_ref["Ref"]]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    allowed = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s["Effect"] == "Allow" and s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert allowed, "the key policy must admit cloudwatch.amazonaws.com"
    actions = {a for s in allowed for a in as_list(s["Action"])}
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= actions


def alarm_metrics(props):
    """(namespace, metric) of an alarm on one metric, or of each metric of a metric-math alarm."""
    if "MetricName" in props:
        return [(props["Namespace"], props["MetricName"])]
    return [
        (m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"])
        for m in props["Metrics"]
        if "MetricStat" in m
    ]


def test_alarms_notify_the_topic_and_watch_metrics_the_code_emits(template):
    from polyv_prewarm import telemetry

    emitted = (
        set(telemetry.FATE_METRICS.values())
        | set(telemetry.CALLBACK_METRICS.values())
        | set(telemetry.RECONCILE_METRICS)
        | {"QuotaUsedPercent", "BacklogOldestAgeHours", "PolyvDownMinutes"}
    )
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 7
    watched = set()
    for alarm in alarms.values():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        watched.update(alarm_metrics(props))
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible") in watched
    assert ("AWS/Lambda", "Errors") in watched
    assert ("PolyvPrewarm", "CallbacksForged") in watched
    assert ("PolyvPrewarm", "CallbacksUnavailable") in watched
    assert ("PolyvPrewarm", "PolyvDownMinutes") in watched
    assert ("PolyvPrewarm", "FilesFoundByReconcile") in watched
    assert ("PolyvPrewarm", "ReconcileFailuresInARow") in watched
    for namespace, name in watched:
        if namespace == "PolyvPrewarm":
            assert name in emitted


def test_dashboard_body_is_valid_json_with_the_operator_widgets(template):
    import re

    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body, _ = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    rendered = re.sub(r"\$\{[^}]+\}", "1", body)
    widgets = json.loads(rendered)["widgets"]
    titles = " | ".join(w["properties"]["title"] for w in widgets)
    for words in ("Quota used", "Files by fate", "latency", "backlog"):
        assert words in titles


def test_every_account_is_watched_by_name(template):
    """The figures by account (docs/operations.md, "Metrics by account"): the dashboard's widgets
    and the quota alarm read the metrics the code emits with an ``account`` dimension, and the
    alarm has one contributor per account (a Metrics Insights query grouped by account)."""
    import re

    from polyv_prewarm import telemetry

    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body, _ = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    by_account = re.findall(r"\{PolyvPrewarm,account,service\} MetricName=\\\"(\w+)\\\"", body)
    assert set(by_account) == {"QuotaUsed", "FilesDeferred", "BacklogSize", "PolyvErrors"}
    assert set(by_account) <= set(telemetry.ACCOUNT_METRICS)
    alarm = template["Resources"]["QuotaNearlySpentAlarm"]["Properties"]
    (query,) = [m["Expression"] for m in alarm["Metrics"] if m.get("ReturnData")]
    assert re.fullmatch(
        r'SELECT MAX\((\w+)\) FROM SCHEMA\("PolyvPrewarm", account, service\)\s+GROUP BY account\s*', query
    )
    assert re.search(r"MAX\((\w+)\)", query)[1] in telemetry.ACCOUNT_METRICS
    for name in ("PrewarmFunction", "CallbackFunction"):  # both serve the accounts POLYV_ACCOUNTS names
        variables = template["Resources"][name]["Properties"]["Environment"]["Variables"]
        assert variables["POLYV_ACCOUNTS"] == {"Ref": "PolyvAccounts"}


def test_the_accounts_parameter_admits_what_the_function_reads(template):
    import re

    from polyv_prewarm.config import ConfigurationError, _accounts

    pattern = template["Parameters"]["PolyvAccounts"]["AllowedPattern"]
    for value in ("", "e6b23c6f51", "e6b23c6f51:2000:100,b7c41a09d2:500"):
        assert re.fullmatch(pattern, value)
        _accounts(value)
    for value in ("e6b23c6f5", "E6B23C6F51", "e6b23c6f51:", "e6b23c6f51:1:2:3"):
        assert not re.fullmatch(pattern, value)
        with pytest.raises(ConfigurationError):
            _accounts(value)
    with pytest.raises(ConfigurationError):  # a zero limit: the function's own check
        _accounts("e6b23c6f51:0")
    assert not re.fullmatch(pattern, "e6b23c6f51,")  # stricter than the function, which skips it


def test_the_drain_is_scheduled_in_the_quota_time_zone(template):
    fn = template["Resources"]["PrewarmFunction"]
    props = fn["Properties"]["Events"]["DailyDrain"]["Properties"]
    assert props["ScheduleExpressionTimezone"] == {"Ref": "QuotaTimezone"}
    assert props["ScheduleExpression"] == "cron(5 0 * * ? *)"
    assert json.loads(props["Input"])["action"] == "drain"


def test_the_reconcile_runs_every_15_minutes(template):
    props = template["Resources"]["PrewarmFunction"]["Properties"]["Events"]["Reconcile"]["Properties"]
    assert props["ScheduleExpression"] == "rate(15 minutes)"
    assert json.loads(props["Input"])["action"] == "reconcile"


def test_the_queue_event_source_bounds_concurrency(template):
    fn = template["Resources"]["PrewarmFunction"]
    sqs = next(e for e in fn["Properties"]["Events"].values() if e["Type"] == "SQS")
    assert sqs["Properties"]["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "QueueMaxConcurrency"}
    parameter = template["Parameters"]["QueueMaxConcurrency"]
    assert 2 <= parameter["Default"] <= 5
    assert parameter["MinValue"] == 2  # Lambda's minimum for an SQS event source


def test_every_scan_suppression_carries_a_reason(template):
    skips = [
        (name, skip)
        for name, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips, "the template answers the scanner's findings"
    for name, skip in skips:
        assert str(skip["id"]).startswith("CKV_"), name
        assert len(str(skip.get("comment", "")).split()) >= 8, f"{name}: {skip['id']} needs a reason"


def test_the_layer_installs_a_full_lock_with_hashes():
    lock = (ROOT / "layers/dependencies/requirements.txt").read_text()
    pins = [line for line in lock.splitlines() if line and not line[0].isspace() and not line.startswith("#")]
    assert pins
    assert all("==" in pin and pin.endswith("\\") for pin in pins)  # every package pinned, hashes follow
    assert lock.count("--hash=sha256:") >= len(pins)
    for wanted in ("aws-lambda-powertools", "boto3", "requests", "tzdata"):
        assert any(pin.startswith(f"{wanted}==") for pin in pins), wanted


def test_one_tracing_parameter_sets_lambdas_tracing_and_the_functions_tracer(template):
    tracing = template["Parameters"]["Tracing"]
    assert tracing["AllowedValues"] == ["Active", "PassThrough"]
    assert tracing["Default"] == "PassThrough"  # docs/operations.md says why
    assert template["Globals"]["Function"]["Tracing"] == {"Ref": "Tracing"}
    assert template["Conditions"]["TracingActive"] == {"Fn::Equals": [{"Ref": "Tracing"}, "Active"]}
    fn = template["Resources"]["PrewarmFunction"]
    env = fn["Properties"]["Environment"]["Variables"]
    assert env["POWERTOOLS_TRACE_DISABLED"] == {"Fn::If": ["TracingActive", "false", "true"]}


def test_the_callback_endpoint_is_throttled_optional_and_outputs_what_to_paste_into_polyv(template):
    from devstack.local_http_api import LocalHttpApi

    api = template["Resources"]["CallbackApi"]
    assert api["Type"] == "AWS::Serverless::HttpApi"
    assert api["Condition"] == "CallbackEnabled"
    assert template["Parameters"]["PolyvCallback"]["Default"] == "Enabled"
    throttle = api["Properties"]["DefaultRouteSettings"]
    assert throttle == {
        "ThrottlingRateLimit": {"Ref": "CallbackRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "CallbackBurstLimit"},
    }
    assert template["Parameters"]["CallbackRateLimit"]["Default"] <= 20  # docs/callbacks.md
    assert template["Parameters"]["CallbackBurstLimit"]["Default"] <= 50
    assert "querystring" not in api["Properties"]["AccessLogSettings"]["Format"].lower()  # the sign
    fn = template["Resources"]["CallbackFunction"]
    assert fn["Properties"]["Handler"] == "callback_app.lambda_handler"
    assert (ROOT / fn["Properties"]["CodeUri"] / "callback_app.py").exists()
    routes = {
        (e["Properties"]["Method"], e["Properties"]["Path"])
        for e in fn["Properties"]["Events"].values()
        if e["Type"] == "HttpApi" and e["Properties"]["ApiId"] == {"Ref": "CallbackApi"}
    }
    assert routes == set(LocalHttpApi(lambda e, c: {}).routes)  # the local stack serves the same
    assert all(e["Properties"]["PayloadFormatVersion"] == "2.0" for e in fn["Properties"]["Events"].values())
    env = fn["Properties"]["Environment"]["Variables"]
    assert env["PREWARM_QUEUE_URL"] == {"Ref": "PrewarmQueue"}
    assert env["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"
    output = template["Outputs"]["PolyvCallbackUrl"]
    assert output["Condition"] == "CallbackEnabled"
    assert output["Value"]["Fn::Sub"].startswith("https://${CallbackApi}.execute-api.")
    assert output["Value"]["Fn::Sub"].endswith("/polyv/callback")


def test_the_callback_role_may_only_send_to_the_prewarm_queue_and_touch_callback_items(template):
    role = template["Resources"]["CallbackFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
    granted = {
        action: statement
        for _, statement in statements(template, role)
        for action in as_list(statement["Action"])
    }
    assert granted.pop("sqs:SendMessage")["Resource"] == {"Fn::GetAtt": ["PrewarmQueue", "Arn"]}
    records = {action: granted.pop(action) for action in list(granted) if action.startswith("dynamodb:")}
    assert set(records) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    }
    for statement in records.values():  # never the ledger's or the backlog's items
        assert statement["Resource"] == {"Fn::GetAtt": ["QuotaTable", "Arn"]}
        assert statement["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["CALLBACK#*"]}}
    assert set(granted) == {"logs:CreateLogStream", "logs:PutLogEvents", "secretsmanager:GetSecretValue"}


def test_a_callbacks_lease_outlives_its_function_and_its_steps_fit_the_timeout(template):
    """The record's lease (logic/receive_callback.py) is longer than the function can run, and the
    busiest step (the record's read and write, at their worst) fits the Timeout with room."""
    from polyv_prewarm.adapters.received_callbacks import PREFIX
    from polyv_prewarm.callback_handler import ANSWER_MARGIN_S
    from polyv_prewarm.callback_runtime import STEP_WORST_S
    from polyv_prewarm.logic.receive_callback import LEASE_MS

    fn = template["Resources"]["CallbackFunction"]["Properties"]
    assert fn["Timeout"] < LEASE_MS / 1000
    assert fn["Timeout"] > 2 * STEP_WORST_S + ANSWER_MARGIN_S
    assert fn["Environment"]["Variables"]["QUOTA_TABLE"] == {"Ref": "QuotaTable"}
    assert PREFIX == "CALLBACK#"


def test_transient_faults_never_dead_letter_a_message_within_a_day(template):
    """A message handed back (the ledger or the secret down) comes again after the handler's
    back-off; the queue's maxReceiveCount must outlast a day of it (a Polyv outage hands nothing
    back: its files wait in the backlog)."""
    from polyv_prewarm.handler import visibility_after

    queue = template["Resources"]["PrewarmQueue"]["Properties"]
    receives = queue["RedrivePolicy"]["maxReceiveCount"]
    waited = sum(visibility_after(n) for n in range(1, receives))
    assert waited >= 24 * 3600
    assert visibility_after(10**6) <= 15 * 60  # back within a quarter of an hour of an outage's end


def test_the_recovery_drain_runs_every_few_minutes(template):
    fn = template["Resources"]["PrewarmFunction"]
    props = fn["Properties"]["Events"]["RecoveryDrain"]["Properties"]
    assert props["ScheduleExpression"] == "rate(5 minutes)"
    assert json.loads(props["Input"])["action"] == "recover"
    env = fn["Properties"]["Environment"]["Variables"]
    assert env["PREWARM_QUEUE_URL"] == {"Ref": "PrewarmQueue"}
    assert env["DEAD_LETTER_QUEUE_URL"] == {"Ref": "PrewarmDeadLetterQueue"}


def test_the_late_sweeps_run_from_the_reserves_release_to_midnight(template):
    """The sweeps and the function's RESERVE_RELEASE_AT come from one parameter: the reserve is
    released at the first sweep, whatever hour an operator picks."""
    from devstack.timeline import resolve

    fn = template["Resources"]["PrewarmFunction"]
    props = fn["Properties"]["Events"]["LateSweep"]["Properties"]
    assert props["ScheduleExpressionTimezone"] == {"Ref": "QuotaTimezone"}
    assert json.loads(props["Input"])["action"] == "sweep"
    env = fn["Properties"]["Environment"]["Variables"]
    assert env["RESERVE_RELEASE_AT"] == {"Fn::Sub": "${ReserveReleaseHour}:00"}
    assert resolve(props["ScheduleExpression"], template) == "cron(0/10 23 * * ? *)"
    at_eighteen = {
        **template,
        "Parameters": {**template["Parameters"], "ReserveReleaseHour": {"Default": 18}},
    }
    assert resolve(props["ScheduleExpression"], at_eighteen) == "cron(0/10 18-23 * * ? *)"
    assert resolve(env["RESERVE_RELEASE_AT"], at_eighteen) == "18:00"
    assert env["PRIORITY_BR_INDEXES"] == {"Ref": "PriorityBrIndexes"}
    assert template["Parameters"]["PriorityBrIndexes"]["Default"] == ""  # as config.DEFAULTS: off


def test_every_default_of_the_template_is_the_functions(template):
    """A parameter's default is the function's own default for the variable it feeds."""
    from devstack.timeline import resolve
    from polyv_prewarm.config import DEFAULTS

    env = template["Resources"]["PrewarmFunction"]["Properties"]["Environment"]["Variables"]
    for name in ("RESERVE_RELEASE_AT", "PRIORITY_BR_INDEXES", "BACKFILL_MAX_AGE_DAYS", "DRAIN_ORDER"):
        assert str(resolve(env[name], template)) == DEFAULTS[name], name


def test_the_ledger_and_the_videos_outlive_the_stack(template):
    """The backlog and the day's count are data no deploy can rebuild; a bucket of videos too."""
    for logical_id in ("QuotaTable", "TranscodedBucket"):
        resource = template["Resources"][logical_id]
        assert resource["DeletionPolicy"] == "Retain", logical_id
        assert resource["UpdateReplacePolicy"] == "Retain", logical_id


def test_the_cli_reads_every_setting_the_template_gives_the_function(template):
    """polyv-prewarm --stack finds the function by this output and takes these variables from it."""
    from polyv_prewarm import deployment

    assert deployment.FUNCTION_OUTPUT in template["Outputs"]
    variables = template["Resources"]["PrewarmFunction"]["Properties"]["Environment"]["Variables"]
    settings = {name for name in variables if not name.startswith("POWERTOOLS_")}
    assert settings <= deployment.SETTINGS_VARIABLES
    assert {"QUOTA_TABLE", "DAILY_FILE_LIMIT", "MANUAL_RESERVE", "DRAIN_ORDER"} <= settings
