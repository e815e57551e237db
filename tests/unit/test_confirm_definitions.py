"""A TranscodeComplete's definitions, from Polyv's video information (logic/confirm_definitions.py)
over the fake Polyv, and through the handler: what is requested, as what, and within its bounds."""

from __future__ import annotations

from datetime import timedelta

import pytest

from polyv_prewarm import handler
from polyv_prewarm.domain.model import DefinitionsLookup, FileRef, Origin
from polyv_prewarm.domain.policy import Deadline
from polyv_prewarm.lambda_context import LocalLambdaContext
from polyv_prewarm.logic.confirm_definitions import MAX_LOOKUPS, NONE_LISTED
from tests.helpers import World, sqs_event, vid

ORIGIN = Origin("sqs", message_id="m")
FOREIGN = "1b448be3231111222233334444555566_1"


def lookup(v: str, *hint: object) -> DefinitionsLookup:
    return DefinitionsLookup(v, tuple(hint), ORIGIN)


# case -> (the lookup, Polyv's state: missing definitions / unknown / down,
#          the requests (vid, brIndex, explicit), ignored?, Polyv asked?)
CASES = {
    "Polyv lists all three": (lookup(vid(1), 1), {}, [(vid(1), br, True) for br in (1, 2, 3)], False, True),
    "Polyv lists fewer than the hint": (
        lookup(vid(1), 1, 2, 3),
        {"missing": {FileRef(vid(1), 3)}},
        [(vid(1), 1, True), (vid(1), 2, True)],
        False,
        True,
    ),
    "Polyv lists none": (
        lookup(vid(1), 1),
        {"missing": {FileRef(vid(1), br) for br in (1, 2, 3)}},
        [],
        True,
        True,
    ),
    "Polyv down: the hint, not explicit": (
        lookup(vid(1), 2),
        {"down": True},
        [(vid(1), 2, False)],
        False,
        True,
    ),
    "Polyv down, no hint: the defaults": (
        lookup(vid(1)),
        {"down": True},
        [(vid(1), br, False) for br in (1, 2, 3)],
        False,
        True,
    ),
    "Polyv refuses the vid": (lookup(vid(1), 1), {"unknown": {vid(1)}}, [(vid(1), 1, False)], False, True),
    "another account's vid: not asked": (lookup(FOREIGN, 1), {}, [(FOREIGN, 1, False)], False, False),
    "not a vid: not asked": (lookup("../x", 1), {}, [("../x", 1, False)], False, False),
}


@pytest.mark.parametrize(("one", "polyv", "requests", "ignored", "asked"), CASES.values(), ids=CASES.keys())
def test_what_is_requested(one, polyv, requests, ignored, asked):
    world = World()
    world.polyv.missing = set(polyv.get("missing", ()))
    world.polyv.unknown = set(polyv.get("unknown", ()))
    world.polyv.lookup_fails = polyv.get("down", False)
    confirmed = world.confirm.confirm([one], deadline=Deadline.default(world.clock()))
    assert [(r.vid, r.br_index, r.explicit) for r in confirmed.requests] == requests
    assert all(r.origin == ORIGIN for r in confirmed.requests)
    assert confirmed.ignored == ([(one, NONE_LISTED)] if ignored else [])
    assert world.polyv.lookups == ([one.vid] if asked else [])


def test_one_failed_lookup_ends_the_lookups_of_the_invocation():
    world = World()
    world.polyv.lookup_fails = True
    confirmed = world.confirm.confirm(
        [lookup(vid(i), 1) for i in range(10)], deadline=Deadline.default(world.clock())
    )
    assert world.polyv.lookups == [vid(0)]  # an outage costs one timeout, not one per video
    assert confirmed.fell_back == 10
    assert len(confirmed.requests) == 10


def test_lookups_are_bounded_in_number_and_by_the_deadline():
    world = World()
    many = [lookup(vid(i), 1) for i in range(MAX_LOOKUPS + 5)]
    confirmed = world.confirm.confirm(many, deadline=Deadline.default(world.clock()))
    assert len(world.polyv.lookups) == MAX_LOOKUPS
    assert (confirmed.asked, confirmed.fell_back) == (MAX_LOOKUPS, 5)
    world.polyv.lookups.clear()
    near = Deadline(world.clock() + world.settings.policy().min_time_per_call + timedelta(seconds=1))
    assert world.confirm.confirm([lookup(vid(1), 1)], deadline=near).fell_back == 1
    assert world.polyv.lookups == []  # the time is the prewarm call's


def test_an_sqs_batch_with_a_transcode_complete_prewarms_what_polyv_lists(monkeypatch):
    world = World(limit=20, MANUAL_RESERVE="0")
    world.serve_the_handler(monkeypatch)
    world.polyv.missing = {FileRef(vid(1), 3)}
    event = sqs_event(
        {"vid": vid(1), "brIndexes": [1, 2, 3], "askPolyv": True, "via": "polyv-callback:TranscodeComplete"},
        {"vid": vid(2), "brIndex": 1},
        ids=["tc", "plain"],
    )
    assert handler.lambda_handler(event, LocalLambdaContext()) == {"batchItemFailures": []}
    assert sorted(world.polyv.accepted_files()) == [(vid(1), 1), (vid(1), 2), (vid(2), 1)]
    assert world.polyv.lookups == [vid(1)]
    assert len(world.polyv.calls) == 1  # no call refused for a definition Polyv did not list
