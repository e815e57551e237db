"""What kind of invocation an event is: the first thing the handler asks."""

from __future__ import annotations

from enum import StrEnum

from ..domain.ports import PrewarmError
from ..domain.preview import preview


class UnsupportedEvent(PrewarmError):
    """A Lambda event of no shape this function accepts."""


class InvalidEvent(PrewarmError):
    """An event of a known kind whose content cannot be read (a direct invocation, a notification
    delivered directly, an SQS record without a messageId)."""


class EventKind(StrEnum):
    SQS = "sqs"  # the main path: partial batch response
    S3 = "s3"  # S3 notification delivered directly to the function (asynchronous invocation)
    SNS = "sns"  # SNS delivering directly to the function
    EVENTBRIDGE = "eventbridge"  # an EventBridge rule targeting the function
    DIRECT = "direct"  # a person invoking the function with a test event
    SCHEDULED = "scheduled"  # an EventBridge rule's Scheduled Event: not this project's drain
    ACTION = "action"  # a schedule or a person: {"action": "drain" | "sweep" | "recover" | ...}


def classify(event: object) -> EventKind:
    """Which kind of invocation this is; raises :class:`UnsupportedEvent` for anything else."""
    if not isinstance(event, dict):
        raise UnsupportedEvent(f"event must be a JSON object, got {type(event).__name__}")
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        source = records[0].get("eventSource") or records[0].get("EventSource")
        kinds = {"aws:sqs": EventKind.SQS, "aws:s3": EventKind.S3, "aws:sns": EventKind.SNS}
        if isinstance(source, str) and source in kinds:
            return kinds[source]
        raise UnsupportedEvent(f"records from {preview(source)!r} are not supported (sqs, s3, sns are)")
    if event.get("detail-type") == "Scheduled Event":
        return EventKind.SCHEDULED
    if "detail-type" in event and "source" in event:
        return EventKind.EVENTBRIDGE
    if "action" in event:
        return EventKind.ACTION
    if event.keys() & {"videos", "vids", "vid"}:
        return EventKind.DIRECT
    raise UnsupportedEvent(
        "unknown event: expected an SQS batch, an S3 or SNS notification, an EventBridge event, "
        'a direct invocation like {"videos": [{"vid": ..., "brIndex": 1}]} or {"vids": [...]}, '
        'or {"action": "drain" | "sweep" | "recover" | "status" | "quota"}'
    )
