"""Untrusted values shown in errors, logs and summaries: cut *before* they are built.

``str(value)[:64]`` first builds the whole string: a 10 MB list in an event is 10 MB of text
before the cut. :func:`preview` asks ``reprlib`` for a bounded rendering instead (it stops at a
few elements, a few levels and a few characters), and cuts strings without copying them whole.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from typing import Any

_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = 3
_REPR.maxstring = _REPR.maxother = 40
_REPR.maxlong = 24


def preview(value: object, limit: int = 64) -> str:
    """A short rendering of ``value``, at most ``limit`` characters, whatever its size."""
    if isinstance(value, str):
        return value[:limit]
    try:
        return _REPR.repr(value)[:limit]
    except Exception:  # e.g. an int too long to render; never let a rendering fail its caller
        return f"<{type(value).__name__}>"


def shown(value: object, limit: int = 64) -> object:
    """``value`` itself when it is small and plain (a short string, a number, a boolean, null),
    else its :func:`preview`: what a summary may echo of what an event carried."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int) and -(10**18) < value < 10**18:
        return value
    if isinstance(value, str) and len(value) <= limit:
        return value
    return preview(value, limit)


def sample_keys(mapping: Mapping[Any, Any], count: int = 8, limit: int = 32) -> str:
    """Up to ``count`` of a mapping's keys, each cut to ``limit`` characters (an error's hint)."""
    keys = []
    for key in mapping:
        keys.append(preview(key, limit))
        if len(keys) == count:
            break
    more = len(mapping) - len(keys)
    return ", ".join(sorted(keys)) + (f", and {more} more" if more > 0 else "")
