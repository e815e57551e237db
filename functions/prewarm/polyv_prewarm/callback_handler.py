"""The callback endpoint's handler: Polyv's HTTP callbacks, through API Gateway (HTTP API,
payload format 2.0), verified and turned into prewarm messages (docs/callbacks.md).

Thin: the event (Powertools' event source data classes, payload 2.0 or a REST API's 1.0) becomes a
:class:`~polyv_prewarm.domain.callbacks.CallbackRequest`, the receiver
(:mod:`polyv_prewarm.logic.receive_callback`) decides, and its answer becomes the HTTP response,
a metric and one log line. The request itself is never logged: its query string holds the sign.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent, APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.typing import LambdaContext

from polyv_prewarm import SERVICE, callback_runtime, telemetry
from polyv_prewarm.domain.callbacks import CallbackRequest
from polyv_prewarm.telemetry import metrics

logger = Logger(service=SERVICE)
#: Seconds kept after the receiver's last step for the answer itself (log line, metrics, return).
ANSWER_MARGIN_S = 0.5


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request, request_id = to_request(event)
    logger.set_correlation_id(request_id or getattr(context, "aws_request_id", None))
    # The answer must be given before the function's timeout: the receiver's deadline, on its clock.
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - ANSWER_MARGIN_S
    answer = callback_runtime.current().receiver.receive(request, deadline=deadline)
    telemetry.record_callback(answer.outcome)
    if answer.outcome.taken:
        logger.info("Polyv callback answered", extra=answer.log_keys())
    elif answer.outcome.retried:
        logger.error("Polyv callback not taken: Polyv may call again", extra=answer.log_keys())
    else:  # forged, malformed: nothing queued, nothing read but what was needed to refuse it
        logger.warning("Polyv callback refused", extra=answer.log_keys())
    return {
        "statusCode": answer.status,
        "headers": {"Content-Type": "application/json"},
        "body": answer.body(),
    }


def to_request(event: dict[str, Any]) -> tuple[CallbackRequest, str | None]:
    """The request an event carries, and its request id: API Gateway's HTTP API and Lambda
    function URLs send payload format 2.0 (the template's routes); a REST API sends 1.0."""
    if event.get("version") == "2.0" or "rawQueryString" in event:
        v2 = APIGatewayProxyEventV2(event)
        context = event.get("requestContext") or {}
        method = str((context.get("http") or {}).get("method") or "")
        query = event.get("rawQueryString") or urlencode(v2.query_string_parameters or {})
        return _request(method, query, v2.body, v2.is_base64_encoded, v2.headers), context.get("requestId")
    v1 = APIGatewayProxyEvent(event)
    multi = v1.multi_value_query_string_parameters or {}
    pairs = [(k, v) for k, values in multi.items() for v in values] or list(
        (v1.query_string_parameters or {}).items()
    )
    request_id = (event.get("requestContext") or {}).get("requestId")
    return _request(
        v1.http_method or "", urlencode(pairs), v1.body, v1.is_base64_encoded, v1.headers
    ), request_id


def _request(method: str, query: str, body: str | None, base64: bool | None, headers: Any) -> CallbackRequest:
    content_type = next((v for k, v in (headers or {}).items() if k.lower() == "content-type"), "")
    return CallbackRequest(method.upper(), query, body or "", bool(base64), str(content_type))


__all__ = ["lambda_handler", "to_request"]
