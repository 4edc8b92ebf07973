"""A warehouse connection dropped in the middle of a batch: nothing half-written, and the
next run completes the work."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from httpserver import Item, rss
from steppewatch.config import load_settings
from steppewatch.pipeline import run_pass
from steppewatch.schema import article_urls, articles, feed_items, pages
from steppewatch.sources import load_sources
from steppewatch.windows import Window
from world import BRIEFS, brief_page, day


@pytest.fixture
def briefs(site, tmp_path):
    site.add("/briefs/feed", rss([Item(BRIEFS[p][0], site.url(p), p, day(12 + n)) for n, p in enumerate(BRIEFS)]))
    for path in BRIEFS:
        site.add(path, brief_page(site.base, path))
    sources_file = tmp_path / "sources.yaml"
    sources_file.write_text(f"sources:\n  - name: Brief Wire\n    kind: news\n    feed: {site.url('/briefs/feed')}\n"
                            f"    homepage: {site.base}/\n    language: en\n")
    return sources_file


def drop_connection_on(engine: sa.Engine, *, statement_prefix: str, occurrence: int) -> dict:
    """Cut the warehouse connection the n-th time a statement starts with the prefix."""
    state = {"seen": 0, "dropped": False}

    @sa.event.listens_for(engine, "before_cursor_execute")
    def maybe_drop(conn, cursor, statement, parameters, context, executemany):
        if state["dropped"] or not statement.lstrip().upper().startswith(statement_prefix):
            return
        state["seen"] += 1
        if state["seen"] < occurrence:
            return
        state["dropped"] = True
        dbapi = cursor.connection
        if engine.dialect.name == "postgresql":
            # the server ends the session, as a restart or a network cut would
            admin = sa.create_engine(engine.url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
            with admin.connect() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": dbapi.get_backend_pid()})
            admin.dispose()
        else:
            dbapi.close()

    return state


def articles_with_everything(warehouse) -> list[dict]:
    with warehouse.read() as conn:
        return [dict(r) for r in conn.execute(sa.select(articles.c.url, articles.c.text, articles.c.title)
                                               .order_by(articles.c.url)).mappings()]


def assert_nothing_half_written(warehouse) -> None:
    with warehouse.read() as conn:
        orphan_articles = conn.execute(
            sa.select(articles.c.url).where(~sa.exists().where(article_urls.c.url == articles.c.url))).all()
        unlinked_pages = conn.execute(
            sa.select(pages.c.url).where(pages.c.extract_status == "ok", pages.c.article_id.is_(None))).all()
        items_without_article = conn.execute(
            sa.select(feed_items.c.url).where(
                feed_items.c.article_id.is_(None),
                sa.exists().where(article_urls.c.url == feed_items.c.url))).all()
    assert orphan_articles == [] and unlinked_pages == [] and items_without_article == []


def test_dropped_connection_mid_batch_leaves_no_partial_article(briefs, warehouse):
    settings = load_settings().with_overrides(sources_path=briefs)
    window = Window(day(12, 0), day(16, 0))
    state = drop_connection_on(warehouse.engine, statement_prefix="INSERT INTO ARTICLE_URLS", occurrence=2)

    first = run_pass(settings, load_sources(briefs), window, warehouse=warehouse)
    assert state["dropped"]
    report = first.sources[0]
    assert report.status == "failed" and "warehouse error" in report.error
    assert report.fetched == 3
    # the batch was one transaction: the article written before the drop is gone too
    assert articles_with_everything(warehouse) == []
    assert_nothing_half_written(warehouse)
    with warehouse.read() as conn:
        statuses = conn.execute(sa.select(pages.c.extract_status)).scalars().all()
    assert statuses == ["pending"] * 3, "the stored pages wait for the next run"

    second = run_pass(settings, load_sources(briefs), window, warehouse=warehouse)
    assert second.sources[0].status == "ok" and second.sources[0].extracted == 3
    assert second.sources[0].fetched == 0, "the next run needs no network for the stored pages"
    stored = articles_with_everything(warehouse)
    assert sorted(r["title"] for r in stored) == sorted(title for title, _ in BRIEFS.values())
    assert_nothing_half_written(warehouse)
