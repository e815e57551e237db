"""BASELINE, NOT THE PRODUCT: the least a cold Lambda start could do for one file.

Import boto3, requests and Powertools (Logger, batch, parameters); create the AWS clients; read
the secret; make one conditional counter update; make one signed POST. Run in a fresh interpreter
by bench/run.py with the local stack's environment and a vid as argv[1].
"""

from __future__ import annotations

import json
import os
import sys
import time

import boto3
import requests
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities import batch, parameters  # noqa: F401  (the unavoidable imports)

from polyv_prewarm.adapters.signing import signed_form
from polyv_prewarm.domain.model import FileRef

logger = Logger(service="baseline")
dynamodb = boto3.client("dynamodb")
secret = json.loads(parameters.get_secret(os.environ["POLYV_SECRET_ID"]))
dynamodb.update_item(
    TableName=os.environ["QUOTA_TABLE"],
    Key={"pk": {"S": "BENCH"}, "sk": {"S": "BASELINE"}},
    UpdateExpression="SET used = if_not_exists(used, :zero) + :one",
    ConditionExpression="attribute_not_exists(used) OR used < :limit",
    ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"}, ":limit": {"N": "1000000"}},
)
form = signed_form(
    userid=secret["userid"],
    secretkey=secret["secretkey"],
    files=[FileRef(sys.argv[1], 1)],
    ptime_ms=int(time.time() * 1000),
)
answer = requests.post(os.environ["POLYV_API_URL"], data=form, timeout=10).json()
assert answer["code"] == 200, answer
