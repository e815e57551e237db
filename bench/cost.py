"""What prewarming costs in AWS: DynamoDB write units from the sizes DynamoDB bills for the items
the function writes, Lambda GB-seconds from a latency model, and a month at a given traffic.

Prices: us-east-1 list prices for on-demand DynamoDB, arm64 Lambda, SQS and Secrets Manager as
published in 2026; they change, so every figure says which price it used. The fixed
observability costs (custom metrics, dashboard, alarms) are docs/operations.md's ("What it costs").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

LAMBDA_GB_SECOND = 0.0000133334  # arm64
LAMBDA_REQUEST = 0.20 / 1e6
DYNAMODB_WRITE_UNIT = 0.625 / 1e6  # on-demand write request unit
DYNAMODB_READ_UNIT = 0.125 / 1e6
SQS_REQUEST = 0.40 / 1e6
SECRET_MONTH = 0.40
METRIC_MONTH = 0.30  # a custom metric
ALARM_METRIC_MONTH = 0.10  # a metric an alarm watches (a Metrics Insights alarm: each time series)
#: Per Polyv account served: its figures by account (telemetry.ACCOUNT_METRICS) and its time series
#: in QuotaNearlySpentAlarm's query.
METRICS_PER_ACCOUNT = 7


def observability_month(accounts: int = 1) -> float:
    """37 custom metrics of the service (BacklogFiles counts once per tier; 3 are the
    reconcile's) and each account's 7, the dashboard ($3), eleven alarms watching 12 metrics and
    one time series per account (QuotaNearlySpentAlarm's query), and the alarm topic's KMS key ($1:
    CloudWatch cannot publish under the AWS managed key)."""
    metrics = 37 + METRICS_PER_ACCOUNT * accounts
    return metrics * METRIC_MONTH + 3.00 + (12 + accounts) * ALARM_METRIC_MONTH + 1.00


OBSERVABILITY_MONTH = observability_month(1)
# The recovery drain (template.yaml RecoveryDrain, every 5 minutes): with nothing parked, one read
# of the breaker and one query of the due files, in a short invocation (modelled: 50 ms).
RECOVERY_RUNS_PER_MONTH = 30 * 24 * 12
RECOVERY_SECONDS = 0.05
RECOVERY_READS = 2
# The reconcile (template.yaml Reconcile, every 15 minutes), one account: a signed GET of Polyv's
# list (modelled 150 ms), the queue's counts, the mark's read and write, one BatchGetItem a day of
# the window for the new videos (modelled: 0.3 s, 4 reads, 1 write).
RECONCILE_RUNS_PER_MONTH = 30 * 24 * 4
RECONCILE_SECONDS = 0.3
RECONCILE_READS = 4
# The late sweeps (template.yaml LateSweep, every 10 minutes of the reserve's last hour): with an
# empty backlog, a read of the counter and one query per tier (modelled: 100 ms)
SWEEP_RUNS_PER_MONTH = 30 * 6
SWEEP_SECONDS = 0.1
SWEEP_READS = 6
HTTP_API_REQUEST = 1.00 / 1e6
CALLBACKS_PER_VIDEO = 5  # upload, an encode per definition (3), TranscodeComplete
CALLBACK_SECONDS = 0.03  # modelled: a cached secret, one SQS send (10 ms) and the MD5s
MEMORY_GB = 0.25  # template.yaml MemorySize: 256


def attribute_size(value: Mapping[str, Any]) -> int:
    """The size DynamoDB bills for one typed attribute value (its name not included)."""
    ((kind, raw),) = value.items()
    if kind == "S":
        return len(raw.encode("utf-8"))
    if kind == "N":  # about one byte per two significant digits, plus one
        digits = Decimal(raw).normalize().as_tuple().digits
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("L", "M"):
        items = raw if kind == "L" else list(raw.values())
        names = sum(len(k.encode("utf-8")) for k in raw) if kind == "M" else 0
        return 3 + names + sum(1 + attribute_size(v) for v in items)
    raise ValueError(f"unsized DynamoDB type {kind}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Attribute names and values, as DynamoDB sizes an item."""
    return sum(len(name.encode("utf-8")) + attribute_size(value) for name, value in item.items())


def write_units(size: int, *, transactional: bool) -> int:
    """Write request units for one item of ``size`` bytes: 1 a KB, doubled in a transaction."""
    return max(1, math.ceil(size / 1024)) * (2 if transactional else 1)


@dataclass(frozen=True)
class Traffic:
    """A month of one traffic shape, and what the latency model says one invocation takes."""

    files_per_day: int
    files_per_invocation: int
    seconds_per_invocation: float  # the model's duration of one invocation of that many files
    write_units_per_100_files: float
    reads_per_invocation: int = 2  # the breaker's and the summary's quota (the claims' are writes)

    def monthly(self) -> dict[str, float]:
        invocations = 30 * math.ceil(self.files_per_day / self.files_per_invocation)
        messages = 30 * math.ceil(self.files_per_day / 3)  # one message a video of 3 bitrates
        recovery = RECOVERY_RUNS_PER_MONTH
        return {
            "Lambda": invocations
            * (LAMBDA_REQUEST + self.seconds_per_invocation * MEMORY_GB * LAMBDA_GB_SECOND)
            + recovery * (LAMBDA_REQUEST + RECOVERY_SECONDS * MEMORY_GB * LAMBDA_GB_SECOND)
            + SWEEP_RUNS_PER_MONTH * (LAMBDA_REQUEST + SWEEP_SECONDS * MEMORY_GB * LAMBDA_GB_SECOND)
            + RECONCILE_RUNS_PER_MONTH * (LAMBDA_REQUEST + RECONCILE_SECONDS * MEMORY_GB * LAMBDA_GB_SECOND),
            "DynamoDB": 30 * self.files_per_day / 100 * self.write_units_per_100_files * DYNAMODB_WRITE_UNIT
            + (
                invocations * self.reads_per_invocation
                + recovery * RECOVERY_READS
                + SWEEP_RUNS_PER_MONTH * SWEEP_READS
                + RECONCILE_RUNS_PER_MONTH * RECONCILE_READS
            )
            * DYNAMODB_READ_UNIT
            + RECONCILE_RUNS_PER_MONTH * DYNAMODB_WRITE_UNIT,  # the mark
            "SQS": 3 * messages * SQS_REQUEST,  # send, receive, delete
            # an account on Polyv's callbacks: the HTTP API and the callback function per notification
            "callbacks": messages
            * CALLBACKS_PER_VIDEO
            * (HTTP_API_REQUEST + LAMBDA_REQUEST + CALLBACK_SECONDS * MEMORY_GB * LAMBDA_GB_SECOND),
            "Secrets Manager": SECRET_MONTH,
            "observability": OBSERVABILITY_MONTH,
        }
