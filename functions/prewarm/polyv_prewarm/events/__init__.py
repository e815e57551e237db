"""What the function is invoked with: the kind of an event (``kinds``), a person's or a
schedule's actions (``actions``), and every accepted message shape made file requests
(``messages``). The handler's names, from one place."""

from __future__ import annotations

from .actions import (
    Action,
    DirectFlags,
    DrainAction,
    QuotaAction,
    ReconcileAction,
    RecoverAction,
    StatusAction,
    SweepAction,
    direct_flags,
    parse_action,
)
from .kinds import EventKind, InvalidEvent, UnsupportedEvent, classify
from .messages import (
    DEFAULT_VID_KEY_PATTERN,
    MAX_FILES_PER_MESSAGE,
    InvalidMessage,
    Parsed,
    ParseOptions,
    Remark,
    file_requests,
    parse_body,
    parse_document,
)

__all__ = [
    "DEFAULT_VID_KEY_PATTERN",
    "MAX_FILES_PER_MESSAGE",
    "Action",
    "DirectFlags",
    "DrainAction",
    "EventKind",
    "InvalidEvent",
    "InvalidMessage",
    "ParseOptions",
    "Parsed",
    "QuotaAction",
    "ReconcileAction",
    "RecoverAction",
    "Remark",
    "StatusAction",
    "SweepAction",
    "UnsupportedEvent",
    "classify",
    "direct_flags",
    "file_requests",
    "parse_action",
    "parse_body",
    "parse_document",
]
