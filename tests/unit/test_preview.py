"""Untrusted values cut before they are built (polyv_prewarm.domain.preview)."""

import pytest

from polyv_prewarm.domain.preview import preview, sample_keys, shown


@pytest.mark.parametrize(
    "value",
    ["x" * 10**6, list(range(10**6)), {str(i): [i] * 1000 for i in range(1000)}, [[[[["deep"]]]]] * 50],
    ids=["string", "list", "dict", "nested"],
)
def test_a_preview_is_short_whatever_the_value(value):
    assert len(preview(value)) <= 64
    assert len(preview(value, 10)) <= 10


def test_a_preview_never_fails():
    class Hostile:
        def __repr__(self):
            raise RuntimeError("no")

    assert preview(Hostile()).startswith("<Hostile")
    assert preview(10**5000)  # an int too long for str() in Python 3.11


def test_small_plain_values_are_shown_as_they_are():
    assert shown(5) == 5
    assert shown(None) is None
    assert shown(True) is True
    assert shown("abc") == "abc"
    assert shown([1, 2]) == "[1, 2]"
    assert shown("x" * 100) == "x" * 64


def test_sample_keys_names_a_few():
    assert sample_keys({"b": 1, "a": 2}) == "a, b"
    many = sample_keys({str(i): i for i in range(100)}, count=3)
    assert many == "0, 1, 2, and 97 more"
