"""polyv-prewarm: warm Polyv VOD CDN caches as soon as a video finishes transcoding.

Layers, from the outside in:

* ``events``      Lambda event shapes -> :class:`~polyv_prewarm.domain.model.FileRequest` (event adapters)
* ``plan``        validate, dedup, chunk: pure domain logic, no I/O
* ``service``     plan -> reserve quota -> call Polyv -> record: the one orchestrator
* ``ports``       the interfaces the service needs, and the errors they raise
* ``polyv``, ``quota``, ``credentials``   adapters: HTTP client, DynamoDB store, Secrets Manager
* ``runtime``     the composition root that wires adapters from configuration
"""

import os

__version__ = "0.1.0"

#: Powertools service name; child loggers must share it with the handler's logger.
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "polyv-prewarm")
#: CloudWatch namespace of the function's metrics (template.yaml's alarms and dashboard use it).
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "PolyvPrewarm")
