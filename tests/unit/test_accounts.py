"""Several Polyv accounts in one deployment, over fakes wired as the runtime wires them: each file
to its own account's Polyv (which, like Polyv, refuses a vid of another account), quota, backlog
and drains; a vid of no account refused before Polyv is asked; the accounts as configured (the
secret's, POLYV_ACCOUNTS's limits and reserves). tests/integration/test_accounts.py runs them on
the local stack (moto, the Polyv simulator with an account each)."""

from __future__ import annotations

import pytest

from polyv_prewarm.adapters.credentials import parse_accounts
from polyv_prewarm.config import ConfigurationError, Settings
from polyv_prewarm.domain.accounts import UnknownAccount
from polyv_prewarm.domain.model import Fate, FileRef, FileRequest, Origin
from polyv_prewarm.domain.ports import CredentialsError
from polyv_prewarm.logic.accounts import by_account
from polyv_prewarm.runtime import AccountPorts, every_account
from polyv_prewarm.summaries import summary
from tests.fakes import (
    USERID,
    FakePolyv,
    InMemoryBacklog,
    InMemoryBreaker,
    InMemoryLedger,
    InMemoryMarks,
    vid,
)
from tests.helpers import BASE_ENV, DAY, Clock

B, C, D, E = "1b448be323", "2c559cf434", "3d66ad0545", "4e77be1656"


def files_of(userid: str, n: int, *, start: int = 0, br: int = 1) -> list[FileRequest]:
    return [
        FileRequest(vid(start + i, userid), br, Origin("sqs", message_id=f"m-{userid}")) for i in range(n)
    ]


class Deployment:
    """Accounts over fakes as ``runtime.build_runtime`` wires them: one clock and one breaker;
    each account its own Polyv, ledger and backlog, and its limit and reserve from the settings
    (``Settings.account_book`` over the secret's userids, ``Settings.for_account``)."""

    def __init__(self, userids: list[str], limit: int = 2000, **env: str) -> None:
        self.settings = Settings.from_env({**BASE_ENV, "DAILY_FILE_LIMIT": str(limit), **env})
        self.secret = list(userids)  # the userids the Polyv secret holds, in its order
        self.clock, self.breaker = Clock(), InMemoryBreaker()
        self.polyv = {u: FakePolyv(userid=u) for u in userids}
        self.ledgers = {u: InMemoryLedger() for u in userids}
        self.backlogs = {u: InMemoryBacklog() for u in userids}
        self.marks = {u: InMemoryMarks() for u in userids}
        self.every = every_account(
            self.settings,
            lambda: self.settings.account_book(self.secret),
            lambda account, home: AccountPorts(
                self.polyv[account.userid],
                self.ledgers[account.userid],
                self.backlogs[account.userid],
                self.marks[account.userid],
            ),
            breaker=self.breaker,
            clock=self.clock,
            backoff=lambda n: 0.0,
            sleep=lambda seconds: None,
        )

    def accepted(self, userid: str) -> list[FileRef]:
        return self.polyv[userid].accepted_files()


@pytest.mark.parametrize("userids", [[USERID, B], [USERID, B, C, D, E]], ids=["two", "five"])
def test_each_accounts_files_go_to_its_own_polyv_and_no_call_mixes_accounts(userids):
    d = Deployment(userids)
    requests = [r for i in range(30) for u in userids for r in files_of(u, 1, start=i)]  # interleaved
    report = d.every.prewarm(requests)
    assert report.count(Fate.SUBMITTED) == 30 * len(userids)
    for u in userids:
        assert sorted(f.vid for f in d.accepted(u)) == sorted(vid(i, u) for i in range(30))
        assert all(f.vid.startswith(u) for call in d.polyv[u].calls for f in call)  # never mixed
        assert d.ledgers[u].used[DAY] == 30  # each account's own counter
    assert set(report.accounts) == set(userids)
    assert {u: r.quota.used for u, r in report.accounts.items() if r.quota} == dict.fromkeys(userids, 30)


def test_one_account_over_its_limit_takes_no_unit_of_another_and_each_spills_to_the_next_day():
    d = Deployment([USERID, B], limit=100, MANUAL_RESERVE="0")
    first = d.every.prewarm(files_of(USERID, 150) + files_of(B, 150))
    assert (first.count(Fate.SUBMITTED), first.count(Fate.DEFERRED)) == (200, 100)
    assert (len(d.accepted(USERID)), len(d.accepted(B))) == (100, 100)
    d.clock.advance(days=1)
    drained = d.every.drain()
    assert drained.count(Fate.SUBMITTED) == 100
    assert (len(d.accepted(USERID)), len(d.accepted(B))) == (150, 150)
    assert all(not backlog.items for backlog in d.backlogs.values())


def test_a_busy_account_never_delays_another_accounts_files():
    d = Deployment([USERID, B], limit=100, MANUAL_RESERVE="0")
    d.every.prewarm(files_of(USERID, 400))  # the first account's day is spent, 300 deferred
    late = d.every.prewarm(files_of(B, 10))
    assert late.count(Fate.SUBMITTED) == 10
    assert not d.backlogs[B].items
    assert len(d.backlogs[USERID].items) == 300


def test_a_vid_of_no_account_is_rejected_with_its_reason_before_polyv_is_asked():
    d = Deployment([USERID, B])
    stranger = "9z9z9z9z9z" + vid(1)[10:]
    report = d.every.prewarm([FileRequest(stranger, 1, Origin("direct")), *files_of(B, 1)])
    rejected = [r for r in report.results if r.fate is Fate.REJECTED]
    assert [r.request.vid for r in rejected] == [stranger]
    assert rejected[0].reason.startswith("no account for userid '9z9z9z9z9z'")
    assert d.polyv[USERID].calls == []  # nothing asked of any account for it
    assert [f.vid for call in d.polyv[B].calls for f in call] == [vid(0, B)]


def test_a_drain_runs_each_accounts_backlog_on_its_own_quota_or_one_account_alone():
    d = Deployment([USERID, B], limit=10, MANUAL_RESERVE="0")
    d.every.prewarm(files_of(USERID, 25) + files_of(B, 25))
    d.clock.advance(days=1)
    only_b = d.every.drain(account=B)
    assert only_b.account == B
    assert only_b.count(Fate.SUBMITTED) == 10
    assert len(d.accepted(USERID)) == 10  # the other account was left alone
    with pytest.raises(UnknownAccount, match="no account for userid 'nobody'"):
        d.every.drain(account="nobody")


def test_the_accounts_limits_and_reserves_from_polyv_accounts_override_the_deployments():
    d = Deployment([USERID, B], limit=100, POLYV_ACCOUNTS=f"{USERID}:20:0,{B}")
    book = d.every.book()
    assert [(a.userid, a.daily_limit, a.manual_reserve) for a in book] == [(USERID, 20, 0), (B, 100, 5)]
    report = d.every.prewarm(files_of(USERID, 30) + files_of(B, 30))
    assert (len(d.accepted(USERID)), len(d.accepted(B))) == (20, 30)
    assert summary(report.accounts[B].quota)["reserve"] == {"files": 5, "used": 0}


def test_polyv_accounts_may_serve_some_of_the_secrets_accounts_and_the_home_stays_the_secrets_first():
    settings = Settings.from_env({**BASE_ENV, "POLYV_ACCOUNTS": B})
    book = settings.account_book([USERID, B])
    assert [a.userid for a in book] == [B]
    assert book.home == USERID  # the keys of a one-account deployment stay the first account's
    assert not book.is_home(book.first())


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("e6b23c6f51,e6b23c6f51", "twice"),
        ("E6B23C6F51", "userid"),
        ("e6b23c6f51:0", "positive"),
        ("e6b23c6f51:100:100", "below its limit"),
        ("e6b23c6f51:1:2:3", "userid"),
        ("e6b23c6f51:ten", "userid"),
    ],
)
def test_a_bad_polyv_accounts_is_a_configuration_error_that_names_it(raw, error):
    with pytest.raises(ConfigurationError, match=error):
        Settings.from_env({**BASE_ENV, "POLYV_ACCOUNTS": raw}).account_book([USERID])


def test_an_account_polyv_accounts_names_but_the_secret_lacks_is_a_configuration_error():
    settings = Settings.from_env({**BASE_ENV, "POLYV_ACCOUNTS": f"{USERID},{B}"})
    with pytest.raises(ConfigurationError, match="no secretkey for"):
        settings.account_book([USERID])


def test_the_secret_holds_one_account_as_before_or_several():
    one = parse_accounts({"userid": USERID, "secretkey": "k1"}, "polyv/test")
    assert [(c.userid, c.secretkey) for c in one] == [(USERID, "k1")]
    several = parse_accounts(
        {"accounts": [{"userid": USERID, "secretkey": "k1"}, {"userid": B, "secretkey": "k2"}]}, "polyv/test"
    )
    assert [(c.userid, c.secretkey) for c in several] == [(USERID, "k1"), (B, "k2")]


@pytest.mark.parametrize(
    "value",
    [
        {"accounts": []},
        {"accounts": "k1"},
        {"accounts": [{"userid": USERID}]},
        {"accounts": [{"userid": USERID, "secretkey": "s3cr3t-one"}, {"userid": USERID, "secretkey": "x"}]},
        {"accounts": [{"userid": USERID, "secretkey": "s3cr3t-one"}, ["s3cr3t-two"]]},
    ],
    ids=["empty", "not a list", "no secretkey", "twice", "not an object"],
)
def test_a_malformed_secret_of_several_accounts_is_refused_without_showing_a_secretkey(value):
    with pytest.raises(CredentialsError) as caught:
        parse_accounts(value, "polyv/test")
    assert caught.value.misconfigured
    assert "s3cr3t" not in str(caught.value)


def test_files_are_split_by_account_in_the_books_order_and_strays_go_with_the_first():
    book = Settings.from_env({**BASE_ENV, "POLYV_ACCOUNTS": f"{B},{USERID}"}).account_book([USERID, B])
    items = [vid(1), vid(2, B), 42, "short"]
    groups = by_account(book, items, lambda item: item)
    assert [(a.userid, members) for a, members in groups.items()] == [
        (B, [vid(2, B), 42, "short"]),
        (USERID, [vid(1)]),
    ]


def test_a_backfill_is_routed_by_vid_and_refuses_a_vid_of_no_account():
    d = Deployment([USERID, B])
    lines = [vid(1), f"{vid(2, B)},2", "9z9z9z9z9z" + vid(3)[10:]]
    report = d.every.backfill(lines, source="catalogue.csv")
    assert report.stored == 4  # vid(1) in every default definition, B's in one
    assert {f.vid for f in d.backlogs[USERID].items} == {vid(1)}
    assert set(d.backlogs[B].items) == {FileRef(vid(2, B), 2)}
    assert [r.reason.split(":")[0] for r in report.catalogue.refused] == [
        "no account for userid '9z9z9z9z9z'"
    ]
    assert report.days == 1
