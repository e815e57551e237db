from devstack.polyv_simulator import expected_sign
from polyv_prewarm.adapters.signing import sign, signed_form, videos_json
from polyv_prewarm.domain.model import FileRef

VID = "e6b23c6f513fbe025b94efdd10d7ab47_e"


def test_vector_1_polyv_documentation_example():
    params = {"date": "2020-10-13", "ptime": "1621997347695", "userid": "1b448be323"}
    assert sign(params, "abc") == "3CA490D29AB54D97FD61B94443D4AD5D819511D0"


def test_vector_2_refresh_call():
    videos = (
        '[{"vid":"e6b23c6f513fbe025b94efdd10d7ab47_e","brIndex":1},'
        '{"vid":"e6b23c6f513fbe025b94efdd10d7ab47_e","brIndex":2}]'
    )
    params = {
        "userid": "e6b23c6f51",
        "ptime": "1764201600000",
        "action": "push",
        "fileType": "zip",
        "videos": videos,
    }
    assert sign(params, "Kx9fQ2mZ7pLr4tWv") == "D2C8F1BCAA11931CFDA331B619E98D4922FB1C4A"


def test_signed_form_reproduces_vector_2_byte_for_byte():
    form = signed_form(
        userid="e6b23c6f51",
        secretkey="Kx9fQ2mZ7pLr4tWv",
        files=[FileRef(VID, 1), FileRef(VID, 2)],
        ptime_ms=1764201600000,
    )
    assert form["videos"] == f'[{{"vid":"{VID}","brIndex":1}},{{"vid":"{VID}","brIndex":2}}]'
    assert form["sign"] == "D2C8F1BCAA11931CFDA331B619E98D4922FB1C4A"
    assert form["action"] == "push"
    assert form["fileType"] == "zip"
    assert "Kx9fQ2mZ7pLr4tWv" not in "".join(form.values())


def test_sign_ignores_sign_param_and_empty_values():
    base = {"b": "2", "a": "1"}
    assert sign({**base, "sign": "X", "empty": ""}, "k") == sign(base, "k")


def test_sign_uses_raw_values_not_url_encoding():
    # "a=1&b=x y" + "k", not "b=x+y" or "b=x%20y"
    import hashlib

    assert sign({"a": "1", "b": "x y"}, "k") == hashlib.sha1(b"a=1&b=x yk").hexdigest().upper()


def test_simulator_signs_independently_and_agrees():
    form = signed_form(userid="e6b23c6f51", secretkey="s3cr3t", files=[FileRef(VID, 3)], ptime_ms=1)
    assert expected_sign(form, "s3cr3t") == form["sign"]


def test_videos_json_is_compact_and_keeps_order():
    assert videos_json([FileRef(VID, 2), FileRef(VID, 1)]) == (
        f'[{{"vid":"{VID}","brIndex":2}},{{"vid":"{VID}","brIndex":1}}]'
    )
