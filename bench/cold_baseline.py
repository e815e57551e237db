"""BASELINE, NOT THE PRODUCT: the least a cold Lambda start could do for one file.

Import boto3, requests and Powertools (Logger, batch, parameters); create the AWS clients; read
the secret; make one conditional counter update; make one signed POST. Run in a fresh interpreter
by bench/run.py with the local stack's environment and a vid as argv[1]; it prints when the
answer was ready. Only Polyv's signing rule
comes from the product (``adapters/signing.py`` imports nothing else of it).
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

from polyv_prewarm.adapters.signing import sign

logger = Logger(service="baseline")
session = boto3.session.Session()  # one session for both clients: its loaded models are shared
dynamodb = session.client("dynamodb")
secrets = parameters.SecretsProvider(boto3_client=session.client("secretsmanager"))
secret = json.loads(str(secrets.get(os.environ["POLYV_SECRET_ID"])))
dynamodb.update_item(
    TableName=os.environ["QUOTA_TABLE"],
    Key={"pk": {"S": "BENCH"}, "sk": {"S": "BASELINE"}},
    UpdateExpression="SET used = if_not_exists(used, :zero) + :one",
    ConditionExpression="attribute_not_exists(used) OR used < :limit",
    ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"}, ":limit": {"N": "1000000"}},
)
form = {
    "userid": secret["userid"],
    "ptime": str(int(time.time() * 1000)),
    "action": "push",
    "fileType": "zip",
    "videos": json.dumps([{"vid": sys.argv[1], "brIndex": 1}], separators=(",", ":")),
}
form["sign"] = sign(form, secret["secretkey"])
answer = requests.post(os.environ["POLYV_API_URL"], data=form, timeout=10).json()
assert answer["code"] == 200, answer
# The answer is ready: a cold start ends here. (Lambda keeps the process; the interpreter's teardown
# that follows is no part of a cold start, and the benchmark reports it apart.)
print(f"answered at {time.time()!r}", flush=True)
