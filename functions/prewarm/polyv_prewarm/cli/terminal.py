"""The terminal: untrusted text made safe to print, JSON for scripts, and one line errors."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from rich.console import Console


def console() -> Any:
    """A console that reads no markup: ``[bold]`` in an S3 key or a Polyv message is text."""
    return Console(markup=False, highlight=False, emoji=False)


def plain(value: object, limit: int = 300) -> str:
    """Untrusted text (a vid, an S3 key, a Polyv message) for the terminal: cut to ``limit``,
    every control or invisible character shown as its escape (``\\x1b``), so that nothing a
    producer or Polyv sent can move the cursor, retitle the window or hide itself."""
    text = (value if isinstance(value, str) else str(value))[:limit]
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def row(table: Any, *cells: object) -> None:
    table.add_row(*(plain(cell) for cell in cells))


def say(out: Any, line: str) -> None:
    out.print(plain(line, limit=2000))


#: Characters json.dumps(ensure_ascii=False) leaves raw that a terminal may act on (C1 controls,
#: DEL, line and paragraph separators, bidirectional overrides).
_JSON_UNSAFE = re.compile("[\\x7f-\\x9f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069]")


def to_json(data: Any, *, indent: int | None = 2) -> str:
    """JSON for scripts: readable non-ASCII text, every control character escaped."""
    text = json.dumps(data, ensure_ascii=False, indent=indent)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def fail(message: str, code: int) -> int:
    print(f"polyv-prewarm: error: {message}", file=sys.stderr)
    return code


def warn(message: str) -> None:
    print(f"polyv-prewarm: warning: {message}", file=sys.stderr)
