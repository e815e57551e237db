from __future__ import annotations

import os

import pytest

# The function's modules read POWERTOOLS_* at import; keep tests quiet and deterministic.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "polyv-prewarm")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "PolyvPrewarm")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch):
    """Nothing in the tests may reach AWS: dummy credentials, and no profile from the machine."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
