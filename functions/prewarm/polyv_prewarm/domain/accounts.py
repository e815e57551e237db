"""The Polyv accounts a deployment serves, and which one a vid is of: the one place that reads a
vid's account.

Every vid Polyv issues starts with its account's userid (docs/polyv-api.md, "Accounts"): a file
is routed, checked and refused by its vid alone. Sub-accounts (子账号) share their main account's
userid, and so are one account here; a group's accounts (分帐号) are separate userids, each with
its own secretkey and its own daily limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from .ports import PrewarmError


def of_account(vid: str, userid: str) -> bool:
    """Whether ``vid`` is one of the account ``userid``'s videos."""
    return bool(userid) and vid.startswith(userid)


class Account(NamedTuple):
    """One Polyv account: its userid and what its day may spend (its secretkey is the secret's)."""

    userid: str
    daily_limit: int  # files per quota day (Polyv's 2000 per account)
    manual_reserve: int  # of the limit, kept for a person's "priority": "high" requests


def no_account(vid: str, userid_length: int = 10) -> str:
    """Why a vid of no configured account is refused (its userid is its first characters)."""
    return f"no account for userid {vid[:userid_length]!r}: the vid belongs to another Polyv account"


class UnknownAccount(PrewarmError):
    """An account a person named (``--account``) that this deployment does not serve."""


class AccountBook:
    """The accounts, in their configured order, and the account of a vid.

    ``home``: the account whose items keep the keys of a deployment of one account (the secret's
    first; docs/ledger.md, "Accounts"); it need not be served."""

    def __init__(self, accounts: Iterable[Account], *, home: str) -> None:
        self.home = home
        self._accounts: dict[str, Account] = {}
        for account in accounts:
            if not account.userid:
                raise ValueError("an account needs a userid")
            if account.userid in self._accounts:
                raise ValueError(f"account {account.userid!r} is listed twice")
            self._accounts[account.userid] = account
        if not self._accounts:
            raise ValueError("no account")

    def __iter__(self) -> Iterator[Account]:
        return iter(self._accounts.values())

    def __len__(self) -> int:
        return len(self._accounts)

    def get(self, userid: str) -> Account | None:
        return self._accounts.get(userid)

    def served(self, userid: str) -> Account:
        """The account ``userid``, or :class:`UnknownAccount` naming the accounts served."""
        account = self._accounts.get(userid)
        if account is None:
            raise UnknownAccount(
                f"no account for userid {userid[:40]!r} in this deployment (it serves "
                f"{', '.join(self._accounts)})"
            )
        return account

    def first(self) -> Account:
        return next(iter(self._accounts.values()))

    def is_home(self, account: Account) -> bool:
        return account.userid == self.home

    def of(self, vid: str) -> Account | None:
        """The account ``vid`` is of, or None (a vid of an account this deployment does not serve)."""
        return next((a for a in self._accounts.values() if of_account(vid, a.userid)), None)
