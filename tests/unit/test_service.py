import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from polyv_prewarm.model import Fate, FileRef, FileRequest, Origin
from polyv_prewarm.ports import (
    PolyvConfigurationError,
    PolyvContractViolation,
    PolyvQuotaSpent,
    PolyvUnavailable,
)
from polyv_prewarm.service import PrewarmService
from tests.fakes import FakePolyv, InMemoryQuota, vid

TZ = ZoneInfo("Asia/Shanghai")
# 2026-11-27 17:00 UTC is already 2026-11-28 in Shanghai.
NOW = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
DAY = "2026-11-28"


def requests_for(n, br=1, origin=None, start=0):
    return [FileRequest(vid(start + i), br, origin or Origin("direct")) for i in range(n)]


def make(limit=2000, polyv=None, quota=None):
    polyv = polyv or FakePolyv()
    quota = quota or InMemoryQuota()
    service = PrewarmService(
        polyv=polyv, quota=quota, daily_limit=limit, timezone=TZ, clock=lambda: NOW, sleep=lambda _: None
    )
    return service, polyv, quota


def test_quota_day_is_in_the_configured_time_zone():
    service, _, quota = make()
    report = service.prewarm(requests_for(3))
    assert quota.counts == {DAY: 3}
    assert report.quota.day == DAY
    assert report.quota.used == 3


@pytest.mark.parametrize("n", [1, 99, 100, 101, 250])
def test_calls_are_the_physical_minimum(n):
    service, polyv, _ = make()
    report = service.prewarm(requests_for(n))
    assert len(polyv.calls) == math.ceil(n / 100)
    assert report.count(Fate.SUBMITTED) == n
    assert {r.task_id for r in report.results} == {f"task-{i + 1}" for i in range(len(polyv.calls))}


def test_sends_exactly_what_fits_and_reports_the_rest_over_quota():
    service, polyv, quota = make(limit=150)
    report = service.prewarm(requests_for(250))
    assert [len(c) for c in polyv.accepted] == [100, 50]
    assert report.count(Fate.SUBMITTED) == 150
    assert report.count(Fate.OVER_QUOTA) == 100
    assert quota.counts[DAY] == 150
    # the next invocation of the same day sends nothing
    again = service.prewarm(requests_for(5, start=1000))
    assert again.count(Fate.OVER_QUOTA) == 5
    assert len(polyv.calls) == 2


def test_duplicates_across_messages_are_sent_once_and_reported():
    service, polyv, _ = make()
    reqs = requests_for(2, origin=Origin("sqs", message_id="a")) + requests_for(
        2, origin=Origin("sqs", message_id="b")
    )
    report = service.prewarm(reqs)
    assert sum(len(c) for c in polyv.accepted) == 2
    assert report.count(Fate.DUPLICATE) == 2
    assert report.messages_to_retry() == set()


def test_one_bad_vid_among_100_is_isolated_by_bisection():
    bad = vid(37)
    service, polyv, quota = make(polyv=FakePolyv(unknown={bad}))
    report = service.prewarm(requests_for(100))
    rejected = [r for r in report.results if r.fate is Fate.REJECTED]
    assert [(r.file.vid, r.reason) for r in rejected] == [(bad, "illeagal vid")]
    assert report.count(Fate.SUBMITTED) == 99
    assert len(polyv.calls) - 1 <= 2 * math.ceil(math.log2(100))
    assert quota.counts[DAY] == 99  # the refused file's quota went back


def test_mixed_refusals_each_get_polyvs_reason():
    missing = FileRef(vid(5), 1)
    service, _, quota = make(polyv=FakePolyv(unknown={vid(2)}, missing={missing}))
    report = service.prewarm(requests_for(8))
    reasons = {r.file.vid: r.reason for r in report.results if r.fate is Fate.REJECTED}
    assert reasons == {vid(2): "illeagal vid", vid(5): "bitrate does not exist"}
    assert report.count(Fate.SUBMITTED) == 6
    assert quota.counts[DAY] == 6


def test_polyv_unavailable_hands_back_and_releases_quota():
    polyv = FakePolyv()
    polyv.fail_with = [PolyvUnavailable("HTTP 503", ambiguous=False)]
    service, _, quota = make(polyv=polyv)
    origin = Origin("sqs", message_id="m1")
    report = service.prewarm(requests_for(150, origin=origin))
    assert report.count(Fate.RETRY) == 150  # the first call failed; the second was not tried
    assert len(polyv.calls) == 1
    assert quota.counts[DAY] == 0
    assert report.messages_to_retry() == {"m1"}


def test_ambiguous_failure_keeps_its_quota_counted():
    polyv = FakePolyv()
    polyv.fail_with = [PolyvUnavailable("ReadTimeout", ambiguous=True)] * 2
    service, _, quota = make(polyv=polyv)
    report = service.prewarm(requests_for(40))
    assert len(polyv.calls) == 2  # one re-send, after counting the 40 files again
    assert report.count(Fate.RETRY) == 40
    assert quota.counts[DAY] == 80  # both attempts may have been accepted: over-count, never under-count


def test_ambiguous_failure_then_success_counts_both_attempts():
    polyv = FakePolyv()
    polyv.fail_with = [PolyvUnavailable("ReadTimeout", ambiguous=True)]
    service, _, quota = make(polyv=polyv)
    report = service.prewarm(requests_for(40))
    assert report.count(Fate.SUBMITTED) == 40
    assert quota.counts[DAY] == 80


def test_ambiguous_failure_is_not_resent_without_quota_for_it():
    polyv = FakePolyv()
    polyv.fail_with = [PolyvUnavailable("ReadTimeout", ambiguous=True)]
    service, _, quota = make(polyv=polyv, limit=50)
    report = service.prewarm(requests_for(40))
    assert len(polyv.calls) == 1  # 40 more would not fit in 50
    assert report.count(Fate.RETRY) == 40
    assert quota.counts[DAY] == 40


def test_polyv_quota_spent_marks_the_day_exhausted():
    polyv = FakePolyv()
    polyv.fail_with = [PolyvQuotaSpent("can't submit more than 2000 files one day")]
    service, _, quota = make(polyv=polyv, limit=2000)
    report = service.prewarm(requests_for(120))
    assert report.count(Fate.OVER_QUOTA) == 120
    assert DAY in quota.exhausted
    assert quota.counts[DAY] == 2000
    assert len(polyv.calls) == 1


def test_configuration_error_stops_all_calls():
    polyv = FakePolyv()
    polyv.fail_with = [PolyvConfigurationError("wrong secret")]
    service, _, quota = make(polyv=polyv)
    report = service.prewarm(requests_for(250))
    assert len(polyv.calls) == 1
    assert report.count(Fate.RETRY) == 250
    assert "configuration error" in report.stopped_because
    assert quota.counts[DAY] == 0


def test_contract_violation_fails_loudly_after_releasing_its_quota():
    polyv = FakePolyv()
    polyv.fail_with = [PolyvContractViolation("too many")]
    service, _, quota = make(polyv=polyv)
    with pytest.raises(PolyvContractViolation):
        service.prewarm(requests_for(3))
    assert quota.counts[DAY] == 0


def test_quota_store_down_sends_nothing():
    quota = InMemoryQuota()
    quota.unavailable = True
    service, polyv, _ = make(quota=quota)
    report = service.prewarm(requests_for(10, origin=Origin("sqs", message_id="m")))
    assert polyv.calls == []
    assert report.count(Fate.RETRY) == 10
    assert report.quota is None


def test_deadline_stops_new_calls_and_hands_back_the_rest():
    service, polyv, _ = make()
    budget = iter([60_000, 1_000])
    report = service.prewarm(requests_for(200), time_left_ms=lambda: next(budget))
    assert len(polyv.calls) == 1
    assert report.count(Fate.SUBMITTED) == 100
    assert report.count(Fate.RETRY) == 100
    assert "time" in report.stopped_because


def test_dry_run_plans_without_calls_or_quota():
    service, polyv, quota = make()
    report = service.prewarm(requests_for(101), dry_run=True)
    assert polyv.calls == []
    assert quota.counts == {}
    assert report.count(Fate.PLANNED) == 101
    assert sorted({r.call for r in report.results}) == [1, 2]


def test_every_request_gets_exactly_one_result():
    service, _, _ = make(limit=120, polyv=FakePolyv(unknown={vid(3)}))
    reqs = requests_for(150) + requests_for(10) + [FileRequest("bad", 1, Origin("direct"))]
    report = service.prewarm(reqs)
    assert len(report.results) == len(reqs)
    assert sorted(map(id, (r.request for r in report.results))) == sorted(map(id, reqs))
