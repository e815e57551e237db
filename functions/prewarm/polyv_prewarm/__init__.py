"""polyv-prewarm: warm Polyv VOD CDN caches as soon as a video finishes transcoding.

The folders are the layers (README: Architecture):

* ``handler``, ``events``, ``telemetry``, ``tracing``: the Lambda entry, its event adapters (event
  shapes -> :class:`~polyv_prewarm.domain.model.FileRequest`, typed actions), metrics and traces
* ``domain/``: files, fates and their rules (``model``, ``plan``, ``quotaday``) and the ports the
  logic needs (``ports``); standard library only
* ``logic/``: a prewarm's claim -> send -> record (``service``), one chunk's Polyv calls
  (``sender``), the daily drain (``drain``)
* ``adapters/``: Polyv's HTTP API (``polyv``, ``signing``), the DynamoDB day ledger and backlog
  (``ledger``, ``backlog``, ``dynamo``), Secrets Manager (``credentials``)
* ``config``, ``runtime``: settings from the environment, and the composition root
* ``cli``: the operator's command on the same code
"""

import os

__version__ = "0.1.0"

#: Powertools service name; child loggers must share it with the handler's logger.
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "polyv-prewarm")
#: CloudWatch namespace of the function's metrics (template.yaml's alarms and dashboard use it).
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "PolyvPrewarm")
