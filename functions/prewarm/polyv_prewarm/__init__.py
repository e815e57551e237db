"""polyv-prewarm: warm Polyv VOD CDN caches as soon as a video finishes transcoding.

The folders are the layers (docs/architecture.md):

* ``handler``, ``events``, ``telemetry``, ``tracing``: the Lambda entry, its event adapters (event
  shapes -> :class:`~polyv_prewarm.domain.model.FileRequest`, typed actions), metrics and traces
* ``domain/``: files, fates and their rules (``model``, ``plan``, ``quotaday``) and the ports the
  logic needs (``ports``); standard library only
* ``logic/``: one module per use case: prewarm files (``submit``: plan -> claim -> send ->
  record, one chunk's calls in ``sender``), the daily drain (``drain``), the ledger's questions
  (``queries``), one Polyv callback (``receive_callback``); what they share (``run``)
* ``adapters/``: Polyv's HTTP API (``polyv``, ``signing``), the DynamoDB day ledger and backlog
  (``ledger/``, ``backlog``, ``dynamo``), Secrets Manager (``credentials``), SQS (``queue``)
* ``config``, ``runtime``, ``callback_runtime``: settings from the environment (every default in
  one place), and the composition roots
* ``cli``: the operator's command on the same code

Nothing here reads the environment at import: the names below are the ones template.yaml gives
(POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE), and its alarms and dashboard read them.
"""

__version__ = "0.1.0"

#: Powertools service name; child loggers must share it with the handler's logger.
SERVICE = "polyv-prewarm"
#: CloudWatch namespace of the function's metrics (template.yaml's alarms and dashboard use it).
NAMESPACE = "PolyvPrewarm"
