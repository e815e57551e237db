"""Every account a deployment serves, as one: each file goes to the use cases of the account its
vid names, and a drain, a sweep or a recovery runs over each account in turn.

Each account has use cases of its own (:class:`UseCases`: its Polyv client signing with its own
secretkey, its own day counter, backlog and policy), so that a Polyv call never mixes accounts and
one account's busy day never takes another's units: a request's files are split by account before
anything is planned, and the reports are combined afterwards. A file of no account served goes to
the first account's use cases, whose plan rejects it with its reason (``no account for userid``)
before anything is claimed or sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple, TypeVar

from aws_lambda_powertools import Logger

from .. import SERVICE
from ..domain.accounts import Account, AccountBook
from ..domain.catalogue import read_catalogue
from ..domain.claims import NO_FLAGS, ClaimRequest
from ..domain.model import DefinitionsLookup, FileRequest, FileResult, Report
from ..domain.policy import Deadline
from ..domain.ports import StoreUnavailable
from .backfill import Backfill, BackfillReport
from .confirm_definitions import ConfirmDefinitions, Confirmed
from .drain import DrainBacklog
from .prewarm import PrewarmFiles
from .queries import LedgerQueries
from .reconcile import Found, ReconcileAccount
from .recovery import RecoverWaiting

logger = Logger(service=SERVICE, child=True)

T = TypeVar("T")


class UseCases(NamedTuple):
    """One account's use cases."""

    prewarm: PrewarmFiles  # prewarm files: plan -> claim -> send -> record -> place
    drain: DrainBacklog  # the morning drain and the late sweeps of the backlog
    recover: RecoverWaiting  # the files waiting out an outage, once Polyv answers
    queries: LedgerQueries  # quota, a video's status, the backlog
    backfill: Backfill  # an operator's catalogue, to the backlog's lowest tier
    confirm: ConfirmDefinitions  # a TranscodeComplete's definitions, from Polyv itself
    reconcile: ReconcileAccount  # the files Polyv lists that no event brought


def by_account(book: AccountBook, items: Iterable[T], vid: Callable[[T], object]) -> dict[Account, list[T]]:
    """``items`` split by the account of their vid, in the book's order; an item whose vid is of no
    account served (or not a string) goes with the first account's, whose plan rejects it."""
    groups: dict[Account, list[T]] = {}
    first = book.first()
    for item in items:
        value = vid(item)
        account = (book.of(value) if isinstance(value, str) else None) or first
        groups.setdefault(account, []).append(item)
    order = list(book)
    return dict(sorted(groups.items(), key=lambda group: order.index(group[0])))


def combined(reports: Mapping[str, Report]) -> Report:
    """One report of several accounts' runs: every file's result and every call, the first reason
    to stop, and each account's own report (its quota, its backlog) in ``accounts``. One account's
    report is returned as it is."""
    for userid, report in reports.items():
        report.account = userid
    if len(reports) == 1:
        return next(iter(reports.values()))
    out = Report(accounts=dict(reports))
    for report in reports.values():
        out.results += report.results
        out.calls += report.calls
        out.dry_run = out.dry_run or report.dry_run
        out.resent_in_doubt += report.resent_in_doubt
        out.suspects |= report.suspects
        out.refused_by_polyv |= report.refused_by_polyv
        if out.stopped is None and report.stopped is not None:
            out.stopped, out.stopped_because = report.stopped, report.stopped_because
        if report.polyv_down_minutes is not None:
            out.polyv_down_minutes = max(out.polyv_down_minutes or 0.0, report.polyv_down_minutes)
            out.polyv_down_since = out.polyv_down_since or report.polyv_down_since
        out.breaker = out.breaker or report.breaker
    return out


class Reconciled(NamedTuple):
    """A reconcile of every account (or one): what each account's run found, and what the
    prewarm did with the files (each account's report in ``report.accounts``)."""

    found: dict[str, Found]
    report: Report

    @property
    def files_found(self) -> int:
        """The files no event had brought (``FilesFoundByReconcile``)."""
        return sum(len(f.requests) for f in self.found.values())

    def failed(self) -> list[str]:
        """The accounts whose listing failed this run (not those the table's outage skipped)."""
        return [userid for userid, f in self.found.items() if f.error is not None and f.store]


class EveryAccount:
    """The use cases of every account served, as one (this module's docstring)."""

    def __init__(self, book: Callable[[], AccountBook], cases: Callable[[Account], UseCases]) -> None:
        """``book``: the accounts served (read from the Polyv secret: cached); ``cases``: an
        account's use cases (built once each)."""
        self._book = book
        self._cases = cases

    def book(self) -> AccountBook:
        return self._book()

    def of(self, userid: str | None = None) -> UseCases:
        """An account's use cases (``userid`` None: the first account's)."""
        book = self._book()
        return self._cases(book.first() if userid is None else book.served(userid))

    def prewarm(
        self,
        requests: Sequence[FileRequest],
        *,
        deadline: Deadline | None = None,
        dry_run: bool = False,
        rule: ClaimRequest = NO_FLAGS,
        priority_high: bool = False,
    ) -> Report:
        """Each account's files through its own prewarm, one account after the other, within the
        one deadline (the Polyv calls are paced as one invocation's)."""
        book = self._book()
        groups = by_account(book, requests, lambda r: r.vid) or {book.first(): []}
        reports = {
            account.userid: self._cases(account).prewarm.prewarm(
                files, deadline=deadline, dry_run=dry_run, rule=rule, priority_high=priority_high
            )
            for account, files in groups.items()
        }
        return combined(reports)

    def confirm(self, lookups: Sequence[DefinitionsLookup], *, deadline: Deadline) -> Confirmed:
        """Each account's TranscodeComplete definitions asked of Polyv under its own secretkey."""
        answers = [
            self._cases(account).confirm.confirm(group, deadline=deadline)
            for account, group in by_account(self._book(), lookups, lambda lookup: lookup.vid).items()
        ]
        return Confirmed(
            requests=[r for a in answers for r in a.requests],
            ignored=[i for a in answers for i in a.ignored],
            asked=sum(a.asked for a in answers),
            fell_back=sum(a.fell_back for a in answers),
        )

    def drain(
        self,
        *,
        deadline: Deadline | None = None,
        sweep: bool = False,
        account: str | None = None,
        on_slice: Callable[[Report], None] | None = None,
    ) -> Report:
        """The morning drain (or a late sweep) of each account's backlog on its own quota, one
        account after the other; one account (``account``) alone when given. ``on_slice``: after
        every slice, with the results so far of every account drained."""
        done: list[FileResult] = []

        def progress(report: Report) -> None:
            if on_slice is not None:
                on_slice(Report(results=done + report.results))

        reports = {}
        for a in self._chosen(account):
            reports[a.userid] = self._cases(a).drain.run(deadline=deadline, sweep=sweep, on_slice=progress)
            done += reports[a.userid].results
        return combined(reports)

    def recover(self, *, deadline: Deadline | None = None, account: str | None = None) -> Report:
        """Each account's files waiting out an outage, once Polyv answers (one breaker for all:
        an outage of Polyv is every account's)."""
        return combined(
            {a.userid: self._cases(a).recover.recover(deadline=deadline) for a in self._chosen(account)}
        )

    def reconcile(
        self,
        *,
        deadline: Deadline,
        account: str | None = None,
        since: datetime | None = None,
        dry_run: bool = False,
    ) -> Reconciled:
        """Each account's reconcile under its own secretkey, one after the other: the files it
        finds go through its prewarm as ordinary automatic work, and its mark moves once they are
        placed (none handed back) or its listing failed. ``since``, a person's look from that
        instant, and ``dry_run`` leave the marks as they are."""
        found: dict[str, Found] = {}
        reports: dict[str, Report] = {}
        for a in self._chosen(account):
            cases = self._cases(a)
            run = cases.reconcile.find(deadline=deadline, since=since)
            report = (
                cases.prewarm.prewarm(run.requests, deadline=deadline, dry_run=dry_run)
                if run.requests
                else Report()
            )
            placed = not any(r.fate.needs_retry for r in report.results)
            if since is None and not dry_run and run.store and (placed or run.error is not None):
                try:
                    cases.reconcile.commit(run)
                except StoreUnavailable as exc:  # the mark stays: the next run reads the same window
                    logger.warning("the reconcile mark could not be stored", extra={"error": str(exc)})
            found[a.userid], reports[a.userid] = run, report
        return Reconciled(found, combined(reports))

    def backfill(
        self, lines: Iterable[str], *, source: str, dry_run: bool = False, account: str | None = None
    ) -> BackfillReport:
        """A catalogue's files, each to its own account's backfill tier (``account``: only that
        account's vids are taken; the others are refused with their reason)."""
        chosen = self._chosen(account)
        if len(chosen) == 1:
            return self._cases(chosen[0]).backfill.run(lines, source=source, dry_run=dry_run)
        first = self._cases(chosen[0]).backfill
        catalogue = read_catalogue(lines, [a.userid for a in chosen], first.default_br_indexes)
        parts = [
            self._cases(a).backfill.store(catalogue._replace(files=files), source, dry_run)
            for a, files in by_account(self._book(), catalogue.files, lambda f: f.vid).items()
        ]
        return BackfillReport(
            catalogue,
            stored=sum(p.stored for p in parts),
            spare_per_day=sum(p.spare_per_day for p in parts),
            dry_run=dry_run,
            accounts=tuple(parts),
        )

    def _chosen(self, account: str | None) -> list[Account]:
        book = self._book()
        return list(book) if account is None else [book.served(account)]
