"""Metrics that need a dimension of their own (a rejection reason, a Polyv error message).

Powertools' ``Metrics`` gives every metric of an invocation the same dimensions, so a metric with
its own dimension goes in an EMF document of its own: a separate Powertools EMF provider, flushed
at once. (Powertools' ``single_metric`` does the same but prints even when
``POWERTOOLS_METRICS_DISABLED`` is set, which the CLI and the tests rely on.)
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from . import NAMESPACE, SERVICE


def per_call_metrics_enabled() -> bool:
    """Whether to record a metric once per Polyv attempt. Powertools prints a metric's values as
    soon as it holds 100 of them, even with ``POWERTOOLS_METRICS_DISABLED`` set: long CLI drains
    would then print EMF documents into the command's output."""
    return not is_metrics_disabled()


def count_by(name: str, value: float, dimension: str, label: str) -> None:
    provider = AmazonCloudWatchEMFProvider(namespace=NAMESPACE, service=SERVICE)
    provider.add_metric(name=name, unit=MetricUnit.Count, value=value)
    provider.add_dimension(name="service", value=SERVICE)
    provider.add_dimension(name=dimension, value=label[:100] or "unknown")
    provider.flush_metrics()
