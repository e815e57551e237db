"""Configuration from environment variables, validated in one place at start-up."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from datetime import time, timedelta
from typing import NamedTuple
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from .domain.accounts import Account, AccountBook
from .domain.model import BR_INDEXES
from .domain.policy import Policy
from .domain.ports import PrewarmError
from .events import DEFAULT_VID_KEY_PATTERN, ParseOptions

DEFAULT_API_URL = "https://api.polyv.net/v2/video/refresh-cdn-cache"

#: Every setting's default, stated once, as its environment variable would hold it. Settings has
#: no default of its own, and nor does anything built from it (the logic, the adapters, the
#: tests' world): what production runs is what the tests run, but what a test states.
DEFAULTS: dict[str, str] = {
    "POLYV_API_URL": DEFAULT_API_URL,
    "DAILY_FILE_LIMIT": "2000",
    "QUOTA_TIMEZONE": "Asia/Shanghai",
    "DEFAULT_BR_INDEXES": "1,2,3",
    "VID_KEY_PATTERN": DEFAULT_VID_KEY_PATTERN,
    "SECRET_MAX_AGE_SECONDS": "300",
    "LEDGER_RETENTION_DAYS": "35",
    "POLYV_ATTEMPTS": "3",
    "POLYV_BACKOFF_BASE_SECONDS": "0.5",
    "POLYV_CONNECT_TIMEOUT_SECONDS": "3.05",
    "POLYV_READ_TIMEOUT_SECONDS": "10",
    "MANUAL_RESERVE": "",  # empty: 5 % of DAILY_FILE_LIMIT (100 of 2000)
    "BACKLOG_MAX_AGE_DAYS": "7",
    "DRAIN_ORDER": "newest",
    # the last hour: the sweeps spend the reserve and what else is left, when nobody else will
    "RESERVE_RELEASE_AT": "23:00",
    # none: which definition a viewer starts on is the account's player setting (docs/ledger.md: the quota
    # policy), so each account names its own, e.g. 2
    "PRIORITY_BR_INDEXES": "",
    "BACKFILL_MAX_AGE_DAYS": "180",  # a 100,000-file catalogue at 1,000 spare units a day: 100 days
    "POLYV_PROXY_URL": "",  # none: direct
    "PREWARM_QUEUE_URL": "",  # the queue the function reads (it backs off handed-back messages)
    "DEAD_LETTER_QUEUE_URL": "",  # where it puts the messages no parser can read, at once
    "BISECTION_CALLS_PER_CHUNK": "16",  # one bad file among 100 takes 2*ceil(log2(100)) = 14
    "BISECTION_CALLS_PER_INVOCATION": "48",
    # empty: every account of the Polyv secret, each with DAILY_FILE_LIMIT and MANUAL_RESERVE;
    # else the accounts served, "userid[:dailyLimit[:manualReserve]]", comma-separated
    "POLYV_ACCOUNTS": "",
}

#: A Polyv userid: 10 characters [0-9a-z] (docs/polyv-api.md).
USERID_RE = re.compile(r"[0-9a-z]{10}")


class ConfigurationError(PrewarmError):
    """An environment variable is missing or invalid; the message names it."""


class AccountSetting(NamedTuple):
    """An account as POLYV_ACCOUNTS names it; a limit or reserve it leaves out is the deployment's."""

    userid: str
    daily_limit: int | None = None
    manual_reserve: int | None = None


class Settings(NamedTuple):
    secret_id: str
    quota_table: str
    api_url: str
    daily_limit: int
    timezone: ZoneInfo
    default_br_indexes: tuple[int, ...]
    vid_key_pattern: re.Pattern[str]
    secret_max_age: int
    retention_days: int
    polyv_attempts: int
    polyv_backoff_base: float
    polyv_connect_timeout: float
    polyv_read_timeout: float
    manual_reserve: int  # files a day only "priority": "high" requests may use
    backlog_max_age_days: int  # deferred files older than this expire
    drain_newest_first: bool
    reserve_released_at: time  # the reserve is everyone's from then on (and the late sweeps run)
    priority_br_indexes: frozenset[int]  # a video's main definitions: claimed first on a tight day
    backfill_max_age_days: int
    polyv_proxy_url: str | None  # an explicit proxy for Polyv's calls; none from the environment
    bisection_calls_per_chunk: int  # extra calls to isolate the files of a refused call (code-level)
    bisection_calls_per_run: int
    queue_url: str | None  # the prewarm queue; None outside Lambda (the CLI)
    dead_letter_url: str | None
    accounts: tuple[AccountSetting, ...]  # empty: every account of the secret
    reserve_is_default: bool  # MANUAL_RESERVE unset: each account keeps 5 % of its own limit

    def account_book(self, secret_userids: Iterable[str]) -> AccountBook:
        """The accounts served: POLYV_ACCOUNTS's, each in the secret (else a configuration error),
        or every account of the secret, each with the deployment's limit and reserve."""
        userids = list(secret_userids)
        home = userids[0] if userids else ""
        if not self.accounts:
            return AccountBook(
                (Account(u, self.daily_limit, self.manual_reserve) for u in userids), home=home
            )
        missing = [a.userid for a in self.accounts if a.userid not in userids]
        if missing:
            raise ConfigurationError(
                f"POLYV_ACCOUNTS names accounts the Polyv secret has no secretkey for: {missing}"
            )
        return AccountBook((self._account(a) for a in self.accounts), home=home)

    def for_account(self, account: Account) -> Settings:
        """These settings with the account's own limit and reserve (every other setting is the
        deployment's)."""
        return self._replace(daily_limit=account.daily_limit, manual_reserve=account.manual_reserve)

    def _account(self, setting: AccountSetting) -> Account:
        limit = setting.daily_limit or self.daily_limit
        if setting.manual_reserve is not None:
            reserve = setting.manual_reserve
        else:
            reserve = limit // 20 if self.reserve_is_default else self.manual_reserve
        if reserve >= limit:
            raise ConfigurationError(
                f"POLYV_ACCOUNTS: account {setting.userid!r}'s reserve ({reserve}) must be below "
                f"its limit ({limit})"
            )
        return Account(setting.userid, limit, reserve)

    @property
    def parse_options(self) -> ParseOptions:
        return ParseOptions(default_br_indexes=self.default_br_indexes, key_pattern=self.vid_key_pattern)

    @property
    def min_time_per_call(self) -> timedelta:
        """One more Polyv call needs room for all its attempts, each bounded by both timeouts."""
        return timedelta(seconds=self.polyv_attempts * (self.polyv_connect_timeout + self.polyv_read_timeout))

    def policy(self) -> Policy:
        return Policy(
            daily_limit=self.daily_limit,
            manual_reserve=self.manual_reserve,
            timezone=self.timezone,
            retention_days=self.retention_days,
            backlog_max_age=timedelta(days=self.backlog_max_age_days),
            drain_newest_first=self.drain_newest_first,
            min_time_per_call=self.min_time_per_call,
            bisection_calls_per_chunk=self.bisection_calls_per_chunk,
            bisection_calls_per_run=self.bisection_calls_per_run,
            reserve_released_at=self.reserve_released_at,
            priority_br_indexes=self.priority_br_indexes,
            backfill_max_age=timedelta(days=self.backfill_max_age_days),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        def value(name: str) -> str:
            return (env.get(name) or "").strip() or DEFAULTS[name]

        limit = _positive_int("DAILY_FILE_LIMIT", value("DAILY_FILE_LIMIT"))
        return cls(
            secret_id=_required(env, "POLYV_SECRET_ID"),
            quota_table=_required(env, "QUOTA_TABLE"),
            api_url=_api_url(value("POLYV_API_URL")),
            daily_limit=limit,
            timezone=_timezone(value("QUOTA_TIMEZONE")),
            default_br_indexes=_br_indexes(value("DEFAULT_BR_INDEXES")),
            vid_key_pattern=_key_pattern(value("VID_KEY_PATTERN")),
            secret_max_age=_positive_int("SECRET_MAX_AGE_SECONDS", value("SECRET_MAX_AGE_SECONDS")),
            retention_days=_positive_int("LEDGER_RETENTION_DAYS", value("LEDGER_RETENTION_DAYS")),
            polyv_attempts=_positive_int("POLYV_ATTEMPTS", value("POLYV_ATTEMPTS")),
            polyv_backoff_base=_seconds("POLYV_BACKOFF_BASE_SECONDS", value("POLYV_BACKOFF_BASE_SECONDS")),
            polyv_connect_timeout=_seconds(
                "POLYV_CONNECT_TIMEOUT_SECONDS", value("POLYV_CONNECT_TIMEOUT_SECONDS")
            ),
            polyv_read_timeout=_seconds("POLYV_READ_TIMEOUT_SECONDS", value("POLYV_READ_TIMEOUT_SECONDS")),
            manual_reserve=_reserve(value("MANUAL_RESERVE") or str(limit // 20), limit),
            backlog_max_age_days=_positive_int("BACKLOG_MAX_AGE_DAYS", value("BACKLOG_MAX_AGE_DAYS")),
            drain_newest_first=_drain_order(value("DRAIN_ORDER")),
            reserve_released_at=_local_time("RESERVE_RELEASE_AT", value("RESERVE_RELEASE_AT")),
            priority_br_indexes=_priority_br_indexes(value("PRIORITY_BR_INDEXES")),
            backfill_max_age_days=_positive_int("BACKFILL_MAX_AGE_DAYS", value("BACKFILL_MAX_AGE_DAYS")),
            polyv_proxy_url=_proxy_url(value("POLYV_PROXY_URL")),
            bisection_calls_per_chunk=_positive_int(
                "BISECTION_CALLS_PER_CHUNK", value("BISECTION_CALLS_PER_CHUNK")
            ),
            bisection_calls_per_run=_positive_int(
                "BISECTION_CALLS_PER_INVOCATION", value("BISECTION_CALLS_PER_INVOCATION")
            ),
            queue_url=value("PREWARM_QUEUE_URL") or None,
            dead_letter_url=value("DEAD_LETTER_QUEUE_URL") or None,
            accounts=_accounts(value("POLYV_ACCOUNTS")),
            reserve_is_default=not value("MANUAL_RESERVE"),
        )


class CallbackSettings(NamedTuple):
    """The callback endpoint's configuration (template.yaml: CallbackFunction)."""

    secret_id: str
    queue_url: str
    secret_max_age: int
    quota_table: str  # the record of received callbacks (CALLBACK# items)
    userids: tuple[str, ...] = ()  # POLYV_ACCOUNTS's; empty: every account of the secret

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CallbackSettings:
        def value(name: str) -> str:
            return (env.get(name) or "").strip() or DEFAULTS[name]

        return cls(
            secret_id=_required(env, "POLYV_SECRET_ID"),
            queue_url=_required(env, "PREWARM_QUEUE_URL"),
            quota_table=_required(env, "QUOTA_TABLE"),
            secret_max_age=_positive_int("SECRET_MAX_AGE_SECONDS", value("SECRET_MAX_AGE_SECONDS")),
            userids=tuple(a.userid for a in _accounts(value("POLYV_ACCOUNTS"))),
        )


def _accounts(raw: str) -> tuple[AccountSetting, ...]:
    """``userid[:dailyLimit[:manualReserve]]``, comma-separated; empty: every account of the secret."""
    accounts: list[AccountSetting] = []
    for entry in (part.strip() for part in raw.split(",") if part.strip()):
        userid, *numbers = [field.strip() for field in entry.split(":")]
        if not USERID_RE.fullmatch(userid) or len(numbers) > 2 or not all(n.isdigit() for n in numbers):
            raise ConfigurationError(
                "POLYV_ACCOUNTS must list userid[:dailyLimit[:manualReserve]], comma-separated, "
                f"got {entry[:60]!r}"
            )
        limit = int(numbers[0]) if numbers else None
        if limit == 0:
            raise ConfigurationError(f"POLYV_ACCOUNTS: account {userid!r}'s daily limit must be positive")
        reserve = int(numbers[1]) if len(numbers) == 2 else None
        if any(a.userid == userid for a in accounts):
            raise ConfigurationError(f"POLYV_ACCOUNTS lists account {userid!r} twice")
        accounts.append(AccountSetting(userid, limit, reserve))
    return tuple(accounts)


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"{name} is required")
    return value


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a positive integer, got {raw[:32]!r}") from None
    if value <= 0:
        raise ConfigurationError(f"{name} must be a positive integer, got {raw[:32]!r}")
    return value


def _reserve(raw: str, limit: int) -> int:
    """Unset: 5 % of the daily limit (100 of Polyv's 2000)."""
    if not raw.isdigit() or int(raw) >= limit:
        raise ConfigurationError(
            f"MANUAL_RESERVE must be a whole number below DAILY_FILE_LIMIT, got {raw[:32]!r}"
        )
    return int(raw)


def _drain_order(raw: str) -> bool:
    if raw not in ("newest", "oldest"):
        raise ConfigurationError(f"DRAIN_ORDER must be newest or oldest, got {raw[:32]!r}")
    return raw == "newest"


def _seconds(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, got {raw[:32]!r}") from None
    if not 0 <= value <= 900:
        raise ConfigurationError(f"{name} must be between 0 and 900 seconds, got {raw[:32]!r}")
    return value


def _api_url(url: str) -> str:
    """``https://`` always, except a loopback address (the local Polyv simulator).

    Read with urllib3's parser, the one requests connects with (``urllib.parse`` reads
    ``http://evil.example\\@127.0.0.1/`` as a loopback host with a user name; urllib3 and requests
    connect to ``evil.example``). A URL with user information, a backslash, whitespace or control
    characters is refused outright, and so is one that the two parsers read differently."""
    host = _url_host(url, "POLYV_API_URL")
    scheme = parse_url(url).scheme
    if scheme == "https" or (scheme == "http" and _is_loopback(host)):
        return url
    raise ConfigurationError(
        f"POLYV_API_URL must be an https:// URL (http:// only for loopback), got {url[:200]!r}"
    )


def _proxy_url(raw: str) -> str | None:
    """An explicit proxy for the Polyv calls (the client trusts no proxy from the environment)."""
    if not raw:
        return None
    _url_host(raw, "POLYV_PROXY_URL")
    if parse_url(raw).scheme not in ("http", "https"):
        raise ConfigurationError(f"POLYV_PROXY_URL must be an http:// or https:// URL, got {raw[:200]!r}")
    return raw


def _url_host(url: str, name: str) -> str:
    """The host requests would connect to; refuses what could be read two ways."""
    if any(ch in url for ch in "\\@") or any(not ch.isprintable() or ch.isspace() for ch in url):
        raise ConfigurationError(f"{name} must not hold user information, backslashes or spaces")
    try:
        parts = parse_url(url)
    except LocationParseError:
        raise ConfigurationError(f"{name} is not a URL: {url[:200]!r}") from None
    host = (parts.host or "").strip("[]")
    if not host or parts.auth is not None or host != (urlsplit(url).hostname or ""):
        raise ConfigurationError(f"{name} must be a plain URL with a host, got {url[:200]!r}")
    return host


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"QUOTA_TIMEZONE is not a known IANA time zone: {name!r}") from None


def _br_indexes(raw: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in raw.split(","))
    except ValueError:
        raise ConfigurationError(f"DEFAULT_BR_INDEXES must be a comma list of 1, 2, 3, got {raw!r}") from None
    if not values or any(v not in BR_INDEXES for v in values):
        raise ConfigurationError(f"DEFAULT_BR_INDEXES must be a comma list of 1, 2, 3, got {raw!r}")
    return tuple(dict.fromkeys(values))


def _priority_br_indexes(raw: str) -> frozenset[int]:
    text = raw.strip()
    if text.lower() in ("", "none"):
        return frozenset()
    try:
        values = frozenset(int(part) for part in text.split(","))
    except ValueError:
        values = frozenset({0})
    if not values <= set(BR_INDEXES):
        raise ConfigurationError(
            f"PRIORITY_BR_INDEXES must be a comma list of 1, 2, 3, or empty, got {raw!r}"
        )
    return values


def _local_time(name: str, raw: str) -> time:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", raw.strip())
    if match is None:
        raise ConfigurationError(f"{name} must be a time of day HH:MM (in QUOTA_TIMEZONE), got {raw!r}")
    return time(int(match.group(1)), int(match.group(2)))


def _key_pattern(raw: str) -> re.Pattern[str]:
    try:
        pattern = re.compile(raw)
    except re.error as exc:
        raise ConfigurationError(f"VID_KEY_PATTERN is not a valid regex: {exc}") from None
    if "vid" not in pattern.groupindex:
        raise ConfigurationError("VID_KEY_PATTERN must have a named group (?P<vid>...)")
    return pattern
