import ipaddress

import pytest

from consumer.errors import PermanentError, TransientError
from consumer.fetch import Fetcher, FetchPolicy, is_forbidden_ip, parse_networks
from tests.support.httpserver import ObjectStore

# The test object store listens on 127.0.0.2, exempted explicitly; 127.0.0.1 stays forbidden.
ALLOWED = parse_networks("127.0.0.2/32")


@pytest.fixture
def store():
    with ObjectStore("127.0.0.2") as s:
        yield s


def fetcher(**kw) -> Fetcher:
    defaults = dict(allowed_networks=ALLOWED, timeout_s=2.0, max_bytes=1_000_000, max_redirects=2)
    defaults.update(kw)
    return Fetcher(FetchPolicy(**defaults))


@pytest.mark.parametrize("ip", ["127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                "100.64.0.1", "0.0.0.0", "::ffff:127.0.0.1", "fe80::1", "fc00::1", "224.0.0.1"])
def test_private_and_special_addresses_forbidden(ip):
    assert is_forbidden_ip(ipaddress.ip_address(ip))


@pytest.mark.parametrize("ip", ["8.8.8.8", "2606:4700::1111", "151.101.1.69"])
def test_public_addresses_allowed(ip):
    assert not is_forbidden_ip(ipaddress.ip_address(ip))


def test_allowed_network_exempts_only_itself():
    assert not is_forbidden_ip(ipaddress.ip_address("127.0.0.2"), ALLOWED)
    assert is_forbidden_ip(ipaddress.ip_address("127.0.0.1"), ALLOWED)


def test_fetches_bytes(store):
    assert fetcher().fetch(store.put("/a.jpg", b"imagebytes")) == b"imagebytes"


@pytest.mark.parametrize("url,reason", [
    ("file:///etc/passwd", "forbidden_scheme"),
    ("ftp://example.com/a.jpg", "forbidden_scheme"),
    ("gopher://example.com/", "forbidden_scheme"),
    ("http://127.0.0.1:{port}/a.jpg", "forbidden_address"),
    ("http://[::1]:{port}/a.jpg", "forbidden_address"),
    ("http://0x7f000001:{port}/a.jpg", "forbidden_address"),
    ("http://2130706433:{port}/a.jpg", "forbidden_address"),
    ("http://169.254.169.254/latest/meta-data/", "forbidden_address"),
    ("http://10.0.0.1/a.jpg", "forbidden_address"),
    ("http://localhost:{port}/a.jpg", "forbidden_address"),
    ("http://user:pw@127.0.0.2:{port}/a.jpg", "invalid_url"),
])
def test_forbidden_urls_are_permanent_and_never_connected(store, url, reason):
    store.put("/a.jpg", b"secret")
    port = store.url("/").rsplit(":", 1)[1].split("/")[0]
    with pytest.raises(PermanentError) as info:
        fetcher().fetch(url.format(port=port))
    assert info.value.reason == reason
    assert store.hits.get("/a.jpg", 0) == 0


def test_redirect_to_private_address_refused(store):
    port = store.url("/").rsplit(":", 1)[1].split("/")[0]
    url = store.redirect("/r", f"http://127.0.0.1:{port}/a.jpg")
    with pytest.raises(PermanentError) as info:
        fetcher().fetch(url)
    assert info.value.reason == "forbidden_address"


def test_redirects_followed_and_limited(store):
    store.put("/final.jpg", b"ok")
    store.redirect("/r1", "/final.jpg")
    assert fetcher().fetch(store.url("/r1")) == b"ok"
    store.redirect("/loop", "/loop")
    with pytest.raises(PermanentError) as info:
        fetcher().fetch(store.url("/loop"))
    assert info.value.reason == "too_many_redirects"


def test_host_allow_list():
    f = fetcher(allowed_hosts=("images.example.com", "*.cdn.example.com"))
    assert f.policy.host_allowed("a.cdn.example.com") and f.policy.host_allowed("images.example.com")
    assert not f.policy.host_allowed("cdn.example.com.evil.net")
    with pytest.raises(PermanentError) as info:
        f.fetch("https://evil.example.net/x.jpg")
    assert info.value.reason == "forbidden_host"


@pytest.mark.parametrize("code,permanent", [(404, True), (410, True), (403, True), (500, False), (503, False),
                                            (429, False)])
def test_status_codes_classified(store, code, permanent):
    url = store.status(f"/s{code}", code)
    with pytest.raises(PermanentError if permanent else TransientError) as info:
        fetcher().fetch(url)
    assert info.value.reason == f"http_{code}"


def test_timeout_is_transient(store):
    with pytest.raises(TransientError) as info:
        fetcher(timeout_s=0.5).fetch(store.hang("/slow", 3))
    assert info.value.reason == "timeout"


@pytest.mark.parametrize("declared", [True, False])
def test_body_over_cap_is_abandoned_not_buffered(store, declared):
    url = store.huge("/huge", 100 * 1024 * 1024, declare_length=declared)
    with pytest.raises(PermanentError) as info:
        fetcher(max_bytes=2_000_000).fetch(url)
    assert info.value.reason == "too_large"
