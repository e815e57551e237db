"""Validate, deduplicate and chunk file requests. Pure functions: no I/O, no clock."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, TypeVar

from .accounts import no_account, of_account
from .model import BR_INDEXES, Fate, FileRef, FileRequest, FileResult, Origin
from .preview import preview

#: Polyv accepts at most this many files per call.
MAX_FILES_PER_CALL = 100

#: The documented vid shape: 32 chars [0-9a-z], "_", one char. The first 10 chars are the userid.
VID_RE = re.compile(r"[0-9a-z]{32}_[0-9a-z]")


class InvalidFile(ValueError):
    """A requested file cannot be sent; the message is the reason shown to users, ``label`` its
    short, bounded name (a metric's dimension)."""

    def __init__(self, message: str, label: str) -> None:
        super().__init__(message)
        self.label = label


INVALID_VID, FOREIGN_VID, INVALID_BR_INDEX = "invalid vid", "vid of another account", "invalid brIndex"


def validate_vid(vid: object, userid: str) -> str:
    if not isinstance(vid, str):
        raise InvalidFile(f"vid must be a string, got {type(vid).__name__}", INVALID_VID)
    if not VID_RE.fullmatch(vid):
        raise InvalidFile("vid does not have the Polyv shape <32 chars [0-9a-z]>_<1 char>", INVALID_VID)
    if not of_account(vid, userid):
        raise InvalidFile(no_account(vid), FOREIGN_VID)
    return vid


def validate_br_index(br_index: object) -> int:
    # bool is an int subclass: True must not pass as brIndex 1.
    if isinstance(br_index, bool):
        raise InvalidFile("brIndex must be 1, 2 or 3, got a boolean", INVALID_BR_INDEX)
    if isinstance(br_index, str) and br_index.strip() in ("1", "2", "3"):
        br_index = int(br_index.strip())
    if not isinstance(br_index, int) or br_index not in BR_INDEXES:
        got = repr(br_index[:40]) if isinstance(br_index, str) else preview(br_index, 40)
        raise InvalidFile(f"brIndex must be 1, 2 or 3, got {got}", INVALID_BR_INDEX)
    return br_index


def validate(request: FileRequest, userid: str) -> FileRef:
    return FileRef(validate_vid(request.vid, userid), validate_br_index(request.br_index))


class Asked(Protocol):
    """A file and the request that asked for it (a planned file, or its claim)."""

    @property
    def file(self) -> FileRef: ...

    @property
    def request(self) -> FileRequest: ...


A = TypeVar("A", bound=Asked)


class RequestedFile(NamedTuple):
    """A unique file and the first request that asked for it."""

    file: FileRef
    request: FileRequest


@dataclass
class Plan:
    """The files of one invocation, sorted into: already decided (rejected, duplicate) and to send."""

    decided: list[FileResult] = field(default_factory=list)
    unique: list[RequestedFile] = field(default_factory=list)

    def chunks(self, size: int = MAX_FILES_PER_CALL) -> list[list[RequestedFile]]:
        return chunk(self.unique, size)


def chunk(items: Sequence[A], size: int = MAX_FILES_PER_CALL) -> list[list[A]]:
    """Split into the minimum number of calls, ceil(n/size), none larger than ``size``."""
    if not 1 <= size <= MAX_FILES_PER_CALL:
        raise ValueError(f"chunk size must be 1..{MAX_FILES_PER_CALL}")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def clean_first(
    files: Iterable[A], suspects: Collection[Origin], size: int = MAX_FILES_PER_CALL
) -> Iterator[tuple[list[A], bool]]:
    """The calls of a submission, clean files first: chunks of ``size`` of the files whose origin
    (their message) is not a suspect, in order, then the suspects' files in chunks of their own
    (``True``): a suspect is never packed with a clean file. ``suspects`` is read as the chunks are
    taken, so a message that a refused call made a suspect is kept apart from the next chunk on."""
    pending = iter(files)
    held: list[A] = []
    while True:
        group: list[A] = []
        for wanted in pending:
            (held if wanted.request.origin in suspects else group).append(wanted)
            if len(group) == size:
                break
        if not group:
            break
        yield group, False
    for start in range(0, len(held), size):
        yield held[start : start + size], True


def build_plan(requests: Iterable[FileRequest], userid: str) -> Plan:
    """Validate every request and keep the first request for each unique (vid, brIndex).

    Order is preserved, so files of one message stay together in as few calls as possible.
    """
    plan = Plan()
    first_request: dict[FileRef, RequestedFile] = {}
    for request in requests:
        try:
            file = validate(request, userid)
        except InvalidFile as exc:
            plan.decided.append(FileResult(request, Fate.REJECTED, reason=str(exc), label=exc.label))
            continue
        if file in first_request:
            plan.decided.append(
                FileResult(request, Fate.DUPLICATE, file=file, reason="already requested in this invocation")
            )
            continue
        requested = RequestedFile(file, request)
        first_request[file] = requested
        plan.unique.append(requested)
    return plan
