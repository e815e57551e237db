"""A Polyv ``refresh-cdn-cache`` simulator: a real HTTP server on loopback that enforces the
documented contract (docs/polyv-api.md) and answers with Polyv's documented bodies, verbatim.

It checks, in this order: POST to the path, form body, all parameters present, ``ptime`` within
±3 minutes, ``sign``, ``action=push`` / ``fileType=zip``, ``videos`` JSON, at most 100 files,
every vid known and of the posting account (its userid is the vid's prefix; else ``illeagal
vid``), every bitrate existing (``bitrate does not exist``), and the account's daily limit (its
own, or the simulator's) in the configured time zone (accepted files only are counted). Several
accounts may be served, each with its secretkey and its count of the day.

Answers Polyv does not document (missing parameter, bad ``videos`` JSON, wrong ``action``) use
the same envelope with a message of this simulator's own, marked ``[simulator]``.

Fault injection (for tests of the client's error handling): :meth:`PolyvSimulator.inject`
queues faults that the next requests meet, in order: HTTP 5xx answers, 200 answers whose body
is not JSON, slow answers, connections reset without an answer, and any documented error;
:meth:`PolyvSimulator.spend` uses up quota as another client of the same account would.

It also serves ``get-video-msg`` (``GET /v2/video/{userid}/get-video-msg``, signed by the same
SHA-1 rule over every parameter it is sent, ``ptime`` checked): a known video's ``df``, ``status``
60, and one ``filesize`` and play URLs per definition it has (0 and empty for the others). And
``get-new-list`` (``GET /v2/video/{userid}/get-new-list``: the account's videos by upload time,
newest first, ``numPerPage`` a page, ``pageNum`` from 1, optional ``startDate``/``endDate``
``yyyy-MM-dd`` in the configured time zone, inclusive; each entry ``vid``, ``df``, ``status``,
``uploadTime``, ``times``) and ``ranklist`` (``GET /v2/videoview/{userid}/ranklist``: the account's
videos with plays, most played first), both signed and ``ptime``-checked the same way.

Run it by hand: ``python -m devstack.polyv_simulator --port 8900 --account USERID:SECRETKEY[:LIMIT]
--video VID:1,2,3``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

from .loopback_http import LoopbackHandler, ServerThread, threaded_server

PATH = "/v2/video/refresh-cdn-cache"
VIDEO_MSG = re.compile(r"/v2/video/(?P<userid>[0-9a-z]{1,32})/get-video-msg")
NEW_LIST = re.compile(r"/v2/video/(?P<userid>[0-9a-z]{1,32})/get-new-list")
RANKLIST = re.compile(r"/v2/videoview/(?P<userid>[0-9a-z]{1,32})/ranklist")
#: The read APIs: signed GETs that cost no prewarm quota (answers() records the prewarm calls only).
READ_APIS = (VIDEO_MSG, NEW_LIST, RANKLIST)
MAX_PER_PAGE = 100  # get-new-list's numPerPage above this is answered as this (an assumption)
REQUIRED = ("userid", "ptime", "sign", "action", "fileType", "videos")

PTIME_TOO_OLD = "ptime is too old"
SIGN_NOT_RIGHT = "the sign is not right."
ILLEGAL_VID = "illeagal vid"
TOO_MANY_FILES = "can't submit more than 100 files"
BITRATE_MISSING = "bitrate does not exist"
DAILY_LIMIT = "can't submit more than 2000 files one day"


def expected_sign(params: dict[str, str], secretkey: str) -> str:
    """The signing rule, implemented independently of the product's own code on purpose."""
    plain = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")
    return hashlib.sha1((plain + secretkey).encode("utf-8")).hexdigest().upper()


def callback_sign(*parts: str) -> str:
    """Polyv's callback sign: the lowercase MD5 hex of the parts joined, the secretkey last (its
    own implementation, apart from the product's, like :func:`expected_sign`)."""
    return hashlib.md5("".join(parts).encode("utf-8"), usedforsecurity=False).hexdigest()


class Callback(NamedTuple):
    """One notification Polyv sends to an account's callback URL."""

    kind: str
    method: str
    query: str
    body: bytes = b""

    @property
    def content_type(self) -> str:
        return "application/json" if self.body else ""


def callback(kind: str, vid: str, secretkey: str, **fields: Any) -> Callback:
    """A notification signed as Polyv signs it (docs/polyv-api.md, "Polyv's callback notifications"):
    ``encode``/``encode_failed`` (``format``, ``df``), ``TranscodeComplete`` (``videoInfos``),
    ``upload``/``invalidVideo`` (``state``), ``pass``/``nopass``, ``DeleteMediaComplete``."""
    if kind in ("encode", "encode_failed"):
        fmt, df = str(fields.get("format", "mp4")), str(fields["df"])
        sign = callback_sign(kind, fmt, vid, df, secretkey)
        return Callback(
            kind, "GET", urlencode({"type": kind, "format": fmt, "vid": vid, "df": df, "sign": sign})
        )
    if kind in ("upload", "invalidVideo"):
        sign = callback_sign("upload", vid, secretkey)
        query = {"type": kind, "vid": vid, "state": str(fields.get("state", "")), "sign": sign}
        return Callback(kind, "GET", urlencode(query))
    if kind in ("pass", "nopass"):
        sign = callback_sign("manage", kind, vid, secretkey)
        return Callback(kind, "GET", urlencode({"type": kind, "vid": vid, "sign": sign}))
    if kind == "TranscodeComplete":
        infos = fields.get("videoInfos", [])
        status = "success" if any(i.get("status") == "success" for i in infos) else "fail"
        body = {"eventType": kind, "status": status, "vid": vid, "videoInfos": infos}
        sign = callback_sign(kind, vid, secretkey)
        return Callback(kind, "POST", urlencode({"sign": sign}), json.dumps(body).encode())
    if kind == "DeleteMediaComplete":
        body = {"eventType": kind, "vids": vid, "operator": "simulator", "status": "success"}
        return Callback(
            kind, "POST", urlencode({"sign": callback_sign(kind, secretkey)}), json.dumps(body).encode()
        )
    raise ValueError(f"no such callback kind: {kind}")


def deliver(url: str, notification: Callback, timeout: float = 30.0) -> int:
    """Send one notification to a callback URL (loopback only); its HTTP status."""
    if urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the simulator calls back loopback URLs only")
    request = urllib.request.Request(
        f"{url}?{notification.query}",
        data=notification.body or None,
        method=notification.method,
        headers={"Content-Type": notification.content_type} if notification.body else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # loopback only (above)
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def error(message: str) -> tuple[int, dict[str, Any]]:
    return 400, {"code": 400, "status": "error", "message": message, "data": None}


FAULT_KINDS = (
    "http_error",
    "non_json",
    "slow",
    "reset",
    "error",
    "blackhole",
    "no_task_id",
    "redirect",
    "oversized",
)


@dataclass
class Fault:
    """What the next ``count`` requests meet instead of (or on top of) the normal contract.

    * ``http_error``: answer HTTP ``status`` (default 503) with an HTML body; nothing processed
    * ``non_json``: answer HTTP 200 with an HTML body; processed first if ``process``
    * ``slow``: wait ``delay`` seconds, then answer normally (processed first if ``process``)
    * ``reset``: close the connection without answering; processed first if ``process``
    * ``error``: answer the documented error ``message``; nothing processed
    * ``blackhole``: the request is lost on its way: nothing processed, no answer; the connection
      is held ``delay`` seconds, then closed
    * ``no_task_id``: processed, then answered 200 ``success`` without ``data.taskId``
    * ``redirect``: answer HTTP ``status`` (301, 302, 303, 307, 308) with ``Location: location``;
      nothing processed (a hijacked DNS name or a misconfigured gateway would answer so)
    * ``oversized``: processed if ``process``, then answered 200 with a JSON body of ``size`` bytes

    A task processed under a fault is marked ``faulted``: its caller could not know the outcome.
    """

    kind: str
    count: int = 1
    status: int = 503
    delay: float = 0.0
    process: bool = False
    message: str = ""
    location: str = ""
    size: int = 0


@dataclass(frozen=True)
class Task:
    task_id: str
    userid: str
    files: tuple[tuple[str, int], ...]
    day: str
    faulted: bool = False  # processed under a fault: the caller never got a clear answer
    at: float = 0.0  # when it was accepted, on the simulator's clock (Unix seconds)


@dataclass(frozen=True)
class Window:
    """A stretch of the simulator's time in which every request is answered ``status`` (an
    outage: nothing processed), or answered normally ``delay`` seconds late (slow)."""

    start: float
    end: float
    status: int | None = 503
    delay: float = 0.0


@dataclass
class Account:
    secretkey: str
    daily_limit: int | None = None  # its own limit; None: the simulator's (every account alike)


@dataclass
class Upload:
    """What get-new-list and ranklist say of a video: when it was uploaded (Unix seconds, the
    simulator's clock), its status (60 published) and its plays."""

    at: float
    status: int = 60
    plays: int = 0


@dataclass
class SimulatorState:
    accounts: dict[str, Account] = field(default_factory=dict)
    videos: dict[str, frozenset[int]] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)  # every video's, since add_video
    listings: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)  # (userid, API, params)
    tasks: list[Task] = field(default_factory=list)
    used: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    answers: list[str] = field(default_factory=list)  # the message of every answer, in order
    faults: list[Fault] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    requests: list[float] = field(default_factory=list)  # when each POST came, on the clock
    lookups: list[str] = field(default_factory=list)  # the vid of every get-video-msg answered
    #: every prewarm call that reached the simulator with its files readable: (when, files, what
    #: became of it: "accepted", Polyv's refusal, or "[fault] <kind>" / "[outage] HTTP <status>")
    asked: list[tuple[float, tuple[tuple[str, int], ...], str]] = field(default_factory=list)


class PolyvSimulator:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        daily_limit: int = 2000,
        ptime_window_ms: int = 180_000,
        timezone: str = "Asia/Shanghai",
        clock: Callable[[], float] = time.time,
        latency: float = 0.0,
    ) -> None:
        self.daily_limit = daily_limit
        self.latency = latency  # seconds added to every answer: a modeled network round trip
        self.ptime_window_ms = ptime_window_ms
        self.tz = ZoneInfo(timezone)
        self.clock = clock
        self.state = SimulatorState()
        self.video_msg_down = False  # get-video-msg answers HTTP 503 (the prewarm API does not)
        self.listing_down = False  # get-new-list and ranklist answer HTTP 503
        self._lock = threading.Lock()
        self._http = ServerThread(threaded_server(self._handler_class(), host, port), "polyv-simulator")

    # -- set-up -------------------------------------------------------------------------------
    def add_account(self, userid: str, secretkey: str, *, daily_limit: int | None = None) -> None:
        """An account (a userid of its own: a main account, or a group's 分帐号) with its secretkey
        and, if given, a daily limit of its own (Polyv's is 2000 files per account and day)."""
        with self._lock:
            self.state.accounts[userid] = Account(secretkey, daily_limit)

    def add_video(
        self,
        vid: str,
        br_indexes: Iterable[int] = (1, 2, 3),
        *,
        uploaded_at: float | None = None,
        status: int | None = None,
        plays: int | None = None,
    ) -> None:
        """A video Polyv has, with its definitions; uploaded now (the simulator's clock) unless
        ``uploaded_at`` says otherwise, published (status 60) unless ``status`` does. Adding it
        again changes what is given and keeps the rest."""
        with self._lock:
            self.state.videos[vid] = frozenset(br_indexes)
            upload = self.state.uploads.setdefault(vid, Upload(at=self.clock()))
            if uploaded_at is not None:
                upload.at = uploaded_at
            if status is not None:
                upload.status = status
            if plays is not None:
                upload.plays = plays

    def listings(self, api: str | None = None) -> list[tuple[str, dict[str, str]]]:
        """(userid, parameters) of every get-new-list or ranklist request answered with a list
        (``api``: ``"get-new-list"`` or ``"ranklist"`` only)."""
        with self._lock:
            return [(u, params) for u, name, params in self.state.listings if api in (None, name)]

    def inject(self, kind: str, count: int = 1, **options: Any) -> None:
        """Queue a fault for the next ``count`` requests (see :class:`Fault`)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}")
        with self._lock:
            self.state.faults.append(Fault(kind, count, **options))

    def transcode(
        self,
        userid: str,
        vid: str,
        definitions: Iterable[int] = (1, 2, 3),
        *,
        failed: Iterable[int] = (),
        callback_url: str,
        fmt: str = "mp4",
    ) -> list[tuple[Callback, int]]:
        """An upload that Polyv transcodes: the video then has ``definitions`` (which it can
        prewarm), and Polyv calls ``callback_url`` as it does: the upload, one ``encode`` per
        definition done (``encode_failed`` per one that failed), then ``TranscodeComplete``, all
        signed with the account's secretkey. Returns each notification with the answer's status."""
        done, lost = list(definitions), list(failed)
        self.add_video(vid, done)
        with self._lock:
            secretkey = self.state.accounts[userid].secretkey
        sent = [callback("upload", vid, secretkey, state="simulator-upload")]
        sent += [callback("encode", vid, secretkey, format=fmt, df=df) for df in done]
        sent += [callback("encode_failed", vid, secretkey, format=fmt, df=df) for df in lost]
        infos = [{"status": "success", "format": fmt, "df": df, "bitrate": 400 * df} for df in done]
        infos += [{"status": "fail", "format": fmt, "df": df, "bitrate": 400 * df} for df in lost]
        sent.append(callback("TranscodeComplete", vid, secretkey, videoInfos=infos))
        return [(notification, deliver(callback_url, notification)) for notification in sent]

    def outage(self, start: float, end: float, *, status: int = 503) -> None:
        """Answer every request in [start, end) (the simulator's clock) with ``status``."""
        with self._lock:
            self.state.windows.append(Window(start, end, status))

    def slow(self, start: float, end: float, *, delay: float) -> None:
        """Answer every request in [start, end) ``delay`` seconds late (processed)."""
        with self._lock:
            self.state.windows.append(Window(start, end, None, delay))

    def _window(self) -> Window | None:
        now = self.clock()
        with self._lock:
            return next((w for w in self.state.windows if w.start <= now < w.end), None)

    def requests_at(self) -> list[float]:
        with self._lock:
            return list(self.state.requests)

    def spend(self, userid: str, files: int, day: str | None = None) -> None:
        """Use ``files`` of the account's quota, as another client of the same account would."""
        with self._lock:
            self.state.used[(userid, day or self.today())] += files

    def _next_fault(self) -> Fault | None:
        with self._lock:
            if not self.state.faults:
                return None
            fault = self.state.faults[0]
            fault.count -= 1
            if fault.count <= 0:
                self.state.faults.pop(0)
            return fault

    def reset(self, *, daily_limit: int | None = None) -> None:
        """Forget tasks, counts and faults (accounts and videos stay; the list of new videos
        starts empty: a video added again is uploaded again, then)."""
        with self._lock:
            self.state.uploads.clear()
            self.state.tasks.clear()
            self.state.used.clear()
            self.state.answers.clear()
            self.state.faults.clear()
            self.state.windows.clear()
            self.state.requests.clear()
            self.state.lookups.clear()
            self.state.listings.clear()
            self.state.asked.clear()
            self.video_msg_down = False
            self.listing_down = False
            if daily_limit is not None:
                self.daily_limit = daily_limit

    # -- observation --------------------------------------------------------------------------
    def today(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).astimezone(self.tz).date().isoformat()

    def used(self, userid: str, day: str | None = None) -> int:
        with self._lock:
            return self.state.used.get((userid, day or self.today()), 0)

    def accepted_files(self) -> list[tuple[str, int]]:
        with self._lock:
            return [f for task in self.state.tasks for f in task.files]

    def tasks(self) -> list[Task]:
        with self._lock:
            return list(self.state.tasks)

    def answers(self) -> list[str]:
        with self._lock:
            return list(self.state.answers)

    def asked(self) -> list[tuple[float, tuple[tuple[str, int], ...], str]]:
        """Every prewarm call's files and what became of them, in order (see SimulatorState.asked)."""
        with self._lock:
            return list(self.state.asked)

    def _note_asked(self, body: bytes, outcome: str) -> None:
        try:
            fields = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return
        files = self._files(fields.get("videos", [""])[-1])
        if files is not None:
            with self._lock:
                self.state.asked.append((self.clock(), tuple(files), outcome))

    def lookups(self) -> list[str]:
        """The vid of every get-video-msg this simulator answered with the video's information."""
        with self._lock:
            return list(self.state.lookups)

    # -- the API --------------------------------------------------------------------------------
    def handle(
        self, method: str, path: str, content_type: str, body: bytes, *, faulted: bool = False
    ) -> tuple[int, dict[str, Any]]:
        status, answer = self._decide(method, path, content_type, body, faulted=faulted)
        if not any(api.fullmatch(urlsplit(path).path) for api in READ_APIS):  # the prewarm calls only
            self._record(str(answer.get("message")))
            outcome = "accepted" if status == 200 else str(answer.get("message"))
            self._note_asked(body, f"{outcome} [faulted]" if faulted else outcome)
        return status, answer

    def _record(self, answer: str) -> None:
        with self._lock:
            self.state.answers.append(answer)

    def _decide(
        self, method: str, path: str, content_type: str, body: bytes, *, faulted: bool = False
    ) -> tuple[int, dict[str, Any]]:
        video_msg = VIDEO_MSG.fullmatch(urlsplit(path).path)
        if video_msg is not None:
            return self._video_msg(video_msg["userid"], urlsplit(path).query, method, body)
        for api, answer in ((NEW_LIST, self._new_list), (RANKLIST, self._ranklist)):
            listing = api.fullmatch(urlsplit(path).path)
            if listing is not None:
                if self.listing_down:
                    return 503, {"code": 503, "status": "error", "message": "[simulator] down", "data": None}
                if method != "GET":
                    return error("[simulator] GET only")
                return answer(listing["userid"], urlsplit(path).query)
        if urlsplit(path).path != PATH:
            return 404, {"code": 404, "status": "error", "message": "[simulator] not found", "data": None}
        if method != "POST":
            return 405, {"code": 405, "status": "error", "message": "[simulator] use POST", "data": None}
        if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
            return error("[simulator] body must be an application/x-www-form-urlencoded form")
        try:
            fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            return error("[simulator] body is not a valid form")
        params = {name: values[-1] for name, values in fields.items()}
        missing = [name for name in REQUIRED if not params.get(name)]
        if missing:
            return error(f"[simulator] missing parameter: {', '.join(missing)}")
        ptime = params["ptime"]
        now_ms = int(self.clock() * 1000)
        if not (ptime.isdigit() and len(ptime) == 13) or abs(now_ms - int(ptime)) > self.ptime_window_ms:
            return error(PTIME_TOO_OLD)
        with self._lock:
            account = self.state.accounts.get(params["userid"])
        if account is None or params["sign"] != expected_sign(params, account.secretkey):
            return error(SIGN_NOT_RIGHT)
        if params["action"] != "push" or params["fileType"] != "zip":
            return error("[simulator] only action=push with fileType=zip is supported")
        files = self._files(params["videos"])
        if files is None:
            return error("[simulator] videos must be a JSON array of {vid, brIndex}")
        if len(files) > 100:
            return error(TOO_MANY_FILES)
        with self._lock:
            # a vid is the account's own (its userid is the vid's prefix), or Polyv knows it not
            if any(vid not in self.state.videos or not vid.startswith(params["userid"]) for vid, _ in files):
                return error(ILLEGAL_VID)
            if any(br not in self.state.videos[vid] for vid, br in files):
                return error(BITRATE_MISSING)
            key = (params["userid"], self.today())
            limit = account.daily_limit if account.daily_limit is not None else self.daily_limit
            if self.state.used[key] + len(files) > limit:
                return error(DAILY_LIMIT)
            self.state.used[key] += len(files)
            task = Task(
                uuid.uuid4().hex, params["userid"], tuple(files), key[1], faulted=faulted, at=self.clock()
            )
            self.state.tasks.append(task)
        return 200, {"code": 200, "status": "success", "message": "success", "data": {"taskId": task.task_id}}

    def _video_msg(self, userid: str, query: str, method: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """get-video-msg: the parameters in the query string (GET) or a form (POST)."""
        if self.video_msg_down:
            return 503, {
                "code": 503,
                "status": "error",
                "message": "[simulator] get-video-msg down",
                "data": None,
            }
        raw = query if method == "GET" else body.decode("utf-8", "replace")
        params = self._signed(userid, raw, ("vid", "ptime", "sign"))
        if isinstance(params, tuple):
            return params
        with self._lock:
            vid = params["vid"]
            if not vid.startswith(userid) or vid not in self.state.videos:
                return error(ILLEGAL_VID)
            have = self.state.videos[vid]
            self.state.lookups.append(vid)
            upload = self.state.uploads.get(vid)
        video: dict[str, Any] = {"vid": vid, "df": len(have), "status": upload.status if upload else 60}
        video["filesize"] = [1_000_000 * br if br in have else 0 for br in (1, 2, 3)]
        for br in (1, 2, 3):
            video[f"hls_{br}"] = f"https://hls.videocc.net/{vid[:10]}/{vid}_{br}.m3u8" if br in have else ""
            video[f"mp4_{br}"] = f"https://mpv.videocc.net/{vid[:10]}/{vid}_{br}.mp4" if br in have else ""
        return 200, {"code": 200, "status": "success", "message": "", "data": [video]}

    def _signed(
        self, userid: str, raw: str, required: tuple[str, ...]
    ) -> dict[str, str] | tuple[int, dict[str, Any]]:
        """A read API's parameters, once present, ``ptime`` within the window and signed with the
        account's secretkey over every parameter sent; else Polyv's answer."""
        params = {name: values[-1] for name, values in parse_qs(raw, keep_blank_values=True).items()}
        missing = [name for name in required if not params.get(name)]
        if missing:
            return error(f"[simulator] missing parameter: {', '.join(missing)}")
        ptime = params["ptime"]
        if (
            not (ptime.isdigit() and len(ptime) == 13)
            or abs(int(self.clock() * 1000) - int(ptime)) > self.ptime_window_ms
        ):
            return error(PTIME_TOO_OLD)
        with self._lock:
            account = self.state.accounts.get(userid)
            if account is None or params["sign"] != expected_sign(params, account.secretkey):
                return error(SIGN_NOT_RIGHT)
        return params

    def _new_list(self, userid: str, query: str) -> tuple[int, dict[str, Any]]:
        """get-new-list: a page of the account's videos, newest upload first."""
        params = self._signed(userid, query, ("catatree", "numPerPage", "pageNum", "ptime", "sign"))
        if isinstance(params, tuple):
            return params
        try:
            per_page = min(MAX_PER_PAGE, max(1, int(params["numPerPage"])))
            page = max(1, int(params["pageNum"]))
        except ValueError:
            return error("[simulator] numPerPage and pageNum must be numbers")
        first, last = params.get("startDate") or "0000-00-00", params.get("endDate") or "9999-99-99"
        with self._lock:
            mine = [
                (vid, self.state.uploads[vid], self.state.videos[vid])
                for vid in self.state.videos
                if vid.startswith(userid) and vid in self.state.uploads
            ]
            self.state.listings.append((userid, "get-new-list", params))
        mine.sort(key=lambda video: (video[1].at, video[0]), reverse=True)
        dated = [(vid, up, brs, self._local(up.at)) for vid, up, brs in mine]
        chosen = [d for d in dated if first <= d[3][:10] <= last]
        entries = [
            {"vid": vid, "df": len(brs), "status": up.status, "uploadTime": local, "times": up.plays}
            for vid, up, brs, local in chosen[(page - 1) * per_page : page * per_page]
        ]
        return 200, {"code": 200, "status": "success", "message": "", "data": entries}

    def _ranklist(self, userid: str, query: str) -> tuple[int, dict[str, Any]]:
        """ranklist: the account's videos with plays, most played first."""
        params = self._signed(userid, query, ("dr", "ptime", "sign"))
        if isinstance(params, tuple):
            return params
        with self._lock:
            played = [
                (vid, up.plays)
                for vid, up in self.state.uploads.items()
                if vid.startswith(userid) and up.plays
            ]
            self.state.listings.append((userid, "ranklist", params))
        played.sort(key=lambda p: (-p[1], p[0]))
        data = [{"vid": vid, "times": plays} for vid, plays in played]
        return 200, {"code": 200, "status": "success", "message": "", "data": data}

    def _local(self, at: float) -> str:
        return datetime.fromtimestamp(at, UTC).astimezone(self.tz).strftime("%Y-%m-%d %H:%M:%S")

    @staticmethod
    def _files(videos: str) -> list[tuple[str, int]] | None:
        try:
            items = json.loads(videos)
        except ValueError:
            return None
        if not isinstance(items, list) or not items:
            return None
        files = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("vid"), str):
                return None
            br = item.get("brIndex")
            if isinstance(br, bool) or not isinstance(br, int):
                return None
            files.append((item["vid"], br))
        return files

    # -- the server -----------------------------------------------------------------------------
    def _handler_class(self) -> type[LoopbackHandler]:
        simulator = self

        class Handler(LoopbackHandler):
            def _serve(self) -> None:
                body = self.read_body()
                content_type = self.headers.get("Content-Type", "")
                if self.command == "POST":
                    with simulator._lock:
                        simulator.state.requests.append(simulator.clock())
                window = simulator._window()  # an outage answers every request, get-video-msg's too
                if window is not None and window.status is not None:
                    simulator._record(f"[outage] HTTP {window.status}")
                    simulator._note_asked(body, f"[outage] HTTP {window.status}")
                    self._send_raw(
                        window.status, b"<html><body>Service Unavailable</body></html>", "text/html"
                    )
                    return
                fault = simulator._next_fault() if self.command == "POST" else None
                if simulator.latency or window is not None:
                    time.sleep(simulator.latency + (window.delay if window is not None else 0.0))
                if fault is None:
                    self._send(*simulator.handle(self.command, self.path, content_type, body))
                    return
                if fault.kind not in ("slow", "no_task_id") and not fault.process:
                    simulator._note_asked(body, f"[fault] {fault.kind}")  # not processed
                if fault.kind == "error":
                    simulator._record(f"[fault] {fault.message}")
                    self._send(*error(fault.message))
                    return
                if fault.kind == "http_error":
                    simulator._record(f"[fault] HTTP {fault.status}")
                    self._send_raw(fault.status, b"<html><body>Bad Gateway</body></html>", "text/html")
                    return
                if fault.kind == "redirect":
                    simulator._record(f"[fault] redirect {fault.status}")
                    self.reply(fault.status, [("Location", fault.location)], b"")
                    return
                if fault.kind == "blackhole":
                    simulator._record("[fault] blackhole")
                    time.sleep(fault.delay)
                    self.drop()
                    return
                # slow, reset, non_json, no_task_id, oversized: Polyv may have done the work first
                if fault.process or fault.kind in ("slow", "no_task_id"):
                    status, answer = simulator.handle(
                        self.command, self.path, content_type, body, faulted=True
                    )
                else:
                    simulator._record(f"[fault] {fault.kind}")
                if fault.kind == "no_task_id":
                    if answer.get("data"):
                        answer = {**answer, "data": {}}
                    self._send(status, answer)
                    return
                if fault.kind == "oversized":
                    padding = "x" * max(0, fault.size)
                    payload = {"code": 200, "status": "success", "data": {"taskId": "t"}, "pad": padding}
                    self._send(200, payload)
                    return
                if fault.kind == "slow":
                    time.sleep(fault.delay)
                    self._send(status, answer)
                elif fault.kind == "reset":
                    self.drop()
                else:
                    self._send_raw(200, b"<html><body>upstream maintenance</body></html>", "text/html")

            def _send(self, status: int, answer: dict[str, Any]) -> None:
                payload = json.dumps(answer, ensure_ascii=False).encode("utf-8")
                self._send_raw(status, payload, "application/json;charset=UTF-8")

            def _send_raw(self, status: int, payload: bytes, content_type: str) -> None:
                self.reply(status, [("Content-Type", content_type)], payload)

            do_POST = _serve
            do_GET = _serve

        return Handler

    @property
    def url(self) -> str:
        return f"{self._http.origin}{PATH}"

    def start(self) -> PolyvSimulator:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Polyv refresh-cdn-cache simulator on loopback")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--daily-limit", type=int, default=2000)
    parser.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="USERID:SECRETKEY[:LIMIT]",
        help="an account, its limit",
    )
    parser.add_argument("--video", action="append", default=[], metavar="VID[:1,2,3]")
    args = parser.parse_args(argv)
    simulator = PolyvSimulator(port=args.port, daily_limit=args.daily_limit)
    for account in args.account:
        userid, _, rest = account.partition(":")
        secretkey, _, limit = rest.partition(":")
        simulator.add_account(userid, secretkey, daily_limit=int(limit) if limit else None)
    for video in args.video:
        vid, _, brs = video.partition(":")
        simulator.add_video(vid, [int(b) for b in brs.split(",")] if brs else (1, 2, 3))
    simulator.start()
    print(f"Polyv simulator listening on {simulator.url}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        simulator.stop()


if __name__ == "__main__":
    main()
