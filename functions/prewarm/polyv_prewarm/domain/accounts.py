"""Which Polyv account a vid is of: the one place that reads it from the vid.

Every vid Polyv issues starts with its account's userid (docs/polyv-api.md, "Accounts"): a file
is routed, checked and refused by its vid alone. Sub-accounts (子账号) share their main account's
userid, and so are one account here.
"""

from __future__ import annotations


def of_account(vid: str, userid: str) -> bool:
    """Whether ``vid`` is one of the account ``userid``'s videos."""
    return bool(userid) and vid.startswith(userid)
