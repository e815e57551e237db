"""HTTP client for Polyv's ``refresh-cdn-cache`` API, and its ``get-video-msg`` (which
definitions a video has), as docs/polyv-api.md reads them."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any, NamedTuple

import requests
from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError
from urllib3.util.retry import Retry

from .. import SERVICE
from ..domain.model import BR_INDEXES, FileRef, ListedVideo
from ..domain.plan import MAX_FILES_PER_CALL, VID_RE
from ..domain.ports import (
    PolyvConfigurationError,
    PolyvContractViolation,
    PolyvFilesRefused,
    PolyvQuotaSpent,
    PolyvUnavailable,
)
from ..telemetry import count_by, metrics, per_call_metrics_enabled, record_account
from ..tracing import tracer
from .credentials import CredentialsError, CredentialsSource
from .signing import sign, signed_form

logger = Logger(service=SERVICE, child=True)


def _count_error(message: str, userid: str) -> None:
    """PolyvErrors, dimension ``message`` (Polyv's own message, or the transport fault), and by
    ``account``: the userid the call was signed with."""
    count_by("PolyvErrors", 1, "message", message)
    record_account(userid, {"PolyvErrors": 1})


# Polyv's error messages, verbatim (typos included).
PTIME_TOO_OLD = "ptime is too old"
SIGN_NOT_RIGHT = "the sign is not right."
ILLEGAL_VID = "illeagal vid"
BITRATE_MISSING = "bitrate does not exist"
TOO_MANY_FILES = "can't submit more than 100 files"
DAILY_LIMIT = "can't submit more than 2000 files one day"


class RetryPolicy(NamedTuple):
    """How one call is tried: the first four come from ``config.Settings`` (POLYV_*, built in
    ``runtime``), the rest are this client's rules."""

    attempts: int  # signed attempts per call (each with a fresh ptime and sign)
    backoff_base: float  # seconds; full jitter: sleep U(0, min(cap, base * 2**n))
    connect_timeout: float
    read_timeout: float
    backoff_cap: float = 8.0
    connect_retries: int = 2  # urllib3: re-sends before any byte reached Polyv
    ptime_retries: int = 1  # re-signed retries after 'ptime is too old'

    def backoff(self, retry: int, rng: Callable[[], float] = random.random) -> float:
        return float(rng() * min(self.backoff_cap, self.backoff_base * (2**retry)))


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request certainly did not reach Polyv (it cannot have been accepted)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, NewConnectionError):
            return True
        reason = getattr(cause, "reason", None)
        cause = reason if isinstance(reason, BaseException) else cause.__cause__ or cause.__context__
    return False


def build_session(policy: RetryPolicy, *, proxy_url: str | None = None) -> requests.Session:
    """A session whose urllib3 ``Retry`` handles connection failures only, that trusts nothing
    from its environment, and follows no redirect.

    Connect errors happen before the request is sent, so re-sending the same signed body a
    moment later is safe. Everything after sending (5xx, bad bodies, ``ptime is too old``)
    is retried by :meth:`PolyvClient.push` itself, because every attempt that reaches Polyv
    needs a fresh ``ptime`` and therefore a fresh signature, which ``Retry`` cannot produce.

    ``trust_env = False``: no ``HTTPS_PROXY``, ``REQUESTS_CA_BUNDLE`` or ``~/.netrc`` from the
    machine decides where the signed form goes or whom to trust; a proxy is used only when
    ``proxy_url`` (POLYV_PROXY_URL) names one. Redirects: ``Retry(redirect=0)`` configures urllib3
    only, so every call also passes ``allow_redirects=False`` to requests (see :meth:`PolyvClient._post`).
    """
    retry = Retry(
        total=policy.connect_retries,
        connect=policy.connect_retries,
        read=0,
        status=0,
        other=0,
        redirect=0,
        backoff_factor=policy.backoff_base,
        raise_on_status=False,
    )
    session = requests.Session()
    session.trust_env = False
    if proxy_url:
        session.proxies = {"https": proxy_url, "http": proxy_url}
    session.mount("https://", HTTPAdapter(max_retries=retry))
    session.mount("http://", HTTPAdapter(max_retries=retry))
    return session


#: Polyv's answers are a few hundred bytes; a bigger one is not Polyv's JSON, and is not read on.
MAX_ANSWER_BYTES = 64 * 1024


class PolyvClient:
    """Submits prewarm calls. Raises the errors of :mod:`polyv_prewarm.domain.ports` on failure."""

    def __init__(
        self,
        api_url: str,
        credentials: CredentialsSource,
        *,
        policy: RetryPolicy,
        session: requests.Session | None = None,
        proxy_url: str | None = None,
        now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._url = api_url
        self._credentials = credentials
        self._policy = policy
        self._session = session or build_session(self._policy, proxy_url=proxy_url)
        self._now_ms = now_ms
        self._sleep = sleep

    def userid(self) -> str:
        return self._credentials.get().userid

    def definitions(self, vid: str) -> frozenset[int]:
        """The definitions (brIndexes) Polyv's ``get-video-msg`` says ``vid`` has: those with a file
        size and a play URL. One signed GET (no prewarm quota), re-signed once with a freshly read
        secret after "the sign is not right"; any other failure raises :class:`PolyvUnavailable`
        at once (the caller falls back: this is a refinement, never worth a wait)."""
        status, answer = self._read(
            "get-video-msg", lambda u: f"video/{u}/get-video-msg", {"vid": vid, "format": "json"}
        )
        return _video_definitions(status, answer, vid)

    def new_videos(
        self, *, page: int, per_page: int, start_date: str | None = None, end_date: str | None = None
    ) -> list[ListedVideo]:
        """One page (from 1) of ``get-new-list``: the account's videos by upload time, newest
        first, uploaded from ``start_date`` to ``end_date`` (``yyyy-MM-dd``, both optional,
        inclusive). Entries without a vid of the account's shape are left out (docs/polyv-api.md:
        the field is ``vid`` or ``videoId``). Raises :class:`PolyvUnavailable` when Polyv cannot
        say (no prewarm quota is at stake: the caller tries again later)."""
        params = {"catatree": "1", "numPerPage": str(per_page), "pageNum": str(page)}
        params |= {k: v for k, v in (("startDate", start_date), ("endDate", end_date)) if v}
        status, answer = self._read("get-new-list", lambda u: f"video/{u}/get-new-list", params)
        return [video for entry in _listed(status, answer, "get-new-list") if (video := _listed_video(entry))]

    def ranked(self, *, days: int) -> list[tuple[str, int]]:
        """``ranklist``'s videos of the last ``days`` days, most played first: (vid, plays)."""
        status, answer = self._read("ranklist", lambda u: f"videoview/{u}/ranklist", {"dr": f"{days}days"})
        ranked = []
        for entry in _listed(status, answer, "ranklist"):
            vid, plays = entry.get("vid", entry.get("videoId")), entry.get("times", 0)
            if isinstance(vid, str) and VID_RE.fullmatch(vid) and isinstance(plays, int):
                ranked.append((vid, plays))
        return ranked

    def _read(
        self, api: str, path: Callable[[str], str], params: dict[str, str]
    ) -> tuple[int, dict[str, Any] | None]:
        """One signed GET of a read API (no prewarm quota: get-video-msg, get-new-list, ranklist)
        under ``https://<Polyv>/v2/<path(userid)>``, re-signed once with a freshly read secret
        after "the sign is not right"; its status and JSON envelope. Any other failure raises
        :class:`PolyvUnavailable` at once: a read is never worth a wait."""
        base = self._url.rsplit("/", 2)[0]  # https://api.polyv.net/v2
        for refresh in (False, True):
            try:
                creds = self._credentials.get(refresh=refresh)
            except CredentialsError as exc:
                raise PolyvUnavailable(
                    f"cannot read the Polyv secret: {exc}", ambiguous=False, secret=True
                ) from None
            query = {**params, "ptime": str(self._now_ms())}
            query["sign"] = sign(query, creds.secretkey)
            try:
                status, body = self._send("GET", f"{base}/{path(creds.userid)}", params=query)
            except requests.RequestException as exc:
                raise PolyvUnavailable(f"{api}: {type(exc).__name__}", ambiguous=False) from None
            answer = _json_answer(body)
            if answer is not None and answer.get("message") == SIGN_NOT_RIGHT:
                continue  # a rotated secret: read it again and sign again, once
            return status, answer
        raise PolyvConfigurationError("Polyv rejects the signature even with a freshly read secret")

    def push(self, files: Sequence[FileRef]) -> str:
        """One call, traced as a subsegment. Not ``tracer.capture_method``: that logs a traceback
        at ERROR for every exception, and a refused call (``illeagal vid``) is an answer, not an
        error: a bisection would log dozens of them."""
        with tracer.provider.in_subsegment(name="## PolyvClient.push"):
            return self._push(files)

    def _push(self, files: Sequence[FileRef]) -> str:
        if not 1 <= len(files) <= MAX_FILES_PER_CALL:
            raise ValueError(f"a call carries 1..{MAX_FILES_PER_CALL} files, not {len(files)}")
        policy = self._policy
        refreshed_secret = refresh_now = False
        faults = 0  # transient faults so far; each retry after one backs off
        ptime_retries = 0
        attempt = 0
        while True:
            attempt += 1
            outcome = self._attempt(files, attempt, refresh_secret=refresh_now)
            refresh_now = False  # once: later attempts use the (now fresh) cached secret
            if outcome.task_id is not None:
                return outcome.task_id
            if outcome.again is _Again.RESIGN:
                if refreshed_secret:
                    raise PolyvConfigurationError(
                        "Polyv rejects the signature even with a freshly read secret: "
                        "check the userid and secretkey in the Polyv secret"
                    )
                refreshed_secret = refresh_now = True  # it may have been rotated while we were warm
                continue
            if outcome.again is _Again.RETIME:
                ptime_retries += 1
                if ptime_retries > policy.ptime_retries:
                    raise PolyvUnavailable(
                        "Polyv keeps answering 'ptime is too old': is the clock right?", ambiguous=False
                    )
                continue  # a fresh ptime is all it needs: no back-off
            faults += 1
            if faults >= policy.attempts:
                raise outcome.fault or PolyvUnavailable("Polyv unavailable", ambiguous=False)
            self._sleep(policy.backoff(faults - 1))

    def _attempt(self, files: Sequence[FileRef], attempt: int, *, refresh_secret: bool) -> _Attempt:
        """One signed POST. Returns Polyv's taskId or what to do next; raises the final errors."""
        try:
            creds = self._credentials.get(refresh=refresh_secret)
        except CredentialsError as exc:  # nothing was sent: the work can safely be handed back
            raise PolyvUnavailable(
                f"cannot read the Polyv secret: {exc}", ambiguous=False, secret=True
            ) from None
        form = signed_form(
            userid=creds.userid, secretkey=creds.secretkey, files=files, ptime_ms=self._now_ms()
        )
        started = time.perf_counter()
        try:
            status, body = self._post(form)
        except requests.RequestException as exc:
            _count_error(type(exc).__name__, creds.userid)
            if not _never_sent(exc):
                # It may have been accepted: retrying would risk a second, uncounted submission.
                raise PolyvUnavailable(
                    f"no answer from Polyv after sending: {type(exc).__name__}", ambiguous=True
                ) from None
            logger.warning("Polyv unreachable", extra={"attempt": attempt, "error": type(exc).__name__})
            return _Attempt.transient(f"cannot connect to Polyv: {type(exc).__name__}")
        answer = _json_answer(body)
        _observe(
            status, answer, files, attempt, creds.userid, latency_ms=(time.perf_counter() - started) * 1000
        )
        return _interpret(status, answer, len(files))

    def _post(self, form: dict[str, str]) -> tuple[int, bytes | None]:
        """POST the signed form; the answer's status and body (None: over MAX_ANSWER_BYTES, not
        read on). No redirect is followed: a 3xx is an answer like any other (its meaning is
        unknown, see :func:`_interpret`), so the signed form never goes anywhere but ``api_url``."""
        return self._send("POST", self._url, data=form)

    def _send(
        self,
        method: str,
        url: str,
        *,
        data: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, bytes | None]:
        response = self._session.request(
            method,
            url,
            data=data,
            params=params,
            timeout=(self._policy.connect_timeout, self._policy.read_timeout),
            allow_redirects=False,
            stream=True,
        )
        with response:
            size, chunks = 0, []
            for chunk in response.iter_content(chunk_size=16 * 1024):
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    return response.status_code, None
                chunks.append(chunk)
            return response.status_code, b"".join(chunks)


class _Again(Enum):
    """An answer that asks for another attempt at once, without back-off."""

    RESIGN = "re-read the secret and sign again"  # the sign is not right: maybe a rotated secret
    RETIME = "sign again with a fresh ptime"  # ptime is too old


class _Attempt(NamedTuple):
    """What one signed POST came to, unless it ended the call with an exception."""

    task_id: str | None = None  # Polyv accepted the call
    again: _Again | None = None  # try again at once
    fault: PolyvUnavailable | None = None  # a transient fault: try again after a back-off

    @classmethod
    def transient(cls, message: str) -> _Attempt:
        return cls(fault=PolyvUnavailable(message, ambiguous=False))


def _observe(
    status: int,
    answer: dict[str, Any] | None,
    files: Sequence[FileRef],
    attempt: int,
    userid: str,
    *,
    latency_ms: float,
) -> None:
    """PolyvLatency, PolyvErrors by message, and a debug line per answer."""
    if per_call_metrics_enabled():
        metrics.add_metric(name="PolyvLatency", unit=MetricUnit.Milliseconds, value=round(latency_ms, 1))
    message = str(answer.get("message", "")) if answer else None
    if message != "success":
        _count_error(message or f"HTTP {status}", userid)
    logger.debug(
        "Polyv answered",
        extra={
            "attempt": attempt,
            "http_status": status,
            "files": len(files),
            "latency_ms": round(latency_ms, 1),
            "polyv_message": message,
        },
    )


def _interpret(status: int, answer: dict[str, Any] | None, files: int) -> _Attempt:
    """Polyv's answer to one attempt (see docs/polyv-api.md); raises the answers that end the call."""
    if 300 <= status < 400:
        # Polyv's API does not redirect; whatever answered so is not Polyv accepting the call.
        # Not followed (the signed form goes nowhere else) and in doubt: it may stand for anything.
        logger.warning("Polyv's URL answered a redirect: not followed", extra={"http_status": status})
        raise PolyvUnavailable(
            f"Polyv answered a redirect (HTTP {status}): not followed", ambiguous=True, answered=True
        )
    if answer is None:
        if status in NOT_PROCESSED or status >= 500:
            # A server error or a gateway's refusal: nothing was processed, nothing spent.
            return _Attempt.transient(f"Polyv answered HTTP {status}")
        # Any other answer whose meaning is unknown may stand for an accepted call.
        raise PolyvUnavailable(
            f"Polyv answered HTTP {status} with a body that is not its JSON", ambiguous=True, answered=True
        )
    if _says_success(answer):
        task_id = _task_id(answer)
        if task_id is None:
            raise PolyvUnavailable("Polyv answered success without a taskId", ambiguous=True, answered=True)
        return _Attempt(task_id=task_id)
    if answer.get("status") != "error":
        code = str(answer.get("code"))[:16]
        raise PolyvUnavailable(
            f"Polyv answered an envelope of unknown meaning (code {code})", ambiguous=True, answered=True
        )
    message = str(answer.get("message", ""))
    if message in _AGAIN:
        return _Attempt(again=_AGAIN[message])
    if message in (ILLEGAL_VID, BITRATE_MISSING):
        # A bitrate that does not exist yet may exist once its transcoding finishes.
        raise PolyvFilesRefused(message, for_now=message == BITRATE_MISSING)
    if message == DAILY_LIMIT:
        raise PolyvQuotaSpent(message)
    if message == TOO_MANY_FILES:
        raise PolyvContractViolation(f"Polyv says {message!r} for a call of {files} files")
    if status >= 500 or status == 429:
        return _Attempt.transient(f"Polyv answered HTTP {status}")
    # An error we do not know: Polyv refused the call, but for no reason we can act on. Hand the
    # work back; the drain parks a file after it drew such answers in several drains.
    raise PolyvUnavailable(f"Polyv refused the call: {message[:200]!r}", ambiguous=False, refused=True)


_AGAIN = {PTIME_TOO_OLD: _Again.RETIME, SIGN_NOT_RIGHT: _Again.RESIGN}


def _video_definitions(status: int, answer: dict[str, Any] | None, vid: str) -> frozenset[int]:
    """get-video-msg's answer: ``data`` a list of one video whose ``filesize`` (one per
    definition) and play URLs (``hls_N``, ``mp4_N``, or an ``hls`` list) say which exist. Anything
    else (an error envelope, another vid, no such fields) raises :class:`PolyvUnavailable`: the
    caller then asks Polyv nothing of it and queues the hint as ordinary requests."""
    if answer is None or not _says_success(answer):
        message = str(answer.get("message", ""))[:80] if answer else f"HTTP {status}"
        raise PolyvUnavailable(f"get-video-msg: {message!r}", ambiguous=False, refused=answer is not None)
    data = answer.get("data")
    video = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else data
    if not isinstance(video, dict) or video.get("vid", vid) != vid:
        raise PolyvUnavailable("get-video-msg: no information about the vid", ambiguous=False)
    sizes = video.get("filesize")
    if not isinstance(sizes, list):
        raise PolyvUnavailable("get-video-msg: no filesize list", ambiguous=False)
    return frozenset(br for br, size in zip(BR_INDEXES, sizes, strict=False) if _exists(video, br, size))


def _listed(status: int, answer: dict[str, Any] | None, api: str) -> list[dict[str, Any]]:
    """A listing's entries (``data``, a list), the objects among them; anything but a success
    envelope raises :class:`PolyvUnavailable`."""
    if answer is None or not _says_success(answer):
        message = str(answer.get("message", ""))[:80] if answer else f"HTTP {status}"
        raise PolyvUnavailable(f"{api}: {message!r}", ambiguous=False, refused=answer is not None)
    data = answer.get("data")
    if not isinstance(data, list):
        raise PolyvUnavailable(f"{api}: no list of videos", ambiguous=False)
    return [entry for entry in data if isinstance(entry, dict)]


def _listed_video(entry: dict[str, Any]) -> ListedVideo | None:
    """One get-new-list entry, or None when it has no vid of Polyv's shape (then it is absent)."""
    vid = entry.get("vid", entry.get("videoId"))
    if not isinstance(vid, str) or not VID_RE.fullmatch(vid):
        return None

    def number(name: str) -> int:
        value = entry.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    uploaded = entry.get("uploadTime")
    return ListedVideo(
        vid,
        definitions=number("df"),
        status=number("status"),
        uploaded=uploaded if isinstance(uploaded, str) else "",
        plays=number("times"),
    )


def _exists(video: dict[str, Any], br: int, size: object) -> bool:
    """A definition exists when it has a file size and a play URL."""
    if not isinstance(size, int | float) or isinstance(size, bool) or size <= 0:
        return False
    listed = video.get("hls")
    urls = [video.get(f"hls_{br}"), video.get(f"mp4_{br}")]
    if isinstance(listed, list) and len(listed) >= br:
        urls.append(listed[br - 1])
    return any(isinstance(url, str) and url for url in urls)


def _json_answer(body: bytes | None) -> dict[str, Any] | None:
    """Polyv's JSON envelope, or None for anything else (HTML, a truncated or oversized body)."""
    if body is None:
        return None
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(answer, dict) or "code" not in answer:
        return None
    return answer


#: HTTP statuses that say the request was not processed (rate limit, gateway, unavailable), and
#: every 5xx: safe to retry, and their quota given back. Any other answer without Polyv's JSON (a
#: 200 with an HTML body) is in doubt.
NOT_PROCESSED = frozenset({429, 502, 503, 504})


def _says_success(answer: dict[str, Any]) -> bool:
    return answer.get("code") == 200 or answer.get("status") == "success"


def _task_id(answer: dict[str, Any]) -> str | None:
    data = answer.get("data")
    task_id = data.get("taskId") if isinstance(data, dict) else None
    return task_id if isinstance(task_id, str) and task_id else None
