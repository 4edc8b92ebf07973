"""Whole passes over the loopback world, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from httpserver import Item, Reply, rss
from steppewatch.config import load_settings
from steppewatch.pipeline import run_pass
from steppewatch.schema import article_urls, articles, feed_items, feed_state, pages, problems
from steppewatch.sources import load_sources
from steppewatch.windows import Window
from world import EXPECTED_ARTICLES, FAILING_FEEDS, GOOD_SOURCES, day, run

def rows(warehouse, query):
    with warehouse.read() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def article_paths(warehouse, base):
    return {r["url"][len(base):] for r in rows(warehouse, sa.select(articles.c.url))}


def test_full_pass_stores_each_story_once_and_records_every_problem(world, warehouse):
    report = run(world, warehouse)
    by_source = {s.source: s for s in report.sources}
    base = world.server.base

    # every good source completed; each bad feed failed alone, with its reason
    for name in GOOD_SOURCES:
        assert by_source[name].status in {"ok", "partial"}, (name, by_source[name].error)
    for name, reason_key in FAILING_FEEDS.items():
        assert reason_key in by_source[name].reasons, (name, by_source[name].reasons)
        if name != "Broken XML":
            assert by_source[name].status == "failed" and by_source[name].error
    # a malformed feed still yields what can be read: the good item, and the broken one without a link
    assert by_source["Broken XML"].items_seen == 2 and "discover/bad_entry" in by_source["Broken XML"].reasons

    # one article per story, under its canonical URL, tracking parameters gone
    assert article_paths(warehouse, base) == EXPECTED_ARTICLES

    # the print version and the short link are aliases of the border-talks story
    border = f"{base}/ferghana-wire/news/2026-03-12-border-talks.html"
    aliases = rows(warehouse, sa.select(article_urls.c.url, articles.c.url.label("article"))
                   .join(articles, articles.c.id == article_urls.c.article_id))
    alias_of = {a["url"]: a["article"] for a in aliases}
    assert alias_of[f"{base}/ferghana-wire/news/2026-03-12-border-talks-print.html"] == border
    assert alias_of[f"{base}/ferghana-wire/s/bt"] == border

    # the syndicated copy is kept, linked to the first copy
    stored = {r["url"][len(base):]: r for r in rows(warehouse, sa.select(articles))}
    original = stored["/steppe-times/2026/03/10/dushanbe-arrests.html"]
    copy = stored["/caspian-post/2026/03/13/syndicated-dushanbe-arrests.html"]
    assert copy["duplicate_of"] == original["id"] and copy["duplicate_similarity"] >= 0.5
    assert original["duplicate_of"] is None
    assert sum(1 for r in stored.values() if r["duplicate_of"] is not None) == 1
    assert report.totals()["duplicates"] == 1

    # dates: the page's own date; the URL's date; a rejected future date falls back to first sight
    assert original["published_at"] == day(10) and original["published_at_source"] == "page+feed"
    assert stored["/steppe-times/2026/03/16/no-date.html"]["published_at"].date().isoformat() == "2026-03-16"
    future = stored["/steppe-times/2099/01/01/future-date.html"]
    assert future["published_at"].year == datetime.now(timezone.utc).year
    assert future["published_at_source"] == "first_seen"
    assert stored["/azattyk-ru/2026/03/15/vodnye-resursy-cp1251.html"]["language"] == "ru"
    assert "Рогун" in stored["/azattyk-ru/2026/03/15/vodnye-resursy-cp1251.html"]["text"]
    assert all(r["text"] and r["word_count"] > 80 and len(r["content_hash"]) == 64 for r in stored.values())
    assert stored["/analysis-desk/reports/jihadist-networks-central-asia.html"]["guid"] == "ad-1"

    # the bad items each left a recorded reason
    recorded = rows(warehouse, sa.select(problems.c.source, problems.c.stage, problems.c.kind, problems.c.url,
                                         problems.c.reason))
    kinds = {(p["source"], p["stage"], p["kind"]) for p in recorded}
    assert ("Steppe Times", "fetch", "http_error") in kinds  # the removed story (404)
    assert ("Steppe Times", "extract", "not_html") in kinds  # the PDF
    assert ("Steppe Times", "extract", "empty") in kinds  # the gallery
    assert ("Steppe Times", "discover", "bad_entry") in kinds  # the entry without a link
    assert ("Steppe Times", "discover", "feed_date") in kinds  # missing and future feed dates
    assert ("Caspian Post", "fetch", "too_large") in kinds  # the gzip bomb
    assert ("Azattyk RU", "fetch", "blocked_address") in kinds  # the redirect to 169.254.169.254
    for name, reason_key in FAILING_FEEDS.items():
        stage, kind = reason_key.split("/")
        assert (name, stage, kind) in kinds
    assert all(p["reason"] for p in recorded)

    page_status = {r["url"][len(base):]: r for r in rows(warehouse, sa.select(pages))}
    assert page_status["/steppe-times/2026/03/17/gallery-only.html"]["extract_status"] == "empty"
    assert page_status["/steppe-times/files/annual-report.pdf"]["extract_status"] == "not_html"
    flaky = page_status["/azattyk-ru/2026/03/15/vodnye-resursy-cp1251.html"]
    assert flaky["fetch_status"] == "ok" and world.server.hits["/azattyk-ru/2026/03/15/vodnye-resursy-cp1251.html"] == 2

    # per-feed state: validators and health
    states = {r["source"]: r for r in rows(warehouse, sa.select(feed_state))}
    assert states["Steppe Times"]["consecutive_failures"] == 0 and states["Steppe Times"]["last_success_at"]
    assert states["Steppe Times"]["body_hash"] and states["Steppe Times"]["feed_format"] == "rss20"
    assert states["Gone Feed"]["consecutive_failures"] == 1 and "410" in states["Gone Feed"]["last_error"]
    assert states["Broken XML"]["last_problem"].startswith("malformed feed")

    # the border story's print version and short link are pages of their own, merged into one article
    assert sum(r["extract_status"] == "ok" for r in page_status.values()) == len(EXPECTED_ARTICLES) + 2
    assert report.totals()["extracted"] >= len(EXPECTED_ARTICLES) + 2
    # fetched once though linked three times
    assert world.server.hits["/steppe-times/2026/03/10/dushanbe-arrests.html?utm_source=rss&utm_medium=feed"] \
        + world.server.hits["/steppe-times/2026/03/10/dushanbe-arrests.html?ref=caspian"] \
        + world.server.hits["/steppe-times/2026/03/10/dushanbe-arrests.html"] == 1


def snapshot(warehouse):
    """Everything a rerun must leave as it is."""
    return {
        "articles": rows(warehouse, sa.select(articles).order_by(articles.c.id)),
        "article_urls": rows(warehouse, sa.select(article_urls).order_by(article_urls.c.url)),
        "feed_items": rows(warehouse, sa.select(feed_items).order_by(feed_items.c.id)),
        "ok_pages": rows(warehouse, sa.select(pages).where(pages.c.fetch_status == "ok").order_by(pages.c.id)),
    }


def test_rerun_of_the_same_window_changes_nothing(world, warehouse):
    run(world, warehouse)
    before = snapshot(warehouse)
    stored_paths = {r["requested_url"][len(world.server.base):] for r in before["ok_pages"]}
    page_hits = {p: world.server.hits[p] for p in stored_paths}
    second = run(world, warehouse)
    assert snapshot(warehouse) == before
    assert second.totals()["items_new"] == 0 and second.totals()["fetched"] == 0
    # the rerun asked the feeds again, but no stored page
    assert {p: world.server.hits[p] for p in stored_paths} == page_hits


def test_reprocess_reextracts_without_the_network(world, warehouse):
    run(world, warehouse)
    before = snapshot(warehouse)
    page_hits = {p: n for p, n in world.server.hits.items() if p.endswith(".html")}
    run(world, warehouse, reprocess=True)
    assert {p: n for p, n in world.server.hits.items() if p.endswith(".html")} == page_hits
    assert snapshot(warehouse)["articles"] == before["articles"], "same extractor, same rows"


def test_window_selects_items_by_feed_date(world, warehouse):
    report = run(world, warehouse, window=Window(day(10, 0), day(12, 0)))
    base = world.server.base
    assert article_paths(warehouse, base) == {
        "/steppe-times/2026/03/10/dushanbe-arrests.html",
        "/steppe-times/2026/03/11/cotton-harvest.html",
    }
    # all feed items are stored for later windows, only the window's pages were fetched
    with warehouse.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(feed_items)).scalar() > 20
    assert world.server.hits["/steppe-times/2026/03/18/kazakh-aktobe-trial.html"] == 0
    assert {s.source: s.items_in_window for s in report.sources}["Steppe Times"] == 3
    # the next day's run picks up the next day's items from what is already stored
    run(world, warehouse, window=Window(day(12, 0), day(13, 0)))
    assert "/ferghana-wire/news/2026-03-12-border-talks.html" in article_paths(warehouse, base)


def test_failing_feed_is_retried_on_a_later_run(site, tmp_path, warehouse, monkeypatch):
    monkeypatch.setenv("STEPPEWATCH_RETRIES", "0")
    feed = site.url("/later/rss")
    sources_file = tmp_path / "sources.yaml"
    sources_file.write_text(f"sources:\n  - name: Later\n    kind: news\n    feed: {feed}\n"
                            f"    homepage: {site.base}/\n    language: en\n")
    site.add("/later/rss", Reply(503, b"down for maintenance"))
    settings = load_settings().with_overrides(sources_path=sources_file)
    window = Window(day(1), day(31))
    first = run_pass(settings, load_sources(sources_file), window, warehouse=warehouse)
    assert first.sources[0].status == "failed" and "503" in first.sources[0].error
    second = run_pass(settings, load_sources(sources_file), window, warehouse=warehouse)
    assert second.sources[0].status == "failed"
    with warehouse.read() as conn:
        assert conn.execute(sa.select(feed_state.c.consecutive_failures)).scalar() == 2

    site.add("/later/rss", rss([Item("Dushanbe flood drill", site.url("/briefs/dushanbe-flood-drill.html"),
                                     "l-1", day(14))]))
    from world import brief_page

    site.add("/briefs/dushanbe-flood-drill.html", brief_page(site.base, "/briefs/dushanbe-flood-drill.html"))
    third = run_pass(settings, load_sources(sources_file), window, warehouse=warehouse)
    assert third.sources[0].status == "ok" and third.sources[0].extracted == 1
    with warehouse.read() as conn:
        state = conn.execute(sa.select(feed_state)).mappings().one()
    assert state["consecutive_failures"] == 0 and state["last_error"] is None


def test_transient_page_failure_is_fetched_on_the_next_run(site, tmp_path, warehouse, monkeypatch):
    from world import brief_page

    monkeypatch.setenv("STEPPEWATCH_RETRIES", "0")
    path = "/briefs/osh-checkpoint.html"
    site.add("/b/rss", rss([Item("Osh checkpoint", site.url(path), "o-1", day(12))]))
    site.add(path, Reply(503, b"busy"))
    sources_file = tmp_path / "sources.yaml"
    sources_file.write_text(f"sources:\n  - name: B\n    kind: news\n    feed: {site.url('/b/rss')}\n"
                            f"    homepage: {site.base}/\n    language: en\n")
    settings = load_settings().with_overrides(sources_path=sources_file)
    # the next run covers another day: the failed page is in the backlog, not the window
    first = run_pass(settings, load_sources(sources_file), Window(day(12, 0), day(13, 0)), warehouse=warehouse)
    assert first.sources[0].fetched == 0 and "fetch/http_error" in first.sources[0].reasons
    site.add(path, brief_page(site.base, path))
    second = run_pass(settings, load_sources(sources_file), Window(day(13, 0), day(14, 0)), warehouse=warehouse)
    assert second.sources[0].fetched == 1 and second.sources[0].extracted == 1
    with warehouse.read() as conn:
        page = conn.execute(sa.select(pages)).mappings().one()
    assert page["attempts"] == 2 and page["fetch_status"] == "ok"


def test_permanent_page_failure_is_not_refetched(site, tmp_path, warehouse):
    site.add("/p/rss", rss([Item("Removed", site.url("/p/removed.html"), "r-1", day(12))]))
    site.add("/p/removed.html", Reply(404, b"not here"))
    sources_file = tmp_path / "sources.yaml"
    sources_file.write_text(f"sources:\n  - name: P\n    kind: news\n    feed: {site.url('/p/rss')}\n"
                            f"    homepage: {site.base}/\n    language: en\n")
    settings = load_settings().with_overrides(sources_path=sources_file)
    for _ in range(2):
        run_pass(settings, load_sources(sources_file), Window(day(12, 0), day(13, 0)), warehouse=warehouse)
    assert site.hits["/p/removed.html"] == 1


def test_conditional_get_and_unchanged_body_skip_parsing(site, tmp_path, warehouse):
    body = rss([Item("Almaty metro", site.url("/briefs/almaty-metro.html"), "m-1", day(12))])
    from world import brief_page

    site.add("/briefs/almaty-metro.html", brief_page(site.base, "/briefs/almaty-metro.html"))
    site.add("/etag/rss", lambda r: Reply(304) if r.headers.get("If-None-Match") == '"abc"'
             else Reply(200, body, {"ETag": '"abc"'}))
    # a server whose validators never match (stale): the body hash catches the repeat
    site.add("/stale/rss", Reply(200, body.replace(b"m-1", b"s-1"), {"ETag": '"changes-every-time"'}))
    sources_file = tmp_path / "sources.yaml"
    sources_file.write_text(
        f"sources:\n  - name: E\n    kind: news\n    feed: {site.url('/etag/rss')}\n    homepage: {site.base}/\n"
        f"    language: en\n  - name: S\n    kind: news\n    feed: {site.url('/stale/rss')}\n"
        f"    homepage: {site.base}/\n    language: en\n")
    settings = load_settings().with_overrides(sources_path=sources_file)
    window = Window(day(12, 0), day(13, 0))
    run_pass(settings, load_sources(sources_file), window, warehouse=warehouse)
    second = {s.source: s for s in run_pass(settings, load_sources(sources_file), window, warehouse=warehouse).sources}
    assert second["E"].feed_status == "not_modified" and second["S"].feed_status == "unchanged"
    assert second["E"].items_in_window == 1 and second["S"].items_in_window == 1
    assert site.request_headers["/etag/rss"][1]["If-None-Match"] == '"abc"'
