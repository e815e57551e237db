"""Polyv's VOD SHA-1 signing rule, as a pure function (see docs/polyv-api.md).

Written by hand because no maintained library implements it: Polyv publishes no Python SDK
for the VOD v2 API. The plain string contains the secretkey: it never leaves this module.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..domain.model import FileRef


def sign(params: Mapping[str, str], secretkey: str) -> str:
    """Uppercase SHA-1 hex of the non-empty params except ``sign``, sorted by name, joined
    ``name=value`` with ``&`` (raw values), with the secretkey appended."""
    plain = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign" and v != "")
    return hashlib.sha1((plain + secretkey).encode("utf-8"), usedforsecurity=False).hexdigest().upper()


def videos_json(files: Iterable[FileRef]) -> str:
    """The ``videos`` parameter: compact JSON, the exact bytes that are both signed and sent."""
    videos = [{"vid": f.vid, "brIndex": f.br_index} for f in files]  # Polyv's field names
    return json.dumps(videos, separators=(",", ":"), ensure_ascii=False)


def signed_form(*, userid: str, secretkey: str, files: Iterable[FileRef], ptime_ms: int) -> dict[str, str]:
    """The complete form body of one ``refresh-cdn-cache`` push call."""
    form = {
        "userid": userid,
        "ptime": str(ptime_ms),
        "action": "push",
        "fileType": "zip",
        "videos": videos_json(files),
    }
    form["sign"] = sign(form, secretkey)
    return form
