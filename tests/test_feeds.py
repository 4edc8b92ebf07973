"""Feed parsing: formats, malformed input, dates, duplicates, and the real-world corpus."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from conftest import SHARED_CORPUS
from httpserver import Item, atom, rss
from steppewatch.feeds import parse_feed

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=timezone.utc)


def test_rss2_entries_with_dates_and_guids():
    body = rss([
        Item("Arrests in Khujand", "https://news.example/a?utm_source=rss", "guid-a", datetime(2026, 3, 10, 8, 30, tzinfo=timezone.utc)),
        Item("Water talks", "https://news.example/b", None, datetime(2026, 3, 11, tzinfo=timezone.utc)),
    ])
    feed = parse_feed(body, url="https://news.example/rss", now=NOW)
    assert feed.is_feed and feed.format == "rss20" and feed.problem is None
    first, second = feed.entries
    assert first.guid == "guid-a" and first.url == "https://news.example/a?utm_source=rss"
    assert first.published == datetime(2026, 3, 10, 8, 30, tzinfo=timezone.utc)
    assert second.guid == "https://news.example/b", "the link stands in for a missing GUID"


def test_atom_entries():
    body = atom([Item("Border drills", "https://think.example/analysis/1", "tag:think.example,2026:1",
                      datetime(2026, 3, 12, 6, tzinfo=timezone.utc))])
    feed = parse_feed(body, now=NOW)
    assert feed.format == "atom10"
    assert feed.entries[0].guid == "tag:think.example,2026:1"
    assert feed.entries[0].published.day == 12


def test_rss1_rdf_feed():
    body = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
         xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel rdf:about="https://old.example/"><title>Old style</title><link>https://old.example/</link>
    <description>d</description></channel>
  <item rdf:about="https://old.example/story-1"><title>Story one</title><link>https://old.example/story-1</link>
    <dc:date>2026-03-09T10:00:00Z</dc:date></item>
</rdf:RDF>"""
    feed = parse_feed(body, now=NOW)
    assert feed.format == "rss10"
    assert feed.entries[0].url == "https://old.example/story-1"
    assert feed.entries[0].published == datetime(2026, 3, 9, 10, tzinfo=timezone.utc)


def test_json_feed():
    body = json.dumps({
        "version": "https://jsonfeed.org/version/1.1",
        "title": "JSON outlet",
        "items": [
            {"id": "1", "url": "/news/1", "title": "One", "date_published": "2026-03-10T09:00:00+05:00"},
            {"id": "2", "url": "https://json.example/news/2", "title": "Two"},
        ],
    }).encode()
    feed = parse_feed(body, url="https://json.example/feed.json", now=NOW)
    assert feed.format == "json"
    assert feed.entries[0].url == "https://json.example/news/1"
    assert feed.entries[0].published == datetime(2026, 3, 10, 4, tzinfo=timezone.utc)
    assert feed.entries[1].published is None and feed.entries[1].date_problem == "no date"


def test_malformed_xml_still_yields_entries_and_records_the_problem():
    body = rss([Item("Fine item", "https://m.example/1", "1", datetime(2026, 3, 10, tzinfo=timezone.utc)),
                Item("Broken & item", "https://m.example/2", "2", datetime(2026, 3, 10, tzinfo=timezone.utc))])
    body = body.replace(b"Broken &amp; item", b"Broken & item <b>unclosed")
    feed = parse_feed(body, now=NOW)
    assert feed.is_feed
    assert [e.url for e in feed.entries] == ["https://m.example/1", "https://m.example/2"]
    assert feed.problem and feed.problem.startswith("malformed feed")


def test_leading_whitespace_before_the_declaration_is_not_a_problem():
    body = b"\n\n  " + rss([Item("x", "https://w.example/1", "1", datetime(2026, 3, 10, tzinfo=timezone.utc))])
    feed = parse_feed(body, now=NOW)
    assert feed.problem is None and len(feed.entries) == 1


def test_html_served_as_a_feed():
    body = b"""<!DOCTYPE html><html><head><title>Home</title>
<link rel="alternate" type="application/rss+xml" href="/feed/"></head><body><p>Welcome</p></body></html>"""
    feed = parse_feed(body, url="https://site.example/rss", content_type="text/html", now=NOW)
    assert not feed.is_feed
    assert feed.problem.startswith("not a feed: the server sent an HTML page")
    assert "https://site.example/feed/" in feed.problem, "the page's own feed link is suggested"


@pytest.mark.parametrize("body", [b"", b"   ", b"Service temporarily unavailable", b"\x00\x01\x02binary"])
def test_garbage_is_not_a_feed(body):
    feed = parse_feed(body, now=NOW)
    assert not feed.is_feed and feed.problem


def test_missing_future_and_garbled_dates():
    body = rss([
        Item("no date", "https://d.example/1", "1", None),
        Item("future", "https://d.example/2", "2", NOW + timedelta(days=30)),
        Item("near future is clock skew", "https://d.example/3", "3", NOW + timedelta(hours=3)),
        Item("garbled", "https://d.example/4", "4", "the day after tomorrow"),
    ])
    entries = {e.guid: e for e in parse_feed(body, now=NOW).entries}
    assert entries["1"].published is None and entries["1"].date_problem == "no date"
    assert entries["2"].published is None and entries["2"].date_problem.startswith("future date")
    assert entries["3"].published == NOW + timedelta(hours=3) and entries["3"].date_problem is None
    assert entries["4"].published is None and entries["4"].date_problem == "unparseable date"


def test_duplicate_guids_within_a_feed_are_read_once():
    item = Item("Same", "https://dup.example/1", "same-guid", datetime(2026, 3, 10, tzinfo=timezone.utc))
    feed = parse_feed(rss([item, item, Item("Other", "https://dup.example/2", "g2")]), now=NOW)
    assert [e.guid for e in feed.entries] == ["same-guid", "g2"]


def test_entry_without_link_or_guid_gets_a_stable_id():
    feed = parse_feed(rss([Item("Only a title", None, None)]), now=NOW)
    again = parse_feed(rss([Item("Only a title", None, None)]), now=NOW)
    assert feed.entries[0].url is None
    assert feed.entries[0].guid.startswith("sha256:") and feed.entries[0].guid == again.entries[0].guid


def test_windows_1251_feed_declared_in_the_xml_header():
    text = ('<?xml version="1.0" encoding="windows-1251"?><rss version="2.0"><channel><title>Лента</title>'
            '<item><title>Задержания в Оше</title><link>https://ru.example/1</link></item></channel></rss>')
    feed = parse_feed(text.encode("cp1251"), now=NOW)
    assert feed.entries[0].title == "Задержания в Оше"


CORPUS_FEEDS = sorted(p for p in (SHARED_CORPUS / "feeds").glob("*/*") if p.name != "manifest.jsonl") \
    if (SHARED_CORPUS / "feeds").is_dir() else []


@pytest.mark.skipif(not CORPUS_FEEDS, reason="../shared/corpus is not present on this machine")
@pytest.mark.parametrize("path", CORPUS_FEEDS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_world_corpus_feeds_parse_without_exception(path):
    feed = parse_feed(path.read_bytes(), url=f"https://corpus.example/{path.name}", now=NOW)
    assert feed.is_feed, feed.problem
    assert feed.entries, "every corpus feed has entries"
    assert all(e.guid for e in feed.entries)
