"""Every accepted message shape -> file requests with their origin.

Accepted message shapes (an SQS body, or a whole event delivered directly):

* the pipeline's JSON: ``{"vid", "brIndex"?}``, ``{"vids": [...], "brIndexes"?}``,
  ``{"videos": [{"vid", "brIndex"?}]}``
* an S3 event notification (``Records`` with ``eventSource: aws:s3``); ``s3:TestEvent`` is ignored
* an SNS notification wrapping any of these (S3 -> SNS -> SQS, raw delivery off)
* an EventBridge ``Object Created`` event from S3
* a Polyv encode callback: ``vid=...&df=N[&type=encode&sign=...]`` or the same as JSON, and
  Polyv's ``TranscodeComplete`` notification, relayed as it came: its definitions are not signed,
  so it asks Polyv which exist (a :class:`~.domain.model.DefinitionsLookup`), and so does
  ``{"vid", "brIndexes"?, "askPolyv": true}`` (what the callback endpoint queues for it)

Untrusted input: every failure is an :class:`InvalidMessage` that says what is wrong, never a
``KeyError``. Message contents are never echoed back (a callback may carry a ``sign``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote_plus

from ..domain.accounts import of_account
from ..domain.callbacks import BadCallback, successful_definitions
from ..domain.model import BR_INDEXES, DefinitionsLookup, FileRequest, Origin
from ..domain.ports import PrewarmError
from ..domain.preview import preview, sample_keys

#: A vid-shaped token anywhere in an S3 key (every one is considered; see ``_vids_in_key``).
DEFAULT_VID_KEY_PATTERN = r"(?<![0-9a-z])(?P<vid>[0-9a-z]{32}_[0-9a-z])(?![0-9a-z])"

MAX_NESTING = 3  # SNS -> S3 notification is 2; anything deeper is not a shape we know

#: The most files (vids x brIndexes) one message or directly invoked event may ask for: a day of
#: Polyv's default quota. Checked before any request is built, so a 40 KB body that fans out to a
#: million files costs a multiplication, not a million objects. A bigger job is several messages
#: (or ``polyv-prewarm submit`` / the backlog), each of which fails or succeeds on its own.
MAX_FILES_PER_MESSAGE = 2000
S3_KEY_MAX = 1024  # bytes: S3's own limit on an object key


class InvalidMessage(PrewarmError):
    """A message (or directly invoked event) that cannot be read. Fails alone, never its batch."""


_DEFAULT_KEY_PATTERN = re.compile(DEFAULT_VID_KEY_PATTERN)


class ParseOptions(NamedTuple):
    default_br_indexes: tuple[int, ...] = (1, 2, 3)
    key_pattern: re.Pattern[str] = _DEFAULT_KEY_PATTERN
    userids: tuple[str, ...] | None = None  # the accounts': S3 keys yield only their vids (default pattern)
    max_files: int = MAX_FILES_PER_MESSAGE

    @property
    def custom_key_pattern(self) -> bool:
        return self.key_pattern.pattern != DEFAULT_VID_KEY_PATTERN


class Remark(NamedTuple):
    """What an event said besides its files: something that is not a file to warm (an S3 test
    event, a deletion...: ``Parsed.ignored``), or worth a log line about what was read (several
    vids in one key: ``Parsed.notes``)."""

    origin: Origin
    reason: str


@dataclass
class Parsed:
    requests: list[FileRequest] = field(default_factory=list)
    ignored: list[Remark] = field(default_factory=list)  # not a file to warm, and why
    notes: list[Remark] = field(default_factory=list)  # read, and worth a log line
    lookups: list[DefinitionsLookup] = field(default_factory=list)  # Polyv tells their definitions

    @property
    def files(self) -> int:
        """How many files it may come to (a lookup, at most one per bitrate)."""
        return len(self.requests) + len(BR_INDEXES) * len(self.lookups)

    def extend(self, other: Parsed) -> None:
        self.requests += other.requests
        self.ignored += other.ignored
        self.notes += other.notes
        self.lookups += other.lookups


def parse_body(body: object, origin: Origin, options: ParseOptions) -> Parsed:
    """An SQS message body: JSON of any accepted shape, or a callback query string."""
    if not isinstance(body, str):
        raise InvalidMessage(f"message body must be a string, got {type(body).__name__}")
    text = body.strip()
    if not text:
        raise InvalidMessage("message body is empty")
    if text[0] in "{[":
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidMessage(f"message body is not valid JSON ({exc.msg} at char {exc.pos})") from None
        except ValueError:  # e.g. integers too long to convert
            raise InvalidMessage("message body is not usable JSON") from None
        except RecursionError:  # json's C decoder recurses once per nesting level
            raise InvalidMessage("message body nests JSON too deeply") from None
        return parse_document(document, origin, options)
    if "=" in text:
        return _callback(_query_string(text), origin, options)
    raise InvalidMessage("message body is neither JSON nor a vid=...&df=... query string")


def parse_document(document: object, origin: Origin, options: ParseOptions, depth: int = 0) -> Parsed:
    """A decoded message or directly invoked event of any accepted shape. One branch per shape,
    in the order that tells them apart (an envelope before its content): the list of shapes is the
    function, so it stays whole."""
    if depth > MAX_NESTING:
        raise InvalidMessage("message nests envelopes too deeply")
    if not isinstance(document, dict):
        raise InvalidMessage(f"message must be a JSON object, got {type(document).__name__}")
    if "Records" in document:
        return _records(document, origin, options, depth)
    if document.get("Event") == "s3:TestEvent":
        return Parsed(
            ignored=[Remark(origin, "s3:TestEvent (sent when a bucket notification is configured)")]
        )
    if "detail-type" in document and "source" in document:
        return _eventbridge(document, origin, options)
    if document.get("Type") in ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"):
        return _sns_envelope(document, origin, options, depth)
    if "eventType" in document:
        return _polyv_event(document, origin, options)
    if "videos" in document:
        return _videos(document, origin, options)
    if "vids" in document:
        return _vids(document, origin, options)
    if "vid" in document and "df" in document:
        return _callback(document, origin, options)
    if "vid" in document:
        return _single(document, origin, options)
    raise InvalidMessage(f"unknown message shape (keys: {sample_keys(document) or 'none'})")


def file_requests(
    vid: object, named: Sequence[object] | None, origin: Origin, options: ParseOptions
) -> list[FileRequest]:
    """The files a request for ``vid`` asks for: the bitrates it names (``explicit``: asked for as
    such, see docs/events.md, "A bitrate that does not exist yet"), else DEFAULT_BR_INDEXES."""
    if named is None:
        return [FileRequest(vid, br, origin) for br in options.default_br_indexes]
    return [FileRequest(vid, br, origin, explicit=True) for br in named]


def _named(value: object) -> list[object] | None:
    """A single named bitrate (a brIndex, a df), or None when absent."""
    return None if value in (None, "") else [value]


def _br_indexes(document: Mapping[str, Any]) -> list[object] | None:
    """The bitrates a message's ``brIndexes`` names, each once; None when it names none."""
    value = document.get("brIndexes")
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise InvalidMessage("brIndexes must be a non-empty list of 1, 2 or 3")
    return _distinct(value)


def _distinct(values: list[Any]) -> list[object]:
    """Each listed bitrate once (1 and "1" stay apart: validation tells them apart later). There
    are three bitrates, so a list of more distinct values is not a request for files."""
    seen: dict[tuple[type, object], object] = {}
    for value in values:
        if isinstance(value, dict | list):
            raise InvalidMessage("brIndexes must be a list of 1, 2 or 3")
        seen.setdefault((type(value), value), value)
        if len(seen) > len(BR_INDEXES):
            raise InvalidMessage("brIndexes lists more than 3 distinct values: the bitrates are 1, 2 and 3")
    return list(seen.values())


def _within(options: ParseOptions, files: int) -> None:
    """Refuse a message that asks for more files than one message may (before building any)."""
    if files > options.max_files:
        raise InvalidMessage(
            f"the message asks for {files} files (vids x brIndexes), more than the {options.max_files} "
            "one message may ask for: split it into several messages"
        )


def _videos(document: Mapping[str, Any], origin: Origin, options: ParseOptions) -> Parsed:
    videos = document["videos"]
    if not isinstance(videos, list):
        raise InvalidMessage("videos must be a list of {vid, brIndex} objects")
    for i, video in enumerate(videos):
        if not isinstance(video, dict) or "vid" not in video:
            raise InvalidMessage(f"videos[{i}] must be an object with a vid")
    defaults = len(options.default_br_indexes)
    _within(options, sum(defaults if v.get("brIndex") is None else 1 for v in videos))
    parsed = Parsed()
    for video in videos:
        br = video.get("brIndex")
        parsed.requests += file_requests(video["vid"], None if br is None else [br], origin, options)
    return parsed


def _vids(document: Mapping[str, Any], origin: Origin, options: ParseOptions) -> Parsed:
    vids = document["vids"]
    if not isinstance(vids, list):
        raise InvalidMessage("vids must be a list of vid strings")
    named = _br_indexes(document)
    _within(options, len(vids) * len(named or options.default_br_indexes))
    return Parsed(requests=[r for vid in vids for r in file_requests(vid, named, origin, options)])


def _single(document: Mapping[str, Any], origin: Origin, options: ParseOptions) -> Parsed:
    br = document.get("brIndex")
    named = _br_indexes(document) if br is None else [br]
    ask = document.get("askPolyv", False)
    if not isinstance(ask, bool):
        raise InvalidMessage("askPolyv must be true or false")
    if ask:
        return Parsed(lookups=[DefinitionsLookup(document["vid"], tuple(named or ()), origin)])
    return Parsed(requests=file_requests(document["vid"], named, origin, options))


def _query_string(text: str) -> dict[str, str]:
    fields = parse_qs(text, keep_blank_values=True)
    return {name: values[-1] for name, values in fields.items()}


def _callback(fields: Mapping[str, Any], origin: Origin, options: ParseOptions) -> Parsed:
    """Polyv's encode callback: ``df`` is the definition that just finished (1..3, like brIndex).
    The callback's ``sign`` is not checked here: the relay that put it on the queue owns that."""
    kind = fields.get("type")
    if kind not in (None, "", "encode"):
        reason = f"Polyv callback of type {preview(kind, 32)!r}, not 'encode'"
        return Parsed(ignored=[Remark(origin, reason)])
    if "vid" not in fields:
        raise InvalidMessage("Polyv callback has no vid")
    # df names the definition that just finished: it exists now
    return Parsed(requests=file_requests(fields["vid"], _named(fields.get("df")), origin, options))


def _polyv_event(document: Mapping[str, Any], origin: Origin, options: ParseOptions) -> Parsed:
    """Polyv's POST notifications, relayed as they came (the relay owns the sign; the project's
    own endpoint verifies it and queues the pipeline's shape instead): TranscodeComplete asks Polyv
    which definitions exist, its successful ones the hint (they are not signed); any other
    eventType is ignored with a reason."""
    name = document.get("eventType")
    if name != "TranscodeComplete":
        return Parsed(
            ignored=[Remark(origin, f"Polyv notification {preview(name, 40)!r}: nothing to prewarm")]
        )
    if "vid" not in document:
        raise InvalidMessage("TranscodeComplete has no vid")
    if document.get("status") != "success":
        return Parsed(ignored=[Remark(origin, "TranscodeComplete: no definition transcoded successfully")])
    try:
        definitions = successful_definitions(document.get("videoInfos"))
    except BadCallback as exc:
        raise InvalidMessage(f"TranscodeComplete: {exc}") from None
    return Parsed(lookups=[DefinitionsLookup(document["vid"], definitions, origin)])


def _records(document: Mapping[str, Any], origin: Origin, options: ParseOptions, depth: int) -> Parsed:
    """An S3 event notification, or SNS delivering to the function directly (``Sns.Message``)."""
    records = document["Records"]
    if not isinstance(records, list):
        raise InvalidMessage("Records must be a list")
    parsed = Parsed()
    for i, record in enumerate(records):
        if isinstance(record, dict) and record.get("eventSource") == "aws:s3":
            key = unquote_plus(_path(record, ("s3", "object", "key"), f"Records[{i}]"))  # URL-encoded
            event_name = record.get("eventName")
            size = record["s3"]["object"].get("size")
            parsed.extend(_object_created(event_name, key, size, origin, options, prefix="ObjectCreated:"))
            _within(options, len(parsed.requests))
        elif isinstance(record, dict) and record.get("EventSource") == "aws:sns":
            sns = record.get("Sns")
            if not isinstance(sns, dict):
                raise InvalidMessage(f"Records[{i}] has no Sns object")
            parsed.extend(_sns_envelope({"Type": "Notification", **sns}, origin, options, depth))
            _within(options, len(parsed.requests))
        else:
            raise InvalidMessage(f"Records[{i}] is not an S3 or SNS event record")
    return parsed


def _eventbridge(document: Mapping[str, Any], origin: Origin, options: ParseOptions) -> Parsed:
    if document.get("source") != "aws.s3":
        raise InvalidMessage(f"EventBridge event from {preview(document.get('source'))!r}, not aws.s3")
    # EventBridge sends keys as they are (S3 notifications URL-encode them; EventBridge does not).
    key = _path(document, ("detail", "object", "key"), "EventBridge event")
    size = document["detail"]["object"].get("size")
    return _object_created(document.get("detail-type"), key, size, origin, options, prefix="Object Created")


def _object_created(
    event_name: object, key: str, size: object, origin: Origin, options: ParseOptions, *, prefix: str
) -> Parsed:
    if len(key) > S3_KEY_MAX or len(key.encode("utf-8", "replace")) > S3_KEY_MAX:
        raise InvalidMessage(f"an S3 key is at most {S3_KEY_MAX} bytes; this one is longer")
    here = origin._replace(s3_key=key)
    if not isinstance(event_name, str) or not event_name.startswith(prefix):
        return Parsed(ignored=[Remark(here, f"S3 event {preview(event_name)!r} is not an object creation")])
    if key.endswith("/"):
        return Parsed(ignored=[Remark(here, "a folder marker (the key ends in '/'), not a transcoded file")])
    if size == 0:
        return Parsed(ignored=[Remark(here, "a zero-byte object, not a transcoded file")])
    if options.custom_key_pattern:  # VID_KEY_PATTERN overrides: its first match, as configured
        match = options.key_pattern.search(key)
        if match is None:
            return Parsed(ignored=[Remark(here, "no vid found in the S3 key (VID_KEY_PATTERN)")])
        named = _named(match.groupdict().get("br"))
        return Parsed(requests=file_requests(match.group("vid"), named, here, options))
    return _vids_in_key(key, here, options)


def _vids_in_key(key: str, here: Origin, options: ParseOptions) -> Parsed:
    """Every vid-shaped token of the key; those of the accounts served (their first 10 characters
    are one's userid) are taken, all of them, and the others are passed by with a reason."""
    tokens = list(dict.fromkeys(m.group("vid") for m in options.key_pattern.finditer(key)))
    if not tokens:
        return Parsed(ignored=[Remark(here, "no vid found in the S3 key (VID_KEY_PATTERN)")])
    userids = options.userids
    ours = tokens if userids is None else [t for t in tokens if any(of_account(t, u) for u in userids)]
    parsed = Parsed()
    if not ours:
        parsed.ignored.append(Remark(here, f"the S3 key holds only vids of other accounts ({len(tokens)})"))
        return parsed
    if len(ours) < len(tokens):
        parsed.notes.append(
            Remark(here, f"passed by {len(tokens) - len(ours)} vid-shaped token(s) of another account")
        )
    if len(ours) > 1:
        served = f"the S3 key holds {len(ours)} vids of the accounts served: all taken"
        parsed.notes.append(Remark(here, served))
    _within(options, len(ours) * len(options.default_br_indexes))
    parsed.requests = [r for vid in ours for r in file_requests(vid, None, here, options)]
    return parsed


def _sns_envelope(document: Mapping[str, Any], origin: Origin, options: ParseOptions, depth: int) -> Parsed:
    if document.get("Type") != "Notification":
        return Parsed(ignored=[Remark(origin, f"SNS {preview(document.get('Type'), 32)} message")])
    message = document.get("Message")
    if not isinstance(message, str):
        raise InvalidMessage("SNS notification has no Message string")
    try:
        inner = json.loads(message)
    except ValueError:
        raise InvalidMessage(
            "SNS Message is not JSON: publish an S3 notification or the pipeline's JSON to the topic"
        ) from None
    except RecursionError:
        raise InvalidMessage("SNS Message nests JSON too deeply") from None
    return parse_document(inner, origin, options, depth + 1)


def _path(document: Mapping[str, Any], keys: Sequence[str], where: str) -> str:
    value: Any = document
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise InvalidMessage(f"{where} has no {'.'.join(keys)}")
        value = value[key]
    if not isinstance(value, str) or not value:
        raise InvalidMessage(f"{where}: {'.'.join(keys)} must be a non-empty string")
    return value
