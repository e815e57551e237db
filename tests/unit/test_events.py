import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polyv_prewarm.domain.model import DefinitionsLookup, Origin
from polyv_prewarm.events import (
    EventKind,
    InvalidMessage,
    ParseOptions,
    UnsupportedEvent,
    classify,
    parse_body,
    parse_document,
)

EVENTS = Path(__file__).resolve().parents[2] / "events"
OPTS = ParseOptions()
ORIGIN = Origin("sqs", message_id="m-1")
V1 = "e6b23c6f513fbe025b94efdd10d7ab47_e"
V2 = "e6b23c6f51a1c2d3e4f5a6b7c8d9e0f1_e"


def files(parsed):
    return [(r.vid, r.br_index) for r in parsed.requests]


def s3_notification(key, name="ObjectCreated:Put"):
    return {"Records": [{"eventSource": "aws:s3", "eventName": name, "s3": {"object": {"key": key}}}]}


def test_pipeline_single_with_and_without_br():
    assert files(parse_body(json.dumps({"vid": V1, "brIndex": 2}), ORIGIN, OPTS)) == [(V1, 2)]
    assert files(parse_body(json.dumps({"vid": V1}), ORIGIN, OPTS)) == [(V1, 1), (V1, 2), (V1, 3)]


def test_pipeline_vids_with_br_indexes_and_defaults():
    body = {"vids": [V1, V2], "brIndexes": [1, 3]}
    assert files(parse_body(json.dumps(body), ORIGIN, OPTS)) == [(V1, 1), (V1, 3), (V2, 1), (V2, 3)]
    narrow = ParseOptions(default_br_indexes=(2,))
    assert files(parse_body(json.dumps({"vids": [V1]}), ORIGIN, narrow)) == [(V1, 2)]


def test_api_shape_videos():
    body = {"videos": [{"vid": V1, "brIndex": 1}, {"vid": V2, "brIndex": 3}]}
    parsed = parse_body(json.dumps(body), ORIGIN, OPTS)
    assert files(parsed) == [(V1, 1), (V2, 3)]
    assert all(r.origin == ORIGIN for r in parsed.requests)


def test_s3_notification_decodes_url_encoded_keys():
    key = "courses/%E8%AF%BE%E7%A8%8B+1%2F" + V1 + ".zip"
    parsed = parse_body(json.dumps(s3_notification(key)), ORIGIN, OPTS)
    assert files(parsed) == [(V1, 1), (V1, 2), (V1, 3)]
    assert parsed.requests[0].origin.s3_key == f"courses/课程 1/{V1}.zip"
    assert parsed.requests[0].origin.message_id == "m-1"


def test_key_pattern_with_br_group():
    opts = ParseOptions(key_pattern=re.compile(r"(?P<vid>[0-9a-z]{32}_[0-9a-z])/(?P<br>\d)\.zip$"))
    assert files(parse_body(json.dumps(s3_notification(f"out/{V1}/2.zip")), ORIGIN, opts)) == [(V1, "2")]


def test_s3_test_event_and_deletions_are_ignored_not_failed():
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}
    parsed = parse_body(json.dumps(test_event), ORIGIN, OPTS)
    assert parsed.requests == []
    assert "s3:TestEvent" in parsed.ignored[0].reason
    deleted = parse_body(json.dumps(s3_notification(f"{V1}.zip", "ObjectRemoved:Delete")), ORIGIN, OPTS)
    assert deleted.requests == []
    assert "not an object creation" in deleted.ignored[0].reason


def test_s3_key_without_vid_is_ignored_with_reason():
    parsed = parse_body(json.dumps(s3_notification("readme.txt")), ORIGIN, OPTS)
    assert parsed.requests == []
    assert "no vid" in parsed.ignored[0].reason


def test_sns_envelope_around_s3_notification():
    envelope = {"Type": "Notification", "Message": json.dumps(s3_notification(f"a/{V2}.zip"))}
    assert files(parse_body(json.dumps(envelope), ORIGIN, OPTS))[0] == (V2, 1)


def test_sns_message_that_is_not_json_says_what_to_publish():
    with pytest.raises(InvalidMessage, match="publish an S3 notification") as info:
        parse_body(json.dumps({"Type": "Notification", "Message": "vid"}), ORIGIN, OPTS)
    assert "raw message delivery" not in str(info.value)  # no hint that applies to neither path
    direct = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "hello"}}]}
    with pytest.raises(InvalidMessage, match="publish an S3 notification"):
        parse_document(direct, ORIGIN, OPTS)


OURS = ParseOptions(userids=("e6b23c6f51",))
FOREIGN = "0123456789abcdef0123456789abcdef_0"


def test_a_foreign_token_before_our_vid_is_passed_by_with_a_reason():
    parsed = parse_body(json.dumps(s3_notification(f"exports/{FOREIGN}/{V1}.zip")), ORIGIN, OURS)
    assert files(parsed) == [(V1, 1), (V1, 2), (V1, 3)]
    assert "another account" in parsed.notes[0].reason


def test_two_of_our_vids_in_one_key_are_both_taken_and_logged():
    parsed = parse_body(json.dumps(s3_notification(f"pairs/{V1}-{V2}.zip")), ORIGIN, OURS)
    assert {vid for vid, _ in files(parsed)} == {V1, V2}
    assert any("2 vids of the accounts served" in n.reason for n in parsed.notes)


def test_a_key_with_only_foreign_tokens_sends_nothing():
    parsed = parse_body(json.dumps(s3_notification(f"exports/{FOREIGN}.zip")), ORIGIN, OURS)
    assert parsed.requests == []
    assert "only vids of other accounts" in parsed.ignored[0].reason


@pytest.mark.parametrize(
    ("key", "size", "reason"),
    [
        (f"transcoded/{V1}/", 0, "folder marker"),
        (f"transcoded/{V1}/", None, "folder marker"),
        (f"transcoded/{V1}.zip", 0, "zero-byte"),
    ],
)
def test_folder_markers_and_empty_objects_are_ignored_with_a_reason(key, size, reason):
    notification = s3_notification(key)
    if size is not None:
        notification["Records"][0]["s3"]["object"]["size"] = size
    parsed = parse_body(json.dumps(notification), ORIGIN, OURS)
    assert parsed.requests == []
    assert reason in parsed.ignored[0].reason


def test_eventbridge_keys_are_not_url_decoded():
    key = f"a+b/{V1}%2B.zip"  # EventBridge sends the key as it is
    event = {
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {"object": {"key": key, "size": 9}},
    }
    parsed = parse_body(json.dumps(event), ORIGIN, OURS)
    assert parsed.requests[0].origin.s3_key == key


@pytest.mark.parametrize(
    ("body", "explicit"),
    [
        ({"vid": V1, "brIndex": 3}, True),
        ({"vid": V1}, False),
        ({"vids": [V1], "brIndexes": [3]}, True),
        ({"vids": [V1]}, False),
        ({"videos": [{"vid": V1, "brIndex": 3}]}, True),
        ({"videos": [{"vid": V1}]}, False),
        ({"vid": V1, "df": 3}, True),
    ],
)
def test_a_bitrate_the_event_names_is_explicit_a_default_is_not(body, explicit):
    parsed = parse_body(json.dumps(body), ORIGIN, OPTS)
    assert {r.explicit for r in parsed.requests} == {explicit}


def test_eventbridge_object_created():
    event = {"detail-type": "Object Created", "source": "aws.s3", "detail": {"object": {"key": f"{V1}.zip"}}}
    assert len(parse_body(json.dumps(event), ORIGIN, OPTS).requests) == 3
    other = {**event, "detail-type": "Object Deleted"}
    assert parse_body(json.dumps(other), ORIGIN, OPTS).ignored


def test_polyv_callback_query_string_and_json():
    assert files(parse_body(f"vid={V1}&df=2&type=encode&sign=ABC", ORIGIN, OPTS)) == [(V1, "2")]
    assert files(
        parse_body(json.dumps({"vid": V1, "df": 3, "type": "encode", "sign": "x"}), ORIGIN, OPTS)
    ) == [(V1, 3)]
    assert parse_body(f"vid={V1}&type=pass", ORIGIN, OPTS).ignored


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('"just a string"', "neither JSON"),
        ("hello", "neither JSON"),
        ('{"hello": 1}', "unknown message shape"),
        ('{"vids": "abc"}', "vids must be a list"),
        ('{"videos": {"vid": 1}}', "videos must be a list"),
        ('{"videos": [1]}', r"videos\[0\]"),
        ('{"vids": ["a"], "brIndexes": []}', "brIndexes"),
        ('{"Records": "x"}', "Records must be a list"),
        ('{"Records": [{"eventSource": "aws:s3"}]}', "s3.object.key"),
        ('{"Records": [{"eventSource": "aws:sqs"}]}', "not an S3 or SNS event record"),
        ('{"Records": [{"EventSource": "aws:sns"}]}', "no Sns object"),
        ('{"detail-type": "Object Created", "source": "aws.ec2"}', "not aws.s3"),
        ("df=2", "no vid"),
    ],
)
def test_malformed_messages_raise_typed_errors(body, error):
    with pytest.raises(InvalidMessage, match=error):
        parse_body(body, ORIGIN, OPTS)


def test_nesting_is_bounded():
    doc = {"vid": V1}
    for _ in range(6):
        doc = {"Type": "Notification", "Message": json.dumps(doc)}
    with pytest.raises(InvalidMessage, match="too deeply"):
        parse_document(doc, ORIGIN, OPTS)


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ({"Records": [{"eventSource": "aws:sqs"}]}, EventKind.SQS),
        ({"Records": [{"eventSource": "aws:s3"}]}, EventKind.S3),
        ({"Records": [{"EventSource": "aws:sns"}]}, EventKind.SNS),
        ({"detail-type": "Object Created", "source": "aws.s3"}, EventKind.EVENTBRIDGE),
        ({"videos": []}, EventKind.DIRECT),
        ({"vids": []}, EventKind.DIRECT),
    ],
)
def test_classify(event, kind):
    assert classify(event) is kind


@pytest.mark.parametrize(
    "event", [None, [], "x", {}, {"Records": []}, {"Records": [{"eventSource": "aws:kinesis"}]}, {"foo": 1}]
)
def test_unknown_events_get_a_typed_error(event):
    with pytest.raises(UnsupportedEvent):
        classify(event)


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda p: p.name)
def test_every_sample_event_is_classified(path):
    event = json.loads(path.read_text())
    kind = classify(event)
    assert (
        kind.value in path.name.split("-")[0]
        or (kind is EventKind.DIRECT and path.name.startswith("direct"))
        or (kind is EventKind.ACTION and path.name == "scheduled-drain.json")
    )  # DailyDrain's own input


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
shaped = st.fixed_dictionaries(
    {},
    optional={
        "vid": json_values,
        "vids": json_values,
        "videos": json_values,
        "brIndex": json_values,
        "brIndexes": json_values,
        "df": json_values,
        "type": json_values,
        "Records": json_values,
        "Event": json_values,
        "Type": json_values,
        "Message": json_values,
        "detail-type": json_values,
        "source": json_values,
        "detail": json_values,
    },
)


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000,
        '{"a":' * 100_000,
        json.dumps({"Type": "Notification", "Message": "[" * 100_000}),
    ],
    ids=["brackets", "objects", "inside-sns"],
)
def test_deeply_nested_json_is_one_invalid_message_not_a_crash(body):
    with pytest.raises(InvalidMessage, match="too deeply"):
        parse_body(body, ORIGIN, OPTS)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=1, max_value=200_000), st.sampled_from(["[", '{"k":', '{"Records":[']))
def test_fuzzed_nesting_depths_parse_or_raise_invalid_message(depth, opener):
    with pytest.raises(InvalidMessage):
        parse_body(opener * depth, ORIGIN, OPTS)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), json_values.map(json.dumps), shaped.map(json.dumps)))
def test_fuzzed_bodies_parse_or_raise_invalid_message(body):
    try:
        parsed = parse_body(body, ORIGIN, OPTS)
    except InvalidMessage as exc:
        error = str(exc)
        assert error, "an InvalidMessage must say what is wrong"
        return
    assert all(r.origin.message_id == "m-1" for r in parsed.requests)


@settings(max_examples=200, deadline=None)
@given(st.one_of(json_values, shaped))
def test_fuzzed_events_classify_or_raise_unsupported(event):
    try:
        kind = classify(event)
    except UnsupportedEvent as exc:
        error = str(exc)
        assert error, "an UnsupportedEvent must say what is wrong"
        return
    assert isinstance(event, dict)
    assert kind.value


# -- bounded work per message (docs/security.md) ------------------------------------------------
def test_br_indexes_are_taken_once_each_and_three_at_most():
    body = {"vids": [V1], "brIndexes": [2, 2, 1, 2, 1]}
    assert files(parse_body(json.dumps(body), ORIGIN, OPTS)) == [(V1, 2), (V1, 1)]
    with pytest.raises(InvalidMessage, match="more than 3 distinct"):
        parse_body(json.dumps({"vids": [V1], "brIndexes": [1, 2, 3, 4]}), ORIGIN, OPTS)
    with pytest.raises(InvalidMessage, match="list of 1, 2 or 3"):
        parse_body(json.dumps({"vid": V1, "brIndexes": [[1], [2]]}), ORIGIN, OPTS)


@pytest.mark.parametrize(
    "body",
    [
        {"vids": [V1] * 1001, "brIndexes": [1, 2]},  # 2,002 files
        {"vids": [V1] * 700},  # x 3 default bitrates
        {"videos": [{"vid": V1}] * 667},
        {"videos": [{"vid": V1, "brIndex": 1}] * 2001},
    ],
    ids=["vids", "vids-defaults", "videos-defaults", "videos"],
)
def test_a_message_asking_for_more_than_the_cap_is_malformed(body):
    with pytest.raises(InvalidMessage, match="split it into several messages"):
        parse_body(json.dumps(body), ORIGIN, OPTS)


def test_the_cap_counts_files_before_building_them():
    # 10^9 files if built: the multiplication refuses it at once
    body = {"vids": [V1] * 100_000, "brIndexes": [1, 2, 3]}
    with pytest.raises(InvalidMessage, match="300000 files"):
        parse_document(body, ORIGIN, OPTS._replace(max_files=2000))


def test_the_cap_spans_the_records_of_one_notification():
    record = s3_notification(f"t/{V1}.zip")["Records"][0]
    document = {"Records": [record] * 700}  # 700 records x 3 bitrates
    with pytest.raises(InvalidMessage, match="split it"):
        parse_document(document, ORIGIN, OPTS)


def test_an_s3_key_longer_than_s3_allows_is_malformed():
    with pytest.raises(InvalidMessage, match="at most 1024 bytes"):
        parse_document(s3_notification(f"{V1}/" + "x" * 2000), ORIGIN, OPTS)


def test_echoed_values_are_cut_before_they_are_built():
    huge = {f"key-{i}-" + "k" * 1000: i for i in range(10_000)}
    with pytest.raises(InvalidMessage) as info:
        parse_document(huge, ORIGIN, OPTS)
    assert len(str(info.value)) < 400
    assert "and 9992 more" in str(info.value)
    with pytest.raises(UnsupportedEvent) as unsupported:
        classify({"Records": [{"eventSource": ["x" * 10**6]}]})
    assert len(str(unsupported.value)) < 200


def test_a_relayed_transcode_complete_asks_polyv_its_successes_a_hint():
    infos = [{"status": "success", "df": 1}, {"status": "fail", "df": 2}, {"status": "success", "df": "3"}]
    body = {"eventType": "TranscodeComplete", "status": "success", "vid": V1, "videoInfos": infos}
    parsed = parse_body(json.dumps(body), ORIGIN, OPTS)
    assert parsed.requests == []  # its body is not signed: Polyv says which definitions exist
    assert parsed.lookups == [DefinitionsLookup(V1, (1, 3), ORIGIN)]
    assert parsed.files == 3
    nothing = parse_body(json.dumps({**body, "status": "fail"}), ORIGIN, OPTS)
    assert nothing.requests == []
    assert "no definition" in nothing.ignored[0].reason
    other = parse_body(json.dumps({"eventType": "DeleteMediaComplete", "vids": V1}), ORIGIN, OPTS)
    assert other.requests == []
    assert "DeleteMediaComplete" in other.ignored[0].reason
    with pytest.raises(InvalidMessage, match="videoInfos must be a list"):
        parse_body(json.dumps({**body, "videoInfos": "all"}), ORIGIN, OPTS)


def test_ask_polyv_messages_are_lookups_and_must_say_true_or_false():
    parsed = parse_body(json.dumps({"vid": V1, "brIndexes": [2], "askPolyv": True}), ORIGIN, OPTS)
    assert parsed.lookups == [DefinitionsLookup(V1, (2,), ORIGIN)]
    assert parsed.requests == []
    plain = parse_body(json.dumps({"vid": V1, "brIndex": 2, "askPolyv": False}), ORIGIN, OPTS)
    assert files(plain) == [(V1, 2)]
    assert plain.lookups == []
    with pytest.raises(InvalidMessage, match="askPolyv must be true or false"):
        parse_body(json.dumps({"vid": V1, "askPolyv": "yes"}), ORIGIN, OPTS)


def test_the_callback_endpoints_messages_are_the_pipelines_shape():
    from polyv_prewarm.domain.callbacks import CallbackRequest, read

    encode = read(CallbackRequest("GET", f"type=encode&format=mp4&vid={V1}&df=2"))
    parsed = parse_body(json.dumps(encode.message()), ORIGIN, OPTS)
    assert files(parsed) == [(V1, 2)]
    assert parsed.requests[0].explicit
