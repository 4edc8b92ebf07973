"""Settings, URL identity, windows and the network policy."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from steppewatch.config import ConfigError, NetworkPolicy, load_settings
from steppewatch.urls import canonical_url, same_site
from steppewatch.windows import Window


def test_defaults_and_environment():
    settings = load_settings({})
    assert settings.warehouse_url.startswith("sqlite:///") and settings.warehouse_url.endswith("data/warehouse.db")
    assert settings.sources_path.name == "sources.yaml"
    assert settings.http.per_host_delay == 1.0 and settings.http.respect_robots
    assert not settings.http.network_policy.allow_all
    custom = load_settings({"AIRFLOW_CONN_NEWS_WAREHOUSE": "postgresql://u@h/db", "STEPPEWATCH_HOST_DELAY": "2.5",
                            "STEPPEWATCH_CONTACT_URL": "https://ops.example/contact"})
    assert custom.warehouse_url == "postgresql://u@h/db" and custom.http.per_host_delay == 2.5
    assert "https://ops.example/contact" in custom.http.user_agent
    with pytest.raises(ConfigError, match="STEPPEWATCH_RETRIES='many' is not an integer"):
        load_settings({"STEPPEWATCH_RETRIES": "many"})


@pytest.mark.parametrize("address, public", [
    ("8.8.8.8", True), ("2a00:1450:4001::200e", True),
    ("127.0.0.1", False), ("10.0.0.1", False), ("172.16.5.4", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("::1", False),
    ("fe80::1", False), ("fc00::1", False), ("::ffff:127.0.0.1", False), ("240.0.0.1", False),
    ("224.0.0.1", False),
])
def test_network_policy_refuses_non_public_addresses(address, public):
    assert NetworkPolicy().permits(address) is public
    assert NetworkPolicy.from_value("1").permits(address)


def test_network_policy_allowlist():
    policy = NetworkPolicy.from_value("127.0.0.1/32, 10.8.0.0/16")
    assert policy.permits("127.0.0.1") and policy.permits("10.8.3.4")
    assert not policy.permits("127.0.0.2") and not policy.permits("10.9.0.1")
    assert not NetworkPolicy.from_value("0").permits("127.0.0.1")
    with pytest.raises(ConfigError):
        NetworkPolicy.from_value("localhost")


@pytest.mark.parametrize("given, expected", [
    ("https://Eurasianet.org/kyrgyzstan-arrests?utm_source=rss&utm_medium=feed", "https://eurasianet.org/kyrgyzstan-arrests"),
    ("https://www.rferl.org/a/tajik-isis/123.html?ref=feed#comments", "https://www.rferl.org/a/tajik-isis/123.html"),
    ("http://example.org:80/a//b/", "http://example.org/a/b/"),
    ("https://24.kg/news/1?id=5&fbclid=xyz", "https://24.kg/news/1?id=5"),
    ("/relative/path", None),
    ("mailto:editor@example.org", None),
    ("", None),
])
def test_canonical_url(given, expected):
    assert canonical_url(given) == expected


def test_relative_urls_resolve_against_a_base():
    assert canonical_url("../b.html", "https://x.org/news/a.html") == "https://x.org/b.html"
    assert same_site("https://www.x.org/a", "https://x.org/b") and not same_site("https://x.org", "https://y.org")


def test_window_parsing():
    window = Window.from_strings("2026-03-10", "2026-03-11T06:00Z")
    assert window.start == datetime(2026, 3, 10, tzinfo=timezone.utc)
    assert window.end == datetime(2026, 3, 11, 6, tzinfo=timezone.utc)
    assert window.contains(datetime(2026, 3, 10, 23, 59, tzinfo=timezone.utc))
    assert not window.contains(window.end)
    default = Window.from_strings(None, None, now=datetime(2026, 3, 12, 9, tzinfo=timezone.utc))
    assert default.start == datetime(2026, 3, 11, 9, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="before it starts"):
        Window.from_strings("2026-03-12", "2026-03-11")
