"""Polyv's VOD callback notifications: what each kind carries, how Polyv signs it, and what of
it is worth a prewarm (docs/polyv-api.md, "Polyv's callback notifications"). Pure: no I/O.

Every sign is a lowercase 32-character MD5 hex digest over a concatenation that ends with the
account's secretkey, and none carries a timestamp:

=====================  ======  ===============================================================
kind                   method  signed string
=====================  ======  ===============================================================
encode, encode_failed  GET     type + format + vid + df + secretkey
TranscodeComplete      POST    eventType + vid + secretkey (sign in the query string)
upload, invalidVideo   GET     "upload" + vid + secretkey
pass, nopass           GET     "manage" + type + vid + secretkey
DeleteMediaComplete    POST    eventType + secretkey (sign in the query string)
=====================  ======  ===============================================================

What is signed decides the work, and nothing else: an ``encode``'s ``df`` is signed, so it is
queued as a named (explicit) definition; TranscodeComplete's sign covers its eventType and vid
only, so its ``status`` and ``videoInfos`` are a hint, and the prewarm function asks Polyv itself
which definitions exist (``get-video-msg``) before it spends a unit on them (docs/callbacks.md).
The method is tied to the kind: the GET kinds carry no body, the POST kinds a JSON body.

Written by hand: Polyv publishes no Python SDK, and the rules are one concatenation each.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from .model import BR_INDEXES
from .plan import VID_RE

#: Polyv's notifications are a few hundred bytes; a TranscodeComplete with every definition of a
#: video, a few KB. Anything larger is not Polyv's, and is refused before it is read.
MAX_BODY_BYTES = 64 * 1024
MAX_QUERY_BYTES = 4 * 1024

_SIGN = re.compile(r"[0-9a-fA-F]{32}")
_WORD = re.compile(r"[A-Za-z_]{1,40}")  # type, eventType
_FORMAT = re.compile(r"[a-z0-9]{1,10}")  # flv, mp4, pdx, m3u8


class BadCallback(ValueError):
    """A request that is not a well-formed Polyv notification: answered 400 with this reason."""


class TooLarge(BadCallback):
    """A body or query string over its bound: answered 413 without being read."""


class CallbackRequest(NamedTuple):
    """An HTTP request as the endpoint received it (API Gateway's event, not yet decoded)."""

    method: str
    query: str  # the raw query string
    body: str = ""
    base64_encoded: bool = False  # API Gateway's isBase64Encoded
    content_type: str = ""


class Kind(StrEnum):
    ENCODE = "encode"  # one definition transcoded: prewarm it
    ENCODE_FAILED = "encode_failed"
    TRANSCODE_COMPLETE = "TranscodeComplete"  # all definitions done: prewarm the successful ones
    UPLOAD = "upload"
    INVALID_VIDEO = "invalidVideo"
    AUDIT_PASSED = "pass"  # Polyv's audit verdicts
    AUDIT_REFUSED = "nopass"
    DELETED = "DeleteMediaComplete"


def _sign_of(*parts: str) -> str:
    # MD5 is Polyv's choice, not ours: it authenticates the sender with the shared secretkey.
    return hashlib.md5("".join(parts).encode("utf-8"), usedforsecurity=False).hexdigest()


#: kind -> (the fields it must carry, what is signed given the fields and the secretkey)
def _encode_rule(f: Mapping[str, str], k: str) -> str:
    return _sign_of(f["type"], f["format"], f["vid"], f["df"], k)


_RULES: dict[Kind, tuple[tuple[str, ...], Callable[[Mapping[str, str], str], str]]] = {
    Kind.ENCODE: (("format", "vid", "df"), _encode_rule),
    Kind.ENCODE_FAILED: (("format", "vid", "df"), _encode_rule),
    Kind.TRANSCODE_COMPLETE: (("vid",), lambda f, k: _sign_of(f["eventType"], f["vid"], k)),
    Kind.UPLOAD: (("vid",), lambda f, k: _sign_of("upload", f["vid"], k)),
    Kind.INVALID_VIDEO: (("vid",), lambda f, k: _sign_of("upload", f["vid"], k)),
    Kind.AUDIT_PASSED: (("vid",), lambda f, k: _sign_of("manage", f["type"], f["vid"], k)),
    Kind.AUDIT_REFUSED: (("vid",), lambda f, k: _sign_of("manage", f["type"], f["vid"], k)),
    Kind.DELETED: ((), lambda f, k: _sign_of(f["eventType"], k)),
}


class Notification(NamedTuple):
    """A notification read from a request, before its sign is checked."""

    kind: Kind | None  # None: a kind this package does not know (nothing is done with it)
    name: str  # the kind as Polyv named it (its type or eventType), for the logs
    fields: Mapping[str, str]  # the signed fields, as sent
    sign: str | None  # as sent, lowercased; None when absent
    vid: str | None = None
    definitions: tuple[int, ...] = ()  # what to prewarm: encode's df, TranscodeComplete's successes

    def expected_sign(self, secretkey: str) -> str:
        assert self.kind is not None
        return _RULES[self.kind][1](self.fields, secretkey)

    def signed_by(self, secretkey: str) -> bool:
        """Whether the sign is the one ``secretkey`` gives, compared in constant time."""
        if self.kind is None or self.sign is None:
            return False
        return hmac.compare_digest(self.expected_sign(secretkey), self.sign)

    def replay_key(self) -> str | None:
        """What the sign covers that asks for work, as one string: a second arrival of the same
        signed content is a replay (``encode#df`` or ``TranscodeComplete``, under its vid). None
        for a notification that asks for no prewarm."""
        if self.vid is None or not self.definitions:
            return None
        if self.kind is Kind.ENCODE:
            return f"encode#{self.definitions[0]}"
        return self.name

    def message(self) -> dict[str, Any] | None:
        """The prewarm queue's message for it, or None when there is nothing to prewarm. An
        ``encode``'s df is signed: named (explicit), a failed definition costs no call. A
        TranscodeComplete's definitions are not signed: ``askPolyv`` has the prewarm function
        take them from Polyv's video information, the body's list a hint for when Polyv cannot
        be asked (then ordinary requests, which a "bitrate does not exist" holds back)."""
        if self.vid is None or not self.definitions:
            return None
        via = f"polyv-callback:{self.name}"
        if self.kind is Kind.ENCODE:
            return {"vid": self.vid, "brIndex": self.definitions[0], "via": via}
        return {"vid": self.vid, "brIndexes": list(self.definitions), "askPolyv": True, "via": via}

    def why_nothing(self) -> str:
        """Why a verified notification asks for no prewarm (the log line and the answer say it)."""
        if self.kind is Kind.ENCODE_FAILED:
            return "a definition failed to transcode: nothing to prewarm"
        if self.kind is Kind.TRANSCODE_COMPLETE:
            return "no definition was transcoded successfully: nothing to prewarm"
        if self.kind is None:
            return f"a notification of a kind this endpoint does not act on ({self.name!r})"
        return f"{self.name!r} is not about a transcoded definition: nothing to prewarm"


def read(request: CallbackRequest) -> Notification:
    """The notification a request carries; raises :class:`BadCallback` (or :class:`TooLarge`)
    for anything that is not a well-formed one. The sign is read, not checked."""
    if len(request.query) > MAX_QUERY_BYTES:
        raise TooLarge(f"query string over {MAX_QUERY_BYTES} bytes")
    body = decode_body(request.body, request.base64_encoded)
    if len(body) > MAX_BODY_BYTES:
        raise TooLarge(f"body over {MAX_BODY_BYTES // 1024} KB")
    query = _query(request.query)
    if request.method == "GET":
        if body.strip():
            raise BadCallback("a GET notification carries no body")
        return _from_query(query)
    if request.method == "POST":
        if not body.strip():
            raise BadCallback("a POST notification carries a JSON body")
        return _from_body(body, request.content_type, query)
    raise BadCallback("Polyv's callbacks are GET or POST requests")


def _query(raw: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=bool(raw), errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise BadCallback("the query string is not a valid form") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise BadCallback(f"parameter {name[:32]!r} appears twice")
        fields[name] = value
    return fields


def _from_query(query: Mapping[str, str]) -> Notification:
    """The GET notifications: every field in the query string."""
    name = query.get("type")
    if name is None:
        if "vid" in query:  # the 2014 form: vid and df, no type and no sign: cannot be verified
            return Notification(Kind.ENCODE, "unsigned encode (the 2014 form)", {}, None)
        raise BadCallback("not a Polyv notification: no type or eventType")
    _check(name, _WORD, "type")
    kind = _kind(name)
    if kind is None or kind in (Kind.TRANSCODE_COMPLETE, Kind.DELETED):
        return Notification(None, name, {}, _sign(query))  # a POST kind by GET, or unknown: ignored
    return _notification(kind, name, {"type": name, **query}, _sign(query))


def _from_body(body: bytes, content_type: str, query: Mapping[str, str]) -> Notification:
    """The POST notifications: a JSON object, the sign in the query string. A form body is not
    one of Polyv's: refused, so no body's field can stand in for the query string's sign."""
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        raise BadCallback("Polyv's POST notifications are JSON, not a form")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise BadCallback("the body is not JSON") from None
    if not isinstance(document, dict):
        raise BadCallback(f"the JSON body must be an object, not {type(document).__name__}")
    name = document.get("eventType")
    if not isinstance(name, str):
        raise BadCallback("the JSON body has no eventType string")
    _check(name, _WORD, "eventType")
    kind = _kind(name)
    if kind not in (Kind.TRANSCODE_COMPLETE, Kind.DELETED):
        return Notification(None, name, {}, _sign(query))  # unknown, or a GET kind by POST: ignored
    fields = {"eventType": name}
    if kind is Kind.TRANSCODE_COMPLETE:
        vid = document.get("vid")
        if not isinstance(vid, str):
            raise BadCallback("TranscodeComplete has no vid string")
        fields["vid"] = vid
    notification = _notification(kind, name, fields, _sign(query))
    if kind is Kind.TRANSCODE_COMPLETE and document.get("status") == "success":
        return notification._replace(definitions=successful_definitions(document.get("videoInfos")))
    return notification


def _notification(kind: Kind, name: str, fields: Mapping[str, str], sign: str | None) -> Notification:
    """Check the fields the kind's sign covers, and read its vid and definition."""
    needed, _ = _RULES[kind]
    for field in needed:
        if field not in fields:
            raise BadCallback(f"a {name} notification needs {field}")
    vid = fields.get("vid")
    if vid is not None:
        _check(vid, VID_RE, "vid", "the Polyv vid shape")
    definitions: tuple[int, ...] = ()
    if "format" in needed:
        _check(fields["format"], _FORMAT, "format")
    if "df" in needed:
        definitions = (_definition(fields["df"]),)
    signed = {f: fields[f] for f in ("type", "eventType", *needed) if f in fields}
    return Notification(kind, name, signed, sign, vid, definitions if kind is Kind.ENCODE else ())


def successful_definitions(infos: object) -> tuple[int, ...]:
    """TranscodeComplete's definitions whose status is success, each once, in order; raises
    :class:`BadCallback` for a ``videoInfos`` that is not a list of objects with a df of 1..3."""
    if not isinstance(infos, list):
        raise BadCallback("TranscodeComplete's videoInfos must be a list")
    found: dict[int, None] = {}
    for info in infos:
        if not isinstance(info, dict):
            raise BadCallback("TranscodeComplete's videoInfos must hold objects")
        definition = _definition(info.get("df"))
        if info.get("status") == "success":
            found[definition] = None
    return tuple(found)


def _definition(value: object) -> int:
    """A df: 1 流畅, 2 高清, 3 超清 (the brIndex scale), as a number or its one digit."""
    if isinstance(value, int) and not isinstance(value, bool) and value in BR_INDEXES:
        return value
    if isinstance(value, str) and value in ("1", "2", "3"):
        return int(value)
    raise BadCallback("df must be 1, 2 or 3")


def _kind(name: str) -> Kind | None:
    try:
        return Kind(name)
    except ValueError:
        return None


def _sign(fields: Mapping[str, str]) -> str | None:
    """The sign as sent, lowercased for the comparison; None when it is absent. A value that is
    not 32 hex characters cannot be right: it is kept (and fails), never an error of its own."""
    sign = fields.get("sign")
    if sign is None or sign == "":
        return None
    return sign.lower() if _SIGN.fullmatch(sign) else "!"


def _check(value: str, pattern: re.Pattern[str], name: str, shape: str = "") -> None:
    if not pattern.fullmatch(value):
        raise BadCallback(f"{name} is not {shape or 'a well-formed value'}")


def decode_body(body: str, base64_encoded: bool) -> bytes:
    """API Gateway's body as bytes, bounded before it is decoded."""
    if not body:
        return b""
    if len(body) > (MAX_BODY_BYTES * 4 // 3 + 4 if base64_encoded else MAX_BODY_BYTES):
        raise TooLarge(f"body over {MAX_BODY_BYTES // 1024} KB")
    if not base64_encoded:
        return body.encode("utf-8", "replace")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise BadCallback("the body is not valid base64") from None
