import pytest

from polyv_prewarm.config import ConfigurationError, Settings

BASE = {"POLYV_SECRET_ID": "polyv/prod", "QUOTA_TABLE": "quota"}


def test_defaults():
    s = Settings.from_env(BASE)
    assert s.api_url == "https://api.polyv.net/v2/video/refresh-cdn-cache"
    assert s.daily_limit == 2000
    assert str(s.timezone) == "Asia/Shanghai"
    assert s.default_br_indexes == (1, 2, 3)
    assert s.vid_key_pattern.search("x/e6b23c6f513fbe025b94efdd10d7ab47_e/1.zip").group("vid") == (
        "e6b23c6f513fbe025b94efdd10d7ab47_e"
    )


@pytest.mark.parametrize("missing", ["POLYV_SECRET_ID", "QUOTA_TABLE"])
def test_required(missing):
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(ConfigurationError, match=missing):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DAILY_FILE_LIMIT", "0"),
        ("DAILY_FILE_LIMIT", "many"),
        ("QUOTA_TIMEZONE", "Mars/Olympus"),
        ("DEFAULT_BR_INDEXES", "1,4"),
        ("DEFAULT_BR_INDEXES", "high"),
        ("VID_KEY_PATTERN", "(unclosed"),
        ("VID_KEY_PATTERN", "[0-9a-z]{32}_[0-9a-z]"),  # no vid group
        ("POLYV_API_URL", "http://api.polyv.net/v2/video/refresh-cdn-cache"),
        ("POLYV_API_URL", "ftp://127.0.0.1/x"),
    ],
)
def test_invalid_values_name_the_variable(name, value):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({**BASE, name: value})


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8900/v2/video/refresh-cdn-cache", "http://localhost:1/x", "http://[::1]:8900/x"]
)
def test_plain_http_only_for_loopback(url):
    assert Settings.from_env({**BASE, "POLYV_API_URL": url}).api_url == url


def test_br_indexes_deduplicated_in_order():
    assert Settings.from_env({**BASE, "DEFAULT_BR_INDEXES": "3,1,3"}).default_br_indexes == (3, 1)
