"""Past items beyond the feed: news sitemaps, sitemap indexes and paged feed archives, and a
pass over a past window that reads them (the feed alone no longer lists those days)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from httpserver import Item, Reply, rss
from steppewatch.archives import archive_entries, parse_sitemap, sitemap_entries
from steppewatch.config import load_settings
from steppewatch.fetching import HttpClient
from steppewatch.pipeline import FEED_ACCEPT, run_pass
from steppewatch.schema import articles, feed_items
from steppewatch.sources import load_sources
from steppewatch.windows import Window

NOW = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)


def when(day: int, hour: int = 9) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=timezone.utc)


def urlset(entries: list[tuple[str, datetime | None, str | None]], *, news: bool = True) -> bytes:
    rows = []
    for loc, date, title in entries:
        if news and date is not None:
            rows.append(f"<url><loc>{loc}</loc><news:news><news:publication><news:name>Wire</news:name>"
                        f"<news:language>en</news:language></news:publication>"
                        f"<news:publication_date>{date.isoformat()}</news:publication_date>"
                        f"<news:title>{title or ''}</news:title></news:news></url>")
        else:
            lastmod = f"<lastmod>{date.date().isoformat()}</lastmod>" if date else ""
            rows.append(f"<url><loc>{loc}</loc>{lastmod}</url>")
    return ('<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
            'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">' + "".join(rows) + "</urlset>").encode()


def index(children: list[tuple[str, datetime]]) -> bytes:
    rows = "".join(f"<sitemap><loc>{loc}</loc><lastmod>{date.isoformat()}</lastmod></sitemap>"
                   for loc, date in children)
    return ('<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            + rows + "</sitemapindex>").encode()


STORIES = {
    "osh-arrests": ("GKNB detains two in Osh over recruitment for Islamic State",
                    "Officers of the State Committee for National Security detained two men in Osh on Tuesday on "
                    "suspicion of recruiting young people for the Islamic State through closed Telegram groups, the "
                    "committee said. Investigators seized two phones and a laptop during searches in the Kara-Suu "
                    "district, and a court ordered both men held for two months while the case is investigated."),
    "bishkek-budget": ("Bishkek council debates next year's transport budget",
                       "The Bishkek city council spent most of Wednesday's session on next year's transport budget, "
                       "which would add two hundred electric buses and repave the southern ring road. Deputies "
                       "argued over the cost of the new depot, and the vote was moved to the following week after "
                       "the finance committee asked for a revised estimate of the contractor's bid."),
    "naryn-snow": ("Early snow closes the road to Naryn for a day",
                   "Heavy snow closed the Bishkek to Naryn road at the Dolon pass for most of Thursday, and the "
                   "emergencies ministry sent two graders to clear it. Drivers waited for six hours at the "
                   "checkpoint, and lorries carrying coal to the south were allowed through first once the "
                   "road reopened in the evening, the regional administration said."),
}


def page(slug: str) -> bytes:
    title, text = STORIES[slug]
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title></head><body>"
            f"<article><h1>{title}</h1><p>{text}</p><p>{text}</p></article></body></html>").encode()


def test_parse_sitemap_reads_news_dates_lastmod_and_indexes():
    kind, found = parse_sitemap(urlset([("http://x/a", when(20), "A story"), ("http://x/b", None, None)]))
    assert kind == "urlset" and found == [("http://x/a", when(20), "A story"), ("http://x/b", None, None)]
    kind, found = parse_sitemap(urlset([("http://x/c", when(21), None)], news=False))
    assert found == [("http://x/c", datetime(2026, 11, 21, tzinfo=timezone.utc), None)]
    kind, found = parse_sitemap(index([("http://x/sitemap-1.xml", when(22))]))
    assert kind == "index" and found[0][0] == "http://x/sitemap-1.xml"
    with pytest.raises(ValueError, match="not a sitemap"):
        parse_sitemap(b"<html><body>hello</body></html>")


def test_sitemap_index_is_followed_to_the_window_only(site):
    window = Window(when(20, 0), when(22, 0))
    site.add("/sm/index.xml", index([(site.url("/sm/recent.xml"), when(25)), (site.url("/sm/old.xml"), when(1))]))
    site.add("/sm/recent.xml", urlset([(site.url("/a.html"), when(20), "In"), (site.url("/b.html"), when(21), "In"),
                                       (site.url("/c.html"), when(24), "After"), (site.url("/d.html"), when(19), "Before")]))
    site.add("/sm/old.xml", urlset([]))
    with HttpClient(load_settings().http) as client:
        listing = sitemap_entries(client, site.url("/sm/index.xml"), window, now=NOW)
    assert sorted(e.url for e in listing.entries) == [site.url("/a.html"), site.url("/b.html")]
    assert site.hits["/sm/old.xml"] == 0, "a sitemap last changed before the window is not read"
    assert listing.problems == []


def test_a_broken_sitemap_is_a_recorded_problem(site):
    site.add("/sm/broken.xml", Reply(200, b"<html>not a sitemap</html>"))
    site.add("/sm/gone.xml", Reply(404, b"no"))
    window = Window(when(20, 0), when(22, 0))
    with HttpClient(load_settings().http) as client:
        broken = sitemap_entries(client, site.url("/sm/broken.xml"), window, now=NOW)
        gone = sitemap_entries(client, site.url("/sm/gone.xml"), window, now=NOW)
    assert broken.entries == [] and broken.problems[0][0] == "sitemap_malformed"
    assert gone.entries == [] and gone.problems[0][0] == "sitemap_http_error"


def test_paged_archive_is_read_until_it_is_older_than_the_window(site):
    window = Window(when(20, 0), when(22, 0))
    pages = {
        1: [Item("Newest", site.url("/p/1.html"), "p1", when(28)), Item("Newer", site.url("/p/2.html"), "p2", when(25))],
        2: [Item("In one", site.url("/p/3.html"), "p3", when(21)), Item("In two", site.url("/p/4.html"), "p4", when(20))],
        3: [Item("Older", site.url("/p/5.html"), "p5", when(15))],
    }
    for number, items in pages.items():
        site.add(f"/archive/feed/?paged={number}", rss(items))
    site.add("/archive/feed/?paged=4", Reply(404, b"no such page"))
    with HttpClient(load_settings().http) as client:
        listing = archive_entries(client, site.url("/archive/feed/?paged={page}"), window, now=NOW, accept=FEED_ACCEPT)
    assert sorted(e.guid for e in listing.entries) == ["p3", "p4"]
    assert site.hits["/archive/feed/?paged=3"] == 1 and site.hits["/archive/feed/?paged=4"] == 0
    assert listing.problems == []


def test_a_pass_over_a_past_window_reads_the_sitemap_and_the_archive(site, tmp_path, warehouse):
    # the feed has moved on: it lists only this week's story; the past days are in the sitemap and archive
    site.add("/wire/feed", rss([Item(STORIES["naryn-snow"][0], site.url("/wire/naryn-snow.html"), "w3", when(28))]))
    site.add("/wire/news-sitemap.xml", urlset([(site.url("/wire/osh-arrests.html"), when(20), STORIES["osh-arrests"][0]),
                                               (site.url("/wire/naryn-snow.html"), when(28), None)]))
    site.add("/wire/feed/?paged=1", rss([Item(STORIES["naryn-snow"][0], site.url("/wire/naryn-snow.html"), "w3",
                                              when(28))]))
    site.add("/wire/feed/?paged=2", rss([Item(STORIES["bishkek-budget"][0], site.url("/wire/bishkek-budget.html"),
                                              "w2", when(21))]))
    site.add("/wire/feed/?paged=3", Reply(404, b"no"))
    for slug in STORIES:
        site.add(f"/wire/{slug}.html", page(slug))
    sources_file = tmp_path / "sources.yaml"
    sources_file.write_text(
        f"sources:\n  - name: Wire\n    kind: news\n    feed: {site.url('/wire/feed')}\n    homepage: {site.base}/\n"
        f"    language: en\n    sitemap: {site.url('/wire/news-sitemap.xml')}\n"
        f"    archive: {site.url('/wire/feed/?paged={page}')}\n", encoding="utf-8")
    settings = load_settings().with_overrides(sources_path=sources_file)

    # the last 24 hours: the feed is enough, the sitemap is not read
    run_pass(settings, load_sources(sources_file), Window.last_hours(24), warehouse=warehouse)
    assert site.hits["/wire/news-sitemap.xml"] == 0 and site.hits["/wire/feed/?paged=1"] == 0

    report = run_pass(settings, load_sources(sources_file), Window(when(20, 0), when(22, 0)), warehouse=warehouse)
    (wire,) = report.sources
    assert wire.status == "ok" and wire.items_in_window == 2 and wire.fetched == 2
    with warehouse.read() as conn:
        stored = {row.url.rsplit("/", 1)[1]: row for row in conn.execute(sa.select(articles))}
        guids = set(conn.execute(sa.select(feed_items.c.guid)).scalars())
    # the two past stories; the story of the 28th is in no window yet
    assert set(stored) == {"osh-arrests.html", "bishkek-budget.html"}
    assert stored["osh-arrests.html"].relevant and not stored["bishkek-budget.html"].relevant
    assert site.url("/wire/osh-arrests.html") in guids and "w2" in guids
    # the archive was read to its end (page 3 does not exist)
    assert site.hits["/wire/feed/?paged=2"] == 1 and site.hits["/wire/feed/?paged=3"] == 1

    # and a rerun of that past window adds nothing twice
    again = run_pass(settings, load_sources(sources_file), Window(when(20, 0), when(22, 0)), warehouse=warehouse)
    assert again.sources[0].items_new == 0 and again.sources[0].fetched == 0
