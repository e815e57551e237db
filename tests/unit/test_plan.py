import math

import pytest

from polyv_prewarm.domain.model import Fate, FileRef, FileRequest, Origin
from polyv_prewarm.domain.plan import (
    MAX_FILES_PER_CALL,
    InvalidFile,
    build_plan,
    chunk,
    validate_br_index,
    validate_vid,
)

USERID = "e6b23c6f51"
ORIGIN = Origin("direct")


def vid(i: int, userid: str = USERID) -> str:
    return f"{userid}{i:022x}_e"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "must be a string"),
        (42, "must be a string"),
        ("", "shape"),
        ("e6b23c6f513fbe025b94efdd10d7ab47", "shape"),  # no suffix
        ("E6B23C6F513FBE025B94EFDD10D7AB47_E", "shape"),  # uppercase
        ("e6b23c6f513fbe025b94efdd10d7ab47_ee", "shape"),
        ("e6b23c6f513fbe025b94efdd10d7ab4_e", "shape"),  # 31 chars
        ("e6b23c6f513fbe025b94efdd10d7ab47-e", "shape"),
        ("1b448be3231111222233334444555566_1", "another Polyv account"),
    ],
)
def test_invalid_vids_are_rejected_with_reason(value, reason):
    with pytest.raises(InvalidFile, match=reason):
        validate_vid(value, USERID)


def test_valid_vid_of_the_account():
    assert validate_vid("e6b23c6f513fbe025b94efdd10d7ab47_e", USERID) == "e6b23c6f513fbe025b94efdd10d7ab47_e"


@pytest.mark.parametrize("value", [1, 2, 3, "1", " 3 "])
def test_valid_br_indexes(value):
    assert validate_br_index(value) == int(str(value).strip())


@pytest.mark.parametrize("value", [0, 4, -1, True, False, None, "x", 1.5, [1], "12"])
def test_invalid_br_indexes(value):
    with pytest.raises(InvalidFile, match="brIndex"):
        validate_br_index(value)


def test_plan_dedups_keeps_first_and_reports_each_request():
    a = FileRequest(vid(1), 1, Origin("sqs", message_id="m1"))
    dup = FileRequest(vid(1), "1", Origin("sqs", message_id="m2"))
    other_br = FileRequest(vid(1), 2, Origin("sqs", message_id="m2"))
    bad = FileRequest("nope", 1, Origin("sqs", message_id="m3"))
    plan = build_plan([a, dup, other_br, bad], USERID)
    assert [c.file for c in plan.unique] == [FileRef(vid(1), 1), FileRef(vid(1), 2)]
    assert plan.unique[0].request is a
    fates = {(r.request.origin.message_id, r.fate) for r in plan.decided}
    assert fates == {("m2", Fate.DUPLICATE), ("m3", Fate.REJECTED)}


@pytest.mark.parametrize("n", [0, 1, 99, 100, 101, 250, 2000])
def test_chunks_are_minimal_and_never_over_100(n):
    plan = build_plan([FileRequest(vid(i), 1, ORIGIN) for i in range(n)], USERID)
    chunks = plan.chunks()
    assert len(chunks) == math.ceil(n / MAX_FILES_PER_CALL)
    assert all(1 <= len(c) <= MAX_FILES_PER_CALL for c in chunks)
    assert [c.file for group in chunks for c in group] == [FileRef(vid(i), 1) for i in range(n)]


def test_chunk_size_is_bounded_by_polyv_limit():
    with pytest.raises(ValueError, match="chunk size"):
        chunk([], 101)


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@given(anything, anything)
def test_fuzzed_requests_are_accepted_or_rejected_with_reason(vid_value, br_value):
    plan = build_plan([FileRequest(vid_value, br_value, ORIGIN)], USERID)
    assert len(plan.unique) + len(plan.decided) == 1
    if plan.decided:
        assert plan.decided[0].fate is Fate.REJECTED
        assert plan.decided[0].reason
