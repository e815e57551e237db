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


@pytest.mark.parametrize(
    "url",
    [
        "http://evil.example\\@127.0.0.1:8900/v2/video/refresh-cdn-cache",  # urllib3 connects to evil
        "http://user@127.0.0.1:8900/v2/video/refresh-cdn-cache",
        "https://user:pw@api.polyv.net/v2/video/refresh-cdn-cache",
        "http://127.0.0.1.evil.example/v2/video/refresh-cdn-cache",
        "https://api.polyv.net /v2/video/refresh-cdn-cache",
        "https://api.polyv.net/v2/\x1b/refresh-cdn-cache",
        "https:///v2/video/refresh-cdn-cache",
    ],
)
def test_urls_that_could_be_read_two_ways_are_refused(url):
    with pytest.raises(ConfigurationError, match="POLYV_API_URL"):
        Settings.from_env({**BASE, "POLYV_API_URL": url})


def test_a_proxy_only_when_asked_for_and_without_credentials():
    assert Settings.from_env(BASE).polyv_proxy_url is None
    proxied = Settings.from_env({**BASE, "POLYV_PROXY_URL": "http://10.0.0.8:3128"})
    assert proxied.polyv_proxy_url == "http://10.0.0.8:3128"
    for bad in ("socks5://10.0.0.8:1080", "http://user:secret@10.0.0.8:3128"):
        with pytest.raises(ConfigurationError, match="POLYV_PROXY_URL"):
            Settings.from_env({**BASE, "POLYV_PROXY_URL": bad})
