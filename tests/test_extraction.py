"""Extraction on the fixture pages: text, metadata, dates, encodings and non-articles."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from httpserver import SITE_DIR
from steppewatch.extraction import ExtractionStatus, decode_html, extract_page, resolve_published

BASE = "http://127.0.0.1:8000"
MANIFEST = json.loads((SITE_DIR / "manifest.json").read_text(encoding="utf-8"))
ARTICLES = [page for page in MANIFEST if page["expect_in_text"]]


def load(path: str) -> bytes:
    return (SITE_DIR / path).read_bytes().replace(b"{BASE}", BASE.encode())


def extract(path: str, **kwargs):
    content_type = "text/html; charset=windows-1251" if "cp1251" in path else "text/html"
    return extract_page(load(path), url=f"{BASE}/{path}", content_type=kwargs.pop("content_type", content_type),
                        favor_precision=True, today=date(2026, 11, 25), **kwargs)


@pytest.mark.parametrize("page", ARTICLES, ids=lambda p: Path(p["path"]).stem)
def test_main_text_without_boilerplate(page):
    result = extract(page["path"])
    assert result.ok, result.reason
    for phrase in page["expect_in_text"]:
        assert phrase in result.text
    for phrase in page["expect_not_in_text"]:
        assert phrase not in result.text
    assert result.title == page["title"]
    assert result.language == page["language"]
    assert result.word_count > 250
    assert len(result.content_hash) == 64 and len(result.signature) == 256


@pytest.mark.parametrize("page", [p for p in ARTICLES if p["published"]], ids=lambda p: Path(p["path"]).stem)
def test_original_publication_date_from_the_page(page):
    assert extract(page["path"]).page_date == date.fromisoformat(page["published"])


def test_author_from_metadata():
    assert extract("steppe-times/2026/03/10/dushanbe-arrests.html").author == "Dilnoza Karimova"
    assert extract("azattyk-ru/2026/03/14/zaderzhaniya.html").author == "Айгуль Сыдыкова"


def test_canonical_link_is_read():
    result = extract("ferghana-wire/news/2026-03-12-border-talks-print.html")
    assert result.canonical_url == f"{BASE}/ferghana-wire/news/2026-03-12-border-talks.html"


def test_windows_1251_page_declared_only_in_meta():
    path = "azattyk-ru/2026/03/15/vodnye-resursy-cp1251.html"
    result = extract(path, content_type="text/html")  # no charset in the HTTP header
    assert result.ok and "Рогун" in result.text and result.language == "ru"


def test_wrong_http_charset_falls_back_to_detection():
    text, encoding = decode_html("Привет, Бишкек".encode("utf-8"), "text/html; charset=utf-8")
    assert text == "Привет, Бишкек" and encoding == "utf-8"
    # a server claiming UTF-8 for a cp1251 body must not produce mojibake of the whole page
    body = ("<html><head><title>Новости</title></head><body><p>" + "Задержания в Оше и Бишкеке. " * 30
            + "</p></body></html>").encode("cp1251")
    text, encoding = decode_html(body, "text/html; charset=utf-8")
    assert "Задержания" in text


def test_page_without_any_date_uses_the_feed_date():
    path = "steppe-times/2026/03/16/no-date.html"
    # served at a URL without a date, so that nothing on or about the page carries one
    body = load(path).replace(b"/2026/03/16/", b"/grain/")
    feed_date = datetime(2026, 3, 16, 7, 45, tzinfo=timezone.utc)
    result = extract_page(body, url=f"{BASE}/steppe-times/grain/no-date.html", content_type="text/html",
                          feed_date=feed_date, today=date(2026, 11, 25))
    assert result.ok and result.page_date is None
    assert result.published_at == feed_date and result.date_source == "feed"


def test_a_year_in_the_text_is_not_the_pages_date():
    body = ("<!DOCTYPE html><html><head><title>Court jails recruiter</title></head><body><article>"
            "<h1>Court jails recruiter</h1><p>" + "A court in Tashkent jailed a man who sent four recruits "
            "through Turkey in 2024 and collected money for their tickets through a mobile wallet, prosecutors "
            "said on Wednesday after the hearing closed. " * 3 + "</p></article></body></html>").encode()
    feed_date = datetime(2026, 11, 26, 9, tzinfo=timezone.utc)
    with_feed = extract_page(body, url=f"{BASE}/news/court", content_type="text/html", feed_date=feed_date,
                             today=date(2026, 11, 30))
    assert with_feed.page_date is None and with_feed.published_at == feed_date
    # without a feed date the page's text is searched too, as the last resort
    alone = extract_page(body, url=f"{BASE}/news/court", content_type="text/html", today=date(2026, 11, 30))
    assert alone.page_date is not None and alone.page_date.year == 2024


def test_date_in_the_url_counts_as_the_pages_date():
    result = extract("steppe-times/2026/03/16/no-date.html")
    assert result.page_date == date(2026, 3, 16)


def test_future_date_on_the_page_is_rejected():
    first_seen = datetime(2026, 3, 19, 12, tzinfo=timezone.utc)
    result = extract("steppe-times/2099/01/01/future-date.html", first_seen=first_seen)
    assert result.ok and result.page_date is None
    assert result.published_at == first_seen and result.date_source == "first_seen"


def test_gallery_without_article_text_is_empty_with_a_reason():
    result = extract("steppe-times/2026/03/17/gallery-only.html")
    assert result.status is ExtractionStatus.EMPTY
    assert result.reason.startswith("no main text found")


@pytest.mark.parametrize("body, content_type, expected", [
    (b"%PDF-1.7\n%binary", "application/pdf", "application/pdf"),
    (b"%PDF-1.4 served with a wrong type", "text/html", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n....", "image/png", "image/png"),
    (b'{"json": true}', "application/json", "application/json"),
])
def test_non_html_responses_are_recorded(body, content_type, expected):
    result = extract_page(body, url=f"{BASE}/file", content_type=content_type)
    assert result.status is ExtractionStatus.NOT_HTML
    assert result.reason == f"not an HTML page: {expected}"


def test_empty_body():
    result = extract_page(b"  \n", url=f"{BASE}/empty", content_type="text/html")
    assert result.status is ExtractionStatus.EMPTY


def test_feed_time_of_day_is_kept_when_it_agrees_with_the_page():
    feed = datetime(2026, 3, 9, 22, 15, tzinfo=timezone.utc)  # already March 10 in Dushanbe
    assert resolve_published(date(2026, 3, 10), feed, None) == (feed, "page+feed")
    republished = datetime(2026, 3, 30, 8, tzinfo=timezone.utc)
    assert resolve_published(date(2026, 3, 10), republished, None) == (
        datetime(2026, 3, 10, tzinfo=timezone.utc), "page")
