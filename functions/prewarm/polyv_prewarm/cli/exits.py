"""The CLI's exit codes, and the one table that maps what stopped a command to them."""

from __future__ import annotations

from collections.abc import Sequence

from ..domain.model import FileResult, Stopped
from ..domain.ports import CredentialsError, StoreUnavailable

EXIT_OK, EXIT_NOT_DONE, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_REJECTED, EXIT_BUG = 0, 1, 2, 3, 4, 70
EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_NOT_DONE: "files were handed back for a retry (run it again later, or let the queue retry)",
    EXIT_USAGE: "bad usage or configuration (a table, a secret, a permission, a flag): fix what it says",
    EXIT_UNAVAILABLE: "AWS or Polyv unavailable: a retry later may work",
    EXIT_REJECTED: "some files were rejected (an invalid or foreign vid, a bitrate Polyv does not have)",
    EXIT_BUG: "an unexpected error: please report it (-v shows the traceback)",
}

#: A run's stop that ends the command as an error of its own, with what to do: the other stops
#: (Polyv down, the deadline...) leave files handed back or waiting, which the files' fates say.
STOP_EXITS: dict[Stopped, tuple[int, str]] = {
    Stopped.CONFIGURATION: (
        EXIT_USAGE,
        "update the secret's secretkey, or POLYV_SECRET_ID; nothing more was sent",
    ),
    Stopped.BUG: (EXIT_BUG, "a bug: please report it"),
}

#: What to fix, for the AWS error codes of a configuration a person meets first.
FIXES = {
    "ResourceNotFoundException": "no such table or secret: check --table/QUOTA_TABLE and "
    "--secret-id/POLYV_SECRET_ID, or use --stack",
    "AccessDeniedException": "access denied: your AWS identity needs the stack's table and secret "
    "(--profile, --region)",
}


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def outcome(results: Sequence[FileResult], stopped: Stopped | None, stopped_because: str | None) -> int:
    """A run's exit code: a stop of its own (``STOP_EXITS``) before files handed back, before
    files rejected."""
    if stopped in STOP_EXITS:
        code, advice = STOP_EXITS[stopped]
        raise CliError(f"{stopped_because} ({advice})", code)
    if any(r.fate.needs_retry for r in results):
        return EXIT_NOT_DONE
    if any(r.fate.value == "rejected" for r in results):
        return EXIT_REJECTED
    return EXIT_OK


def reason(exc: StoreUnavailable | CredentialsError) -> str:
    """The error's line, with what to fix when it is a configuration a person meets often."""
    message = f"{type(exc).__name__}: {exc}"
    if exc.misconfigured and exc.code in FIXES:
        message += f" ({FIXES[exc.code]})"
    return message
