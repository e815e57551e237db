"""Configuration from environment variables, validated in one place at start-up."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from .domain.model import BR_INDEXES
from .domain.ports import PrewarmError
from .events import DEFAULT_VID_KEY_PATTERN, ParseOptions
from .logic.sender import BISECTION_CALLS_PER_CHUNK, BISECTION_CALLS_PER_RUN

DEFAULT_API_URL = "https://api.polyv.net/v2/video/refresh-cdn-cache"


class ConfigurationError(PrewarmError):
    """An environment variable is missing or invalid; the message names it."""


class Settings(NamedTuple):
    secret_id: str
    quota_table: str
    api_url: str
    daily_limit: int
    timezone: ZoneInfo
    default_br_indexes: tuple[int, ...]
    vid_key_pattern: re.Pattern[str]
    secret_max_age: int
    retention_days: int = 35
    polyv_attempts: int = 3
    polyv_backoff_base: float = 0.5
    polyv_connect_timeout: float = 3.05
    polyv_read_timeout: float = 10.0
    manual_reserve: int = 100  # files a day only "priority": "high" requests may use (5 % of 2000)
    backlog_max_age_days: int = 7  # deferred files older than this expire
    drain_newest_first: bool = True
    polyv_proxy_url: str | None = None  # an explicit proxy for Polyv's calls; none from the environment
    # extra calls to isolate the files of a refused call: per chunk, per invocation (code-level)
    bisection_calls: tuple[int, int] = (BISECTION_CALLS_PER_CHUNK, BISECTION_CALLS_PER_RUN)

    @property
    def parse_options(self) -> ParseOptions:
        return ParseOptions(default_br_indexes=self.default_br_indexes, key_pattern=self.vid_key_pattern)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            secret_id=_required(env, "POLYV_SECRET_ID"),
            quota_table=_required(env, "QUOTA_TABLE"),
            api_url=_api_url(env.get("POLYV_API_URL") or DEFAULT_API_URL),
            daily_limit=_positive_int(env, "DAILY_FILE_LIMIT", 2000),
            timezone=_timezone(env.get("QUOTA_TIMEZONE") or "Asia/Shanghai"),
            default_br_indexes=_br_indexes(env.get("DEFAULT_BR_INDEXES") or "1,2,3"),
            vid_key_pattern=_key_pattern(env.get("VID_KEY_PATTERN") or DEFAULT_VID_KEY_PATTERN),
            secret_max_age=_positive_int(env, "SECRET_MAX_AGE_SECONDS", 300),
            retention_days=_positive_int(env, "LEDGER_RETENTION_DAYS", 35),
            polyv_attempts=_positive_int(env, "POLYV_ATTEMPTS", 3),
            polyv_backoff_base=_seconds(env, "POLYV_BACKOFF_BASE_SECONDS", 0.5),
            polyv_connect_timeout=_seconds(env, "POLYV_CONNECT_TIMEOUT_SECONDS", 3.05),
            polyv_read_timeout=_seconds(env, "POLYV_READ_TIMEOUT_SECONDS", 10.0),
            manual_reserve=_reserve(env),
            backlog_max_age_days=_positive_int(env, "BACKLOG_MAX_AGE_DAYS", 7),
            drain_newest_first=_drain_order(env.get("DRAIN_ORDER") or "newest"),
            polyv_proxy_url=_proxy_url(env.get("POLYV_PROXY_URL", "").strip()),
            bisection_calls=(
                _positive_int(env, "BISECTION_CALLS_PER_CHUNK", BISECTION_CALLS_PER_CHUNK),
                _positive_int(env, "BISECTION_CALLS_PER_INVOCATION", BISECTION_CALLS_PER_RUN),
            ),
        )


class CallbackSettings(NamedTuple):
    """The callback endpoint's configuration (template.yaml: CallbackFunction)."""

    secret_id: str
    queue_url: str
    secret_max_age: int = 300

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CallbackSettings:
        return cls(
            secret_id=_required(env, "POLYV_SECRET_ID"),
            queue_url=_required(env, "PREWARM_QUEUE_URL"),
            secret_max_age=_positive_int(env, "SECRET_MAX_AGE_SECONDS", 300),
        )


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"{name} is required")
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name) or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a positive integer, got {raw!r}") from None
    if value <= 0:
        raise ConfigurationError(f"{name} must be a positive integer, got {raw!r}")
    return value


def _reserve(env: Mapping[str, str]) -> int:
    """Unset: 5 % of the daily limit (100 of Polyv's 2000)."""
    limit = _positive_int(env, "DAILY_FILE_LIMIT", 2000)
    raw = env.get("MANUAL_RESERVE") or str(limit // 20)
    if not raw.isdigit() or int(raw) >= limit:
        raise ConfigurationError(f"MANUAL_RESERVE must be a whole number below DAILY_FILE_LIMIT, got {raw!r}")
    return int(raw)


def _drain_order(raw: str) -> bool:
    if raw not in ("newest", "oldest"):
        raise ConfigurationError(f"DRAIN_ORDER must be newest or oldest, got {raw[:32]!r}")
    return raw == "newest"


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name) or str(default)
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0 <= value <= 900:
        raise ConfigurationError(f"{name} must be between 0 and 900 seconds, got {raw!r}")
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


def _key_pattern(raw: str) -> re.Pattern[str]:
    try:
        pattern = re.compile(raw)
    except re.error as exc:
        raise ConfigurationError(f"VID_KEY_PATTERN is not a valid regex: {exc}") from None
    if "vid" not in pattern.groupindex:
        raise ConfigurationError("VID_KEY_PATTERN must have a named group (?P<vid>...)")
    return pattern
