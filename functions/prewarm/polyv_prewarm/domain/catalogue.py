"""An operator's catalogue for a backfill: one video per line, ``vid`` or ``vid,brIndex`` (CSV).

Pure: lines in, the files of the accounts served and the refused lines (with why) out. Blank lines, ``#``
comments and a ``vid[,brIndex]`` header are skipped; a vid alone means DEFAULT_BR_INDEXES.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from .accounts import of_account
from .model import FileRef
from .plan import InvalidFile, validate_br_index, validate_vid
from .preview import preview

#: How many refused lines a report lists (they are all counted).
REFUSED_SHOWN = 20


class RefusedLine(NamedTuple):
    line: int  # 1-based
    text: str  # as it was, cut short
    reason: str


class Catalogue(NamedTuple):
    files: list[FileRef]  # unique, in the catalogue's order
    refused: list[RefusedLine]
    lines: int  # lines read, skipped ones included
    repeated: int  # files named more than once


def read_catalogue(
    lines: Iterable[str], userids: Sequence[str], default_br_indexes: Sequence[int]
) -> Catalogue:
    """``userids``: the accounts served (a vid of another is refused: "no account for userid")."""
    files: dict[FileRef, None] = {}
    refused: list[RefusedLine] = []
    repeated = count = 0
    for count, raw in enumerate(lines, 1):  # count: also the number of lines read, after the loop
        text = raw.strip().lstrip("\ufeff")
        if not text or text.startswith("#") or text.lower().replace(" ", "") in ("vid", "vid,brindex"):
            continue
        try:
            found = _files(text, userids, default_br_indexes)
        except InvalidFile as exc:
            refused.append(RefusedLine(count, preview(text, 80), str(exc)))
            continue
        for file in found:
            if file in files:
                repeated += 1
            files[file] = None
    return Catalogue(list(files), refused, count, repeated)


def _files(text: str, userids: Sequence[str], default_br_indexes: Sequence[int]) -> list[FileRef]:
    parts = [part.strip() for part in text.split(",")]
    if len(parts) > 2:
        raise InvalidFile("expected vid or vid,brIndex", "not a catalogue line")
    userid = next((u for u in userids if of_account(parts[0], u)), userids[0] if userids else "")
    vid = validate_vid(parts[0], userid)
    if len(parts) == 2 and parts[1]:
        return [FileRef(vid, validate_br_index(parts[1]))]
    return [FileRef(vid, br) for br in default_br_indexes]
