"""BASELINE, NOT THE PRODUCT: the naive client the benchmark compares against.

It does what the Java example on Polyv's API page does: one signed POST per file, one after the
other, with no batching, no dedup and no quota accounting.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import requests

from polyv_prewarm.adapters.signing import signed_form
from polyv_prewarm.domain.model import FileRef


def prewarm_one_by_one(url: str, userid: str, secretkey: str, files: Iterable[FileRef]) -> int:
    """Returns how many calls Polyv accepted."""
    accepted = 0
    with requests.Session() as session:
        for file in files:
            form = signed_form(
                userid=userid, secretkey=secretkey, files=[file], ptime_ms=int(time.time() * 1000)
            )
            answer = session.post(url, data=form, timeout=10).json()
            accepted += answer.get("code") == 200
    return accepted
