"""``polyv-prewarm``: the operator's command line, on the function's own code.

Every subcommand goes through the same use cases (or, for ``invoke``, the same Lambda handler) as
the deployed function, against real AWS (standard profile/region settings) or the local stack
(standard endpoint settings, e.g. ``AWS_ENDPOINT_URL``). With ``--stack`` it takes its settings
from the deployed function, so that it claims, drains and expires with what production runs.

Exit codes (EXIT_CODES): 0 done; 1 files handed back for a retry; 2 configuration or usage, a
person must fix it; 3 a service unavailable, a retry later may work; 4 files rejected; 70 a bug.
Errors are one line on stderr.

The package: ``parser`` (the grammar), ``settings`` (a stack's settings or the options'),
``commands`` (each command over the use cases), ``render`` (typed results as tables),
``exits`` (exit codes, and the one table from a run's stop to them), ``terminal`` (safe text).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from botocore.exceptions import BotoCoreError, ClientError

from .. import SERVICE
from ..adapters.aws_errors import misconfigured
from ..config import ConfigurationError
from ..domain.accounts import UnknownAccount
from ..domain.ports import CredentialsError, PolyvConfigurationError, PolyvError, StoreUnavailable
from ..events import UnsupportedEvent
from .commands import COMMANDS
from .exits import (
    EXIT_BUG,
    EXIT_CODES,
    EXIT_NOT_DONE,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CliError,
    reason,
)
from .parser import build_parser
from .settings import AWS_OPTIONS, configure
from .terminal import fail, plain, to_json

__all__ = [
    "COMMANDS",
    "EXIT_BUG",
    "EXIT_CODES",
    "EXIT_NOT_DONE",
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "build_parser",
    "entry",
    "main",
    "plain",
    "to_json",
]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for option, variable in AWS_OPTIONS.items():
        if getattr(args, option) is not None:
            os.environ[variable] = str(getattr(args, option))
    # Outside Lambda: no EMF metrics on stdout, no X-Ray, and logs only when asked for.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    try:
        configure(args)
        return _run(args)
    except CliError as exc:
        return fail(str(exc), exc.code)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_NOT_DONE)
    except Exception as exc:  # a bug: one line, the traceback only when asked for
        if args.verbose:
            traceback.print_exc()
        return fail(f"unexpected {type(exc).__name__}: {plain(exc)} (a bug: please report it)", EXIT_BUG)


def _run(args: argparse.Namespace) -> int:
    # The function's JSON log lines go to stderr, so stdout holds only the command's answer.
    service_logger = logging.getLogger(SERVICE)  # Powertools names its logger after the service
    streams = [h for h in service_logger.handlers if isinstance(h, logging.StreamHandler)]
    previous = [(h.stream, h.level) for h in streams]
    for log_handler in streams:
        log_handler.stream = sys.stderr  # not setStream(): it flushes the old stream, maybe closed
        # on the handler, not the logger: the modules' child loggers propagate their records here
        log_handler.setLevel(logging.INFO if args.verbose else logging.CRITICAL)
    try:
        return COMMANDS[args.command](args)
    except (ConfigurationError, UnsupportedEvent, PolyvConfigurationError, UnknownAccount) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except (StoreUnavailable, CredentialsError) as exc:
        raise CliError(reason(exc), EXIT_USAGE if exc.misconfigured else EXIT_UNAVAILABLE) from None
    except (PolyvError, BotoCoreError, ClientError) as exc:
        code = EXIT_USAGE if misconfigured(exc) else EXIT_UNAVAILABLE
        raise CliError(f"{type(exc).__name__}: {exc}", code) from None
    finally:
        for log_handler, (stream, level) in zip(streams, previous, strict=True):
            log_handler.stream = stream
            log_handler.setLevel(level)


def entry() -> NoReturn:
    sys.exit(main())
