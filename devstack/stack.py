"""The local stack: moto's server (DynamoDB, Secrets Manager, SQS over real HTTP) and the Polyv
simulator, with AWS resources created from the definitions in ``template.yaml``."""

from __future__ import annotations

import json
import logging
import secrets
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from cfnlint.decode import cfn_yaml
from moto.server import ThreadedMotoServer

from .polyv_simulator import PolyvSimulator

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"
USERID = "e6b23c6f51"  # the documented example account
SECRET_NAME = "polyv-prewarm/local"


def template_resources(resource_type: str, template: Path = TEMPLATE) -> dict[str, dict[str, Any]]:
    """Logical id -> Properties of every resource of one type in the SAM template."""
    document = cfn_yaml.load(str(template))
    return {
        name: resource.get("Properties", {})
        for name, resource in document.get("Resources", {}).items()
        if resource.get("Type") == resource_type
    }


def create_table_from_template(client: Any, logical_id: str, props: dict[str, Any], name: str) -> None:
    """Create a DynamoDB table exactly as the template defines its keys, billing and TTL."""
    args: dict[str, Any] = {
        "TableName": name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if "GlobalSecondaryIndexes" in props:
        args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    client.create_table(**args)
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        client.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
        )


@dataclass
class DevStack:
    """Both servers on 127.0.0.1, on free ports. ``env`` is what the function needs to use them."""

    daily_limit: int = 2000
    userid: str = USERID
    secretkey: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    moto: ThreadedMotoServer | None = None
    polyv: PolyvSimulator | None = None
    tables: dict[str, str] = field(default_factory=dict)  # logical id -> table name

    def start(self) -> DevStack:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.moto.start()
        self.polyv = PolyvSimulator(daily_limit=self.daily_limit).start()
        self.polyv.add_account(self.userid, self.secretkey)
        self.provision()
        return self

    def stop(self) -> None:
        if self.polyv is not None:
            self.polyv.stop()
        if self.moto is not None:
            self.moto.stop()

    @property
    def aws_endpoint(self) -> str:
        assert self.moto is not None, "start() first"
        host, port = self.moto.get_host_and_port()
        return f"http://{host}:{port}"

    def aws_env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",  # moto's dummy credentials, not a secret
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }

    def env(self) -> dict[str, str]:
        """The function's environment variables, as template.yaml sets them in AWS."""
        assert self.polyv is not None, "start() first"
        return {
            **self.aws_env(),
            "POLYV_SECRET_ID": SECRET_NAME,
            "QUOTA_TABLE": self.tables["QuotaTable"],
            "POLYV_API_URL": self.polyv.url,
            "DAILY_FILE_LIMIT": str(self.daily_limit),
            "QUOTA_TIMEZONE": "Asia/Shanghai",
            "DEFAULT_BR_INDEXES": "1,2,3",
            "POWERTOOLS_SERVICE_NAME": "polyv-prewarm",
            "POWERTOOLS_METRICS_NAMESPACE": "PolyvPrewarm",
            "POLYV_BACKOFF_BASE_SECONDS": "0.01",
            "POLYV_CONNECT_TIMEOUT_SECONDS": "1",
            "POLYV_READ_TIMEOUT_SECONDS": "2",
        }

    def client(self, service: str) -> Any:
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.aws_endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def provision(self) -> None:
        """Create the template's tables and the Polyv secret (a template parameter in AWS)."""
        dynamodb = self.client("dynamodb")
        for logical_id, props in template_resources("AWS::DynamoDB::Table").items():
            name = f"polyv-prewarm-{logical_id}"
            create_table_from_template(dynamodb, logical_id, props, name)
            self.tables[logical_id] = name
        self.client("secretsmanager").create_secret(
            Name=SECRET_NAME, SecretString=json.dumps({"userid": self.userid, "secretkey": self.secretkey})
        )

    def reset(self, *, daily_limit: int | None = None) -> None:
        """Empty every AWS resource and the simulator's counts; create the resources again."""
        assert self.polyv is not None
        request = urllib.request.Request(f"{self.aws_endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):  # loopback only
            pass
        if daily_limit is not None:
            self.daily_limit = daily_limit
        self.polyv.reset(daily_limit=self.daily_limit)
        self.polyv.add_account(self.userid, self.secretkey)
        self.tables.clear()
        self.provision()

    def rotate_secret(self) -> str:
        """Give the account a new secretkey, in Polyv and in Secrets Manager."""
        assert self.polyv is not None
        self.secretkey = secrets.token_urlsafe(18)
        self.polyv.add_account(self.userid, self.secretkey)
        self.client("secretsmanager").put_secret_value(
            SecretId=SECRET_NAME,
            SecretString=json.dumps({"userid": self.userid, "secretkey": self.secretkey}),
        )
        return self.secretkey

    def quota_used(self, day: str) -> int:
        item = (
            self.client("dynamodb")
            .get_item(
                TableName=self.tables["QuotaTable"],
                Key={"pk": {"S": f"QUOTA#{day}"}, "sk": {"S": "COUNTER"}},
                ConsistentRead=True,
            )
            .get("Item")
        )
        return int(item["used"]["N"]) if item else 0
