"""The HTTP layer against a real loopback server: every bad response ends with a reason."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib

import pytest

from httpserver import Reply
from steppewatch.config import HttpSettings, NetworkPolicy, load_settings
from steppewatch.fetching import FetchStatus, HostLimiter, HttpClient


@pytest.fixture
def client():
    with HttpClient(load_settings().http) as http:
        yield http


def test_sends_project_user_agent_and_accepts_compression(site, client):
    site.add("/hello", "<html><body>hi</body></html>")
    result = client.get(site.url("/hello"))
    assert result.ok and result.body == b"<html><body>hi</body></html>"
    sent = site.request_headers["/hello"][0]
    assert sent["User-Agent"].startswith("steppewatch/")
    assert "+http" in sent["User-Agent"], "the User-Agent names a contact URL"
    assert "gzip" in sent["Accept-Encoding"]


def test_conditional_get_sends_validators_and_reports_not_modified(site, client):
    def handler(request):
        if request.headers.get("If-None-Match") == '"v1"':
            return Reply(304)
        return Reply(200, b"<rss/>", {"ETag": '"v1"', "Last-Modified": "Tue, 10 Mar 2026 08:00:00 GMT"})

    site.add("/feed", handler)
    first = client.get(site.url("/feed"))
    assert first.ok and first.headers["etag"] == '"v1"'
    second = client.get(site.url("/feed"), etag='"v1"', last_modified=first.headers["last-modified"])
    assert second.status is FetchStatus.NOT_MODIFIED
    assert site.request_headers["/feed"][1]["If-Modified-Since"] == "Tue, 10 Mar 2026 08:00:00 GMT"


@pytest.mark.parametrize("status", [404, 410, 403])
def test_client_errors_are_not_retried(site, client, status):
    site.add("/gone", Reply(status, b"nope"))
    result = client.get(site.url("/gone"))
    assert result.status is FetchStatus.HTTP_ERROR and result.http_status == status
    assert result.reason.startswith(f"HTTP {status}")
    assert site.hits["/gone"] == 1
    assert not result.transient


def test_server_error_then_success_is_retried(site, client):
    site.add("/flaky", lambda request: Reply(500, b"boom") if request.count == 1 else Reply(200, b"<p>ok</p>"))
    result = client.get(site.url("/flaky"))
    assert result.ok and result.attempts == 2
    assert site.hits["/flaky"] == 2


def test_persistent_server_error_gives_up_after_the_retries(site, client):
    site.add("/down", Reply(503, b"maintenance"))
    result = client.get(site.url("/down"))
    assert result.status is FetchStatus.HTTP_ERROR and result.http_status == 503
    assert site.hits["/down"] == 3  # the first try and STEPPEWATCH_RETRIES=2
    assert result.transient, "a later run should try again"


def test_retry_after_is_honoured(site):
    slept = []
    site.add("/busy", lambda r: Reply(429, b"", {"Retry-After": "2"}) if r.count == 1 else Reply(200, b"fine"))
    with HttpClient(load_settings().http, sleep=slept.append) as http:
        result = http.get(site.url("/busy"))
    assert result.ok
    assert slept == [2.0]


def test_retry_after_beyond_the_cap_is_not_waited_for(site):
    slept = []
    site.add("/later", Reply(503, b"", {"Retry-After": "3600"}))
    with HttpClient(load_settings().http, sleep=slept.append) as http:
        result = http.get(site.url("/later"))
    assert result.status is FetchStatus.HTTP_ERROR
    assert "Retry-After" in result.reason and slept == []
    assert site.hits["/later"] == 1


def test_backoff_grows_exponentially_with_jitter(site):
    slept = []
    site.add("/always-500", Reply(500, b""))
    settings = load_settings().http
    with HttpClient(HttpSettings(**{**vars(settings), "retries": 3, "backoff_base": 1.0}), sleep=slept.append) as http:
        http.get(site.url("/always-500"))
    assert len(slept) == 3
    for attempt, delay in enumerate(slept, start=1):
        base = 2 ** (attempt - 1)
        assert 0.5 * base <= delay <= 1.1 * base


def test_read_timeout(site, client):
    site.add("/slow", Reply(200, b"late", delay=3))
    started = time.monotonic()
    result = client.get(site.url("/slow"))
    assert result.status is FetchStatus.TIMEOUT
    assert "timed out" in result.reason
    assert result.attempts == 3
    assert time.monotonic() - started < 8


def test_slow_drip_body_hits_the_response_deadline(site, monkeypatch):
    # each chunk arrives within the read timeout, but the whole body never finishes in time
    monkeypatch.setenv("STEPPEWATCH_CONNECT_TIMEOUT", "0.5")
    monkeypatch.setenv("STEPPEWATCH_READ_TIMEOUT", "0.5")
    site.add("/drip", Reply(200, b"x" * 512 * 40, chunk_delay=0.3))
    started = time.monotonic()
    with HttpClient(load_settings().http) as http:
        result = http.get(site.url("/drip"))
    assert result.status is FetchStatus.TIMEOUT and "deadline" in result.reason
    assert result.attempts == 1, "a dripping server is not retried at once"
    assert time.monotonic() - started < 4


def test_connection_refused(client):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = client.get(f"http://127.0.0.1:{port}/nothing-listens")
    assert result.status is FetchStatus.CONNECTION_ERROR
    assert "refused" in result.reason


def test_redirects_are_followed_and_recorded(site, client):
    site.add("/old", Reply(301, b"", {"Location": "/new"}))
    site.add("/new", "<p>moved</p>")
    result = client.get(site.url("/old"))
    assert result.ok and result.final_url == site.url("/new")
    assert result.redirects == [site.url("/new")]


def test_redirect_loop(site, client):
    site.add("/a", Reply(302, b"", {"Location": "/b"}))
    site.add("/b", Reply(302, b"", {"Location": "/a"}))
    result = client.get(site.url("/a"))
    assert result.status is FetchStatus.REDIRECT_LOOP
    assert "loop" in result.reason


def test_too_many_redirects(site, client):
    for n in range(10):
        site.add(f"/hop{n}", Reply(302, b"", {"Location": f"/hop{n + 1}"}))
    result = client.get(site.url("/hop0"))
    assert result.status is FetchStatus.TOO_MANY_REDIRECTS


def test_oversized_body_by_content_length(site, monkeypatch):
    monkeypatch.setenv("STEPPEWATCH_MAX_BODY_BYTES", "1000")
    site.add("/big", b"a" * 5000)
    with HttpClient(load_settings().http) as http:
        result = http.get(site.url("/big"))
    assert result.status is FetchStatus.TOO_LARGE and "Content-Length" in result.reason


def test_oversized_body_without_content_length(site, monkeypatch):
    monkeypatch.setenv("STEPPEWATCH_MAX_BODY_BYTES", "1000")
    site.add("/stream", Reply(200, b"a" * 5000, no_length=True))
    with HttpClient(load_settings().http) as http:
        result = http.get(site.url("/stream"))
    assert result.status is FetchStatus.TOO_LARGE and "after decompression" in result.reason


def test_gzip_bomb_stops_at_the_limit(site, monkeypatch):
    monkeypatch.setenv("STEPPEWATCH_MAX_BODY_BYTES", str(1024 * 1024))
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 100_000
    site.add("/bomb", Reply(200, bomb, {"Content-Encoding": "gzip"}))
    with HttpClient(load_settings().http) as http:
        result = http.get(site.url("/bomb"))
    assert result.status is FetchStatus.TOO_LARGE
    assert "after decompression" in result.reason


def test_gzip_and_deflate_bodies_are_decoded(site, client):
    page = "<html><body>" + "Кыргызстан " * 200 + "</body></html>"
    site.add("/gz", Reply(200, gzip.compress(page.encode()), {"Content-Encoding": "gzip"}))
    site.add("/deflate", Reply(200, zlib.compress(page.encode()), {"Content-Encoding": "deflate"}))
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    site.add("/raw-deflate", Reply(200, raw.compress(page.encode()) + raw.flush(), {"Content-Encoding": "deflate"}))
    for path in ("/gz", "/deflate", "/raw-deflate"):
        result = client.get(site.url(path))
        assert result.ok, (path, result.reason)
        assert result.body.decode() == page


def test_unknown_content_encoding_is_a_decoding_error(site, client):
    site.add("/br", Reply(200, b"\x1b\x00\x00", {"Content-Encoding": "br"}))
    result = client.get(site.url("/br"))
    assert result.status is FetchStatus.DECODING_ERROR and "br" in result.reason


def test_corrupt_gzip_is_a_decoding_error(site, client):
    site.add("/corrupt", Reply(200, b"\x1f\x8b\x08\x00garbage-not-gzip", {"Content-Encoding": "gzip"}))
    result = client.get(site.url("/corrupt"))
    assert result.status is FetchStatus.DECODING_ERROR


def test_loopback_is_refused_without_permission(site):
    policy = HttpSettings(network_policy=NetworkPolicy(), per_host_delay=0, retries=0)
    site.add("/secret", "internal")
    with HttpClient(policy) as http:
        by_ip = http.get(site.url("/secret"))
        by_name = http.get(f"http://localhost:{site.port}/secret")
    assert by_ip.status is FetchStatus.BLOCKED_ADDRESS and "127.0.0.1" in by_ip.reason
    assert by_name.status is FetchStatus.BLOCKED_ADDRESS, "checked after DNS resolution"
    assert site.hits["/secret"] == 0


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/", "http://127.0.0.2:9/"])
def test_private_address_behind_a_redirect_is_refused(site, client, target):
    site.add("/innocent", Reply(302, b"", {"Location": target}))
    result = client.get(site.url("/innocent"))
    assert result.status is FetchStatus.BLOCKED_ADDRESS
    assert result.redirects == [target]


def test_allow_all_private_networks(site):
    site.add("/ok", "fine")
    with HttpClient(HttpSettings(network_policy=NetworkPolicy.from_value("1"), per_host_delay=0)) as http:
        assert http.get(site.url("/ok")).ok


def test_non_http_urls_are_invalid(client):
    assert client.get("ftp://example.org/file").status is FetchStatus.INVALID_URL
    assert client.get("not a url").status is FetchStatus.INVALID_URL


def test_robots_txt_is_respected_for_pages(site, client):
    site.add("/robots.txt", "User-agent: *\nDisallow: /private/\n")
    site.add("/private/page", "secret")
    site.add("/public/page", "open")
    blocked = client.get(site.url("/private/page"), check_robots=True)
    allowed = client.get(site.url("/public/page"), check_robots=True)
    assert blocked.status is FetchStatus.ROBOTS_DISALLOWED and "robots.txt" in blocked.reason
    assert allowed.ok
    assert site.hits["/private/page"] == 0
    assert site.hits["/robots.txt"] == 1, "robots.txt is fetched once per site"


def test_robots_txt_naming_steppewatch(site, client):
    site.add("/robots.txt", "User-agent: steppewatch\nDisallow: /\n\nUser-agent: *\nAllow: /\n")
    site.add("/any", "x")
    assert client.get(site.url("/any"), check_robots=True).status is FetchStatus.ROBOTS_DISALLOWED


def test_unreachable_robots_txt_means_disallow(site, client):
    site.add("/robots.txt", Reply(500, b"oops"))
    site.add("/page", "x")
    result = client.get(site.url("/page"), check_robots=True)
    assert result.status is FetchStatus.ROBOTS_DISALLOWED and "unreachable" in result.reason


def test_per_host_concurrency_is_bounded(site, monkeypatch):
    monkeypatch.setenv("STEPPEWATCH_HOST_CONCURRENCY", "2")
    for n in range(8):
        site.add(f"/conc/{n}", Reply(200, b"x", delay=0.2))
    with HttpClient(load_settings().http) as http:
        threads = [threading.Thread(target=http.get, args=(site.url(f"/conc/{n}"),)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert site.max_active["conc"] == 2


def test_host_limiter_spaces_request_starts():
    limiter = HostLimiter(concurrency=4, delay=0.05)
    starts = []
    for _ in range(4):
        with limiter.slot("example.org"):
            starts.append(time.monotonic())
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(gap >= 0.045 for gap in gaps)
    with limiter.slot("other.org"):
        pass  # another host is not delayed by the first
