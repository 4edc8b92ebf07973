"""Reads and writes of the pipeline stages: each write is one short transaction.

Keys make every write idempotent: sources by name, feed items by (source, GUID), pages by
the canonical form of the requested URL, articles by their canonical URL (with every
other URL they are known under in ``article_urls``).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import fingerprint
from .extraction import EXTRACTOR_VERSION, ExtractedArticle
from .feeds import FeedEntry
from .fetching import FetchResult
from .schema import (
    article_entities,
    article_urls,
    articles,
    entities,
    feed_items,
    feed_state,
    mentions,
    pages,
    problems,
    runs,
    source_runs,
    sources,
)
from .sources import Source
from .urls import canonical_url, same_site
from .warehouse import Warehouse, upsert
from .windows import Window

LOGGER = logging.getLogger(__name__)

# Raw bodies are compressed with zlib at this level: on the corpus, 20% of the size at 1.8 ms a page
# (level 6: 18% at 4 ms).
BODY_COMPRESSION_LEVEL = 3
# Near-duplicates are looked for among articles published this close to the new one.
NEAR_DUPLICATE_SPAN = timedelta(days=14)
_KEPT_HEADERS = ("content-type", "content-language", "last-modified", "etag", "date", "content-encoding")


# -- sources and feed state -----------------------------------------------------------


def sync_sources(warehouse: Warehouse, declared: Sequence[Source], now: datetime) -> None:
    """Mirror the sources file into the ``sources`` table (upsert; nothing is deleted)."""
    rows = [
        {
            "name": s.name, "kind": s.kind.value, "feed_url": s.feed, "homepage": s.homepage,
            "language": s.language, "sitemap_url": s.sitemap, "archive_url": s.archive,
            "country": s.country, "enabled": s.enabled, "updated_at": now,
        }
        for s in declared
    ]
    changing = ["kind", "feed_url", "homepage", "language", "sitemap_url", "archive_url", "country", "enabled"]

    def changed(table: sa.Table, excluded) -> sa.ColumnElement[bool]:
        return sa.or_(*(table.c[name].is_distinct_from(excluded[name]) for name in changing))

    warehouse.transaction(
        lambda conn: upsert(conn, sources, rows, keys=["name"], update=[*changing, "updated_at"], where=changed)
    )


@dataclass
class FeedState:
    source: str
    feed_url: str
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    feed_format: str | None = None
    last_status: str | None = None
    last_http_status: int | None = None
    last_error: str | None = None
    last_problem: str | None = None
    consecutive_failures: int = 0
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    last_change_at: datetime | None = None
    last_item_count: int | None = None


def load_feed_state(conn: Connection, source: str, feed_url: str) -> FeedState:
    row = conn.execute(
        sa.select(feed_state).where(feed_state.c.source == source, feed_state.c.feed_url == feed_url)
    ).mappings().first()
    return FeedState(**row) if row else FeedState(source=source, feed_url=feed_url)


def save_feed_state(conn: Connection, state: FeedState) -> None:
    row = dict(vars(state))
    columns = [name for name in row if name not in {"source", "feed_url"}]
    upsert(conn, feed_state, [row], keys=["source", "feed_url"], update=columns)


# -- feed items -----------------------------------------------------------------------


@dataclass(frozen=True)
class NewItem:
    guid: str
    url: str | None
    problem: str | None


def record_feed_items(
    conn: Connection, source: str, entries: Sequence[FeedEntry], now: datetime
) -> list[NewItem]:
    """Store a feed's entries; return the ones never seen before.

    A new entry without a feed date is placed in the window at its first sight; later
    sightings never move it, so reruns select the same items.
    """
    if not entries:
        return []
    guids = [e.guid for e in entries]
    known: dict[str, dict] = {}
    for chunk in _chunks(guids, 500):
        for row in conn.execute(
            sa.select(feed_items.c.guid, feed_items.c.feed_published_at, feed_items.c.window_at)
            .where(feed_items.c.source == source, feed_items.c.guid.in_(chunk))
        ).mappings():
            known[row["guid"]] = dict(row)
    inserts, updates, new = [], [], []
    for entry in entries:
        url = canonical_url(entry.url) if entry.url else None
        problem = None
        if entry.url is None:
            problem = "entry without a link"
        elif url is None:
            problem = f"unusable link {entry.url!r}"
        if entry.guid in known:
            updates.append({
                "b_guid": entry.guid, "link": entry.url, "url": url, "title": entry.title,
                "last_seen_at": now,
                "feed_published_at": entry.published or known[entry.guid]["feed_published_at"],
                "window_at": entry.published or known[entry.guid]["window_at"],
            })
            continue
        inserts.append({
            "source": source, "guid": entry.guid, "link": entry.url, "url": url, "title": entry.title,
            "feed_published_at": entry.published, "date_problem": entry.date_problem,
            "first_seen_at": now, "last_seen_at": now, "window_at": entry.published or now,
            "problem": problem,
        })
        new.append(NewItem(entry.guid, url, problem))
    # a feed may repeat an entry that courlan maps to another's URL: both items stay
    upsert(conn, feed_items, inserts, keys=["source", "guid"])
    if updates:
        conn.execute(
            feed_items.update()
            .where(feed_items.c.source == source, feed_items.c.guid == sa.bindparam("b_guid"))
            .values(
                link=sa.bindparam("link"), url=sa.bindparam("url"), title=sa.bindparam("title"),
                last_seen_at=sa.bindparam("last_seen_at"),
                feed_published_at=sa.bindparam("feed_published_at"), window_at=sa.bindparam("window_at"),
            ),
            updates,
        )
    return new


def count_items_in_window(conn: Connection, source: str, window: Window) -> int:
    return conn.execute(
        sa.select(sa.func.count()).select_from(feed_items).where(
            feed_items.c.source == source,
            feed_items.c.window_at >= window.start,
            feed_items.c.window_at < window.end,
        )
    ).scalar_one()


@dataclass(frozen=True)
class ItemToFetch:
    url: str
    link: str
    in_window: bool
    attempts: int


def items_to_fetch(
    conn: Connection,
    source: str,
    window: Window,
    *,
    now: datetime,
    limit: int,
    max_attempts: int,
    backlog_days: int,
) -> list[ItemToFetch]:
    """Items whose page is not stored yet: the window's, then earlier transient failures.

    An item is skipped when its URL is already known as an article (under any of its
    URLs) or its page failed permanently (404, not HTML, ...).
    """
    known_as_article = sa.exists().where(article_urls.c.url == feed_items.c.url)
    in_window = sa.and_(feed_items.c.window_at >= window.start, feed_items.c.window_at < window.end)
    backlog = sa.and_(
        feed_items.c.first_seen_at >= now - timedelta(days=backlog_days),
        pages.c.id.is_not(None),
        _claimable(now, max_attempts),
    )
    query = (
        sa.select(
            feed_items.c.url,
            sa.func.min(feed_items.c.link).label("link"),
            sa.func.max(sa.case((in_window, 1), else_=0)).label("in_window"),
            sa.func.coalesce(sa.func.max(pages.c.attempts), 0).label("attempts"),
            sa.func.max(feed_items.c.window_at).label("newest"),
        )
        .select_from(feed_items.outerjoin(pages, pages.c.url == feed_items.c.url))
        .where(
            feed_items.c.source == source,
            feed_items.c.url.is_not(None),
            feed_items.c.article_id.is_(None),
            ~known_as_article,
            sa.or_(sa.and_(in_window, sa.or_(pages.c.id.is_(None), _claimable(now, max_attempts))), backlog),
        )
        .group_by(feed_items.c.url)
        .order_by(sa.desc("in_window"), sa.desc("newest"))
        .limit(limit)
    )
    return [ItemToFetch(r.url, r.link, bool(r.in_window), r.attempts) for r in conn.execute(query)]


# a claim older than this belongs to a worker that died: the page may be fetched again
STALE_CLAIM = timedelta(hours=1)


def _claimable(now: datetime, max_attempts: int) -> sa.ColumnElement[bool]:
    """A stored page that may be fetched (again): a transient failure, or an abandoned claim."""
    return sa.or_(
        sa.and_(pages.c.fetch_status.not_in(["ok", "fetching"]), pages.c.transient.is_(True),
                pages.c.attempts < max_attempts),
        sa.and_(pages.c.fetch_status == "fetching", pages.c.claimed_at < now - STALE_CLAIM),
    )


def claim_page(conn: Connection, *, url: str, link: str, source: str, now: datetime, max_attempts: int) -> bool:
    """Mark the page as being fetched by this worker; False when another worker has it or
    it needs no fetch any more. The claim and the check are one statement, so two sources
    that link the same story never fetch it twice."""
    inserted = conn.execute(
        _insert_for(conn)(pages).values(
            url=url, source=source, requested_url=link, fetch_status="fetching", attempts=0,
            first_attempt_at=now, claimed_at=now, extract_status="not_fetched",
        ).on_conflict_do_nothing(index_elements=["url"])
    )
    if inserted.rowcount == 1:
        return True
    updated = conn.execute(
        pages.update().where(pages.c.url == url, _claimable(now, max_attempts))
        .values(fetch_status="fetching", claimed_at=now, source=source, requested_url=link)
    )
    return updated.rowcount == 1


def _insert_for(conn: Connection):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


# -- pages ----------------------------------------------------------------------------


def save_page(conn: Connection, url: str, result: FetchResult, now: datetime) -> None:
    """Store the outcome of a claimed fetch; a success keeps the body compressed."""
    body = result.body if result.ok else None
    headers = {k: v for k, v in result.headers.items() if k in _KEPT_HEADERS}
    conn.execute(pages.update().where(pages.c.url == url).values(
        final_url=result.final_url,
        fetch_status=result.status.value,
        http_status=result.http_status,
        content_type=result.headers.get("content-type"),
        headers=headers,
        body_gz=zlib.compress(body, BODY_COMPRESSION_LEVEL) if body is not None else None,
        body_bytes=len(body) if body is not None else None,
        reason=result.reason,
        transient=result.transient,
        attempts=pages.c.attempts + 1,
        claimed_at=None,
        fetched_at=now if result.ok else None,
        extract_status="pending" if result.ok else "not_fetched",
        extract_reason=None,
    ))


@dataclass
class StoredPage:
    id: int
    url: str
    final_url: str | None
    content_type: str | None
    body: bytes
    source: str
    guid: str | None
    feed_published_at: datetime | None
    first_seen_at: datetime | None


def pages_to_extract(conn: Connection, source: str, window: Window, *, reprocess: bool) -> list[int]:
    """Ids of the source's fetched pages to extract: every pending one (a crashed run's
    too), and with ``reprocess`` every page of the window's items again."""
    wanted = pages.c.extract_status == "pending"
    if reprocess:
        in_window = sa.exists().where(
            feed_items.c.url == pages.c.url,
            feed_items.c.window_at >= window.start,
            feed_items.c.window_at < window.end,
        )
        wanted = sa.or_(wanted, in_window)
    query = sa.select(pages.c.id).where(pages.c.source == source, pages.c.fetch_status == "ok", wanted)
    return list(conn.execute(query.order_by(pages.c.id)).scalars())


def load_pages(conn: Connection, ids: Sequence[int]) -> list[StoredPage]:
    """Pages with their bodies decompressed, each with the earliest feed item of its source."""
    item = (
        sa.select(
            feed_items.c.guid, feed_items.c.feed_published_at, feed_items.c.first_seen_at,
            sa.func.row_number().over(
                partition_by=(feed_items.c.source, feed_items.c.url),
                order_by=(feed_items.c.first_seen_at, feed_items.c.id),
            ).label("rank"),
            feed_items.c.url, feed_items.c.source,
        ).subquery()
    )
    rows = conn.execute(
        sa.select(pages.c.id, pages.c.url, pages.c.source, pages.c.final_url, pages.c.content_type, pages.c.body_gz,
                  item.c.guid, item.c.feed_published_at, item.c.first_seen_at)
        .select_from(pages.outerjoin(item, sa.and_(item.c.url == pages.c.url, item.c.source == pages.c.source,
                                                   item.c.rank == 1)))
        .where(pages.c.id.in_(list(ids)))
        .order_by(pages.c.id)
    )
    return [
        StoredPage(
            id=row.id, url=row.url, final_url=row.final_url, content_type=row.content_type,
            body=zlib.decompress(row.body_gz) if row.body_gz else b"", source=row.source, guid=row.guid,
            feed_published_at=row.feed_published_at, first_seen_at=row.first_seen_at,
        )
        for row in rows
    ]


# -- articles -------------------------------------------------------------------------


def article_key(page: StoredPage, extracted: ExtractedArticle) -> str:
    """The URL an article is stored under: rel=canonical on the same site, else the
    final URL after redirects, else the requested URL's canonical form."""
    final = canonical_url(page.final_url) if page.final_url else None
    base = page.final_url or page.url
    declared = canonical_url(extracted.canonical_url, base) if extracted.canonical_url else None
    if declared and same_site(declared, base):
        return declared
    return final or page.url


@dataclass
class WriteOutcome:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    duplicates: int = 0


_ARTICLE_CONTENT = (
    "title", "author", "published_at", "published_at_source", "feed_published_at", "language", "text",
    "description", "sitename", "word_count", "content_hash", "minhash", "extractor_version",
)


def near_duplicate_index(conn: Connection, around: Iterable[datetime]) -> fingerprint.NearDuplicateIndex:
    """Originals (articles that are not copies) published near the given times."""
    moments = [m for m in around if m is not None]
    index = fingerprint.NearDuplicateIndex()
    if not moments:
        return index
    query = sa.select(articles.c.id, articles.c.minhash).where(
        articles.c.duplicate_of.is_(None),
        articles.c.minhash.is_not(None),
        articles.c.published_at >= min(moments) - NEAR_DUPLICATE_SPAN,
        articles.c.published_at <= max(moments) + NEAR_DUPLICATE_SPAN,
    ).order_by(articles.c.id)
    for row in conn.execute(query):
        index.add(row.id, row.minhash)
    return index


def _page_rank(page_id: int, url: str, final_url: str | None, key: str) -> tuple[int, int]:
    """Lower is better: the article's own page, then the oldest page."""
    own = key in {url, canonical_url(final_url) if final_url else None}
    return (0 if own else 1, page_id)


def _better_content_page(conn: Connection, page: StoredPage, key: str, current_id: int | None) -> bool:
    """Whether ``page`` should supply the article's text instead of the current page.

    A story reached through a print version and a short link stays one article, with
    the text of its own page whichever order the pages come in.
    """
    if current_id is None or current_id == page.id:
        return True
    current = conn.execute(sa.select(pages.c.id, pages.c.url, pages.c.final_url).where(pages.c.id == current_id)).first()
    if current is None:
        return True
    return _page_rank(page.id, page.url, page.final_url, key) < _page_rank(current.id, current.url, current.final_url, key)


def _link_near_duplicate(
    conn: Connection, index: fingerprint.NearDuplicateIndex, article_id: int, extracted: ExtractedArticle
) -> bool:
    """Link a new article to the first copy of its story; True when it is a copy.

    When the new article was published before the stored original (a backfill reaching an
    older copy), it becomes the original and the group points to it instead.
    """
    if not extracted.signature:
        return False
    match = index.best_match(extracted.signature, exclude=article_id)
    if match is None:
        index.add(article_id, extracted.signature)
        return False
    original_id, score = match
    original_published = conn.execute(
        sa.select(articles.c.published_at).where(articles.c.id == original_id)).scalar()
    if extracted.published_at and original_published and extracted.published_at < original_published:
        conn.execute(articles.update().where(
            sa.or_(articles.c.id == original_id, articles.c.duplicate_of == original_id))
            .values(duplicate_of=article_id))
        conn.execute(articles.update().where(articles.c.id == original_id)
                     .values(duplicate_similarity=round(score, 3)))
        index.remove(original_id)
        index.add(article_id, extracted.signature)
        return True
    conn.execute(articles.update().where(articles.c.id == article_id)
                 .values(duplicate_of=original_id, duplicate_similarity=round(score, 3)))
    return True


def write_extractions(
    conn: Connection,
    batch: Sequence[tuple[StoredPage, ExtractedArticle]],
    now: datetime,
    run_id: int | None,
) -> WriteOutcome:
    """Write one batch of extraction results; the caller wraps it in one transaction.

    An article, every URL it is known under, its feed items and its page's status are
    written together, so an interrupted batch leaves no half-written article.
    """
    outcome = WriteOutcome()
    index = near_duplicate_index(conn, (e.published_at for _, e in batch if e.ok))
    # oldest first, so that within a batch the first copy of a story becomes the original
    batch = sorted(batch, key=lambda pair: (pair[1].published_at is None, pair[1].published_at or now, pair[0].id))
    for page, extracted in batch:
        if not extracted.ok:
            outcome.failed += 1
            conn.execute(pages.update().where(pages.c.id == page.id).values(
                extract_status=extracted.status.value, extract_reason=extracted.reason,
                extractor_version=EXTRACTOR_VERSION, article_id=None,
            ))
            add_problem(conn, run_id=run_id, source=page.source, stage="extract", url=page.url,
                        kind=extracted.status.value, reason=extracted.reason or extracted.status.value, now=now)
            continue
        key = article_key(page, extracted)
        aliases = {key: "canonical", page.url: "feed"}
        if page.final_url:
            final = canonical_url(page.final_url)
            if final:
                aliases.setdefault(final, "final")
        content = {
            "title": extracted.title, "author": extracted.author, "published_at": extracted.published_at,
            "published_at_source": extracted.date_source, "feed_published_at": page.feed_published_at,
            "language": extracted.language, "text": extracted.text, "description": extracted.description,
            "sitename": extracted.sitename, "word_count": extracted.word_count,
            "content_hash": extracted.content_hash, "minhash": extracted.signature,
            "extractor_version": EXTRACTOR_VERSION,
        }
        existing = conn.execute(
            sa.select(articles.c.id, articles.c.content_page_id, *(articles.c[name] for name in _ARTICLE_CONTENT))
            .where(articles.c.id.in_(sa.select(article_urls.c.article_id).where(article_urls.c.url.in_(list(aliases)))))
            .order_by(articles.c.id)
        ).mappings().first()
        if existing is None:
            article_id = conn.execute(
                articles.insert().values(
                    url=key, source=page.source, guid=page.guid, first_seen_at=page.first_seen_at or now,
                    extracted_at=now, updated_at=now, content_page_id=page.id, **content,
                ).returning(articles.c.id)
            ).scalar_one()
            outcome.inserted += 1
            if _link_near_duplicate(conn, index, article_id, extracted):
                outcome.duplicates += 1
        else:
            article_id = existing["id"]
            changed = any(existing[name] != value for name, value in content.items())
            if changed and _better_content_page(conn, page, key, existing["content_page_id"]):
                conn.execute(articles.update().where(articles.c.id == article_id).values(
                    extracted_at=now, updated_at=now, content_page_id=page.id, **content))
                outcome.updated += 1
            else:
                outcome.unchanged += 1
        upsert(conn, article_urls, [{"url": u, "article_id": article_id, "kind": k} for u, k in aliases.items()],
               keys=["url"])
        conn.execute(feed_items.update().where(feed_items.c.url.in_(list(aliases))).values(article_id=article_id))
        conn.execute(pages.update().where(pages.c.id == page.id).values(
            extract_status="ok", extract_reason=None, extractor_version=EXTRACTOR_VERSION, article_id=article_id))
    return outcome


# -- tags -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ArticleToTag:
    id: int
    title: str | None
    text: str
    language: str | None


def articles_to_tag(
    conn: Connection,
    *,
    source: str | None = None,
    window: Window | None = None,
    version: str | None = None,
    retag_window: bool = False,
    limit: int | None = None,
) -> list[int]:
    """Ids of articles to tag, oldest first.

    Always: articles never tagged, or extracted again since they were. ``version``: also
    those tagged by another tagger version. ``retag_window``: also every article of the
    window (published in it, or read from a feed item of it).
    """
    wanted = [articles.c.tagged_at.is_(None), articles.c.tagged_at < articles.c.extracted_at]
    if version is not None:
        wanted.append(articles.c.tagger_version.is_distinct_from(version))
    query = sa.select(articles.c.id)
    if window is not None:
        in_window = sa.or_(
            sa.and_(articles.c.published_at >= window.start, articles.c.published_at < window.end),
            sa.exists().where(feed_items.c.article_id == articles.c.id, feed_items.c.window_at >= window.start,
                              feed_items.c.window_at < window.end),
        )
        if retag_window:
            wanted.append(in_window)
        elif version is not None:
            query = query.where(in_window)
    if source is not None:
        query = query.where(articles.c.source == source)
    query = query.where(sa.or_(*wanted)).order_by(articles.c.id)
    if limit is not None:
        query = query.limit(limit)
    return list(conn.execute(query).scalars())


def load_articles_to_tag(conn: Connection, ids: Sequence[int]) -> list[ArticleToTag]:
    rows = conn.execute(
        sa.select(articles.c.id, articles.c.title, articles.c.text, articles.c.language)
        .where(articles.c.id.in_(list(ids))).order_by(articles.c.id)
    )
    return [ArticleToTag(r.id, r.title, r.text, r.language) for r in rows]


@dataclass
class TagOutcome:
    written: int = 0
    unchanged: int = 0
    relevant: int = 0


def _mention_rows(article_id: int, result, now: datetime) -> list[dict]:
    rows = []
    for field, found in (("title", result.title_mentions), ("text", result.mentions)):
        for mention in found:
            rows.append({
                "article_id": article_id, "start_offset": mention.start, "end_offset": mention.end,
                "sentence": mention.sentence, "rule": mention.rule[:80],
                "entities": [hit.as_json() for hit in mention.entities], "tagger_version": result.tagger_version,
                "created_at": now, "field": field, "section": mention.section, "weight": round(mention.weight, 4),
            })
    return rows


_MENTION_CONTENT = ("start_offset", "end_offset", "sentence", "rule", "entities", "field", "section", "weight")


def write_tags(conn: Connection, tagged: Sequence[tuple[int, object]], now: datetime) -> TagOutcome:
    """Store tag results (``(article id, TagResult)``); the caller wraps it in one transaction.

    An article's mentions and tied entities are replaced together with its relevance, so a
    reader never sees half of a re-tag. A result identical to what is stored writes nothing.
    """
    outcome = TagOutcome()
    if not tagged:
        return outcome
    ids = [article_id for article_id, _ in tagged]
    stored_articles = {
        r.id: r for r in conn.execute(
            sa.select(articles.c.id, articles.c.relevant, articles.c.relevance_score, articles.c.tagger_version,
                      articles.c.tagged_at, articles.c.extracted_at).where(articles.c.id.in_(ids)))
    }
    stored_mentions: dict[int, list[tuple]] = {}
    for row in conn.execute(sa.select(mentions.c.article_id, *(mentions.c[c] for c in _MENTION_CONTENT))
                            .where(mentions.c.article_id.in_(ids)).order_by(mentions.c.id)):
        stored_mentions.setdefault(row.article_id, []).append(tuple(row[1:]))
    names = {(kind, name) for _, result in tagged for kind, name, _ in result.tied}
    entity_ids = _entity_ids(conn, names)
    stored_tied = {}
    for row in conn.execute(sa.select(article_entities).where(article_entities.c.article_id.in_(ids))):
        stored_tied.setdefault(row.article_id, set()).add((row.entity_id, row.mentions))
    for article_id, result in tagged:
        outcome.relevant += bool(result.relevant)
        article = stored_articles.get(article_id)
        if article is None:
            continue  # deleted meanwhile
        new_mentions = _mention_rows(article_id, result, now)
        new_tied = {(entity_ids[(kind, name)], count) for kind, name, count in result.tied}
        same = (
            article.tagged_at is not None and article.tagged_at >= article.extracted_at
            and article.relevant == result.relevant and article.tagger_version == result.tagger_version
            and article.relevance_score is not None and abs(article.relevance_score - round(result.score, 4)) < 1e-9
            and stored_mentions.get(article_id, []) == [tuple(r[c] for c in _MENTION_CONTENT) for r in new_mentions]
            and stored_tied.get(article_id, set()) == new_tied
        )
        if same:
            outcome.unchanged += 1
            continue
        conn.execute(articles.update().where(articles.c.id == article_id).values(
            relevant=result.relevant, relevance_score=round(result.score, 4), tagger_version=result.tagger_version,
            tagged_at=now))
        conn.execute(mentions.delete().where(mentions.c.article_id == article_id))
        if new_mentions:
            conn.execute(mentions.insert(), new_mentions)
        conn.execute(article_entities.delete().where(article_entities.c.article_id == article_id))
        if new_tied:
            conn.execute(article_entities.insert(), [
                {"article_id": article_id, "entity_id": entity_id, "mentions": count} for entity_id, count in new_tied])
        outcome.written += 1
    return outcome


def _entity_ids(conn: Connection, names: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Ids of (kind, canonical) entities, created when new."""
    if not names:
        return {}
    upsert(conn, entities, [{"kind": k, "canonical": c} for k, c in sorted(names)], keys=["kind", "canonical"])
    found = {}
    for chunk in _chunks(sorted(names), 200):
        for row in conn.execute(sa.select(entities).where(sa.tuple_(entities.c.kind, entities.c.canonical).in_(chunk))):
            found[(row.kind, row.canonical)] = row.id
    return found


# -- runs and problems ----------------------------------------------------------------


def add_problem(
    conn: Connection, *, run_id: int | None, source: str | None, stage: str, url: str | None,
    kind: str, reason: str, now: datetime,
) -> None:
    conn.execute(problems.insert().values(
        run_id=run_id, source=source, stage=stage, url=url, kind=kind, reason=reason[:2000], created_at=now))


def start_run(warehouse: Warehouse, *, run_key: str, trigger: str, window: Window, now: datetime) -> int:
    """Create the run row (or reopen it: a rerun of the same key reuses the row)."""

    def work(conn: Connection) -> int:
        existing = conn.execute(sa.select(runs.c.id).where(runs.c.run_key == run_key)).scalar()
        if existing is not None:
            conn.execute(runs.update().where(runs.c.id == existing).values(
                started_at=now, finished_at=None, status="running", window_start=window.start,
                window_end=window.end))
            return existing
        return conn.execute(runs.insert().values(
            run_key=run_key, trigger=trigger, window_start=window.start, window_end=window.end,
            started_at=now, status="running").returning(runs.c.id)).scalar_one()

    return warehouse.transaction(work)


def find_run(conn: Connection, run_key: str) -> int | None:
    return conn.execute(sa.select(runs.c.id).where(runs.c.run_key == run_key)).scalar()


def finish_run(warehouse: Warehouse, run_id: int, *, status: str, summary: dict, now: datetime) -> None:
    warehouse.transaction(lambda conn: conn.execute(
        runs.update().where(runs.c.id == run_id).values(finished_at=now, status=status, summary=summary)))


def save_source_run(warehouse: Warehouse, run_id: int, row: dict, now: datetime) -> None:
    values = {**row, "run_id": run_id, "updated_at": now}
    columns = [name for name in values if name not in {"run_id", "source"}]
    warehouse.transaction(
        lambda conn: upsert(conn, source_runs, [values], keys=["run_id", "source"], update=columns))


def load_source_run(conn: Connection, run_id: int, source: str) -> dict | None:
    """The recorded outcome of one source in one run, as :meth:`SourceReport.as_row` wrote it."""
    row = conn.execute(sa.select(source_runs).where(source_runs.c.run_id == run_id, source_runs.c.source == source)
                       ).mappings().first()
    return dict(row) if row else None


def load_source_runs(conn: Connection, run_id: int) -> list[dict]:
    return [dict(r) for r in conn.execute(
        sa.select(source_runs).where(source_runs.c.run_id == run_id).order_by(source_runs.c.source)).mappings()]


def reconcile_near_duplicates(conn: Connection, window: Window) -> int:
    """Link copies that parallel writers missed; returns how many articles were re-pointed.

    Sources are extracted in parallel: on PostgreSQL two copies of one story written at the
    same moment do not see each other. Once all sources are in, the originals around the
    window are compared in publication order and each copy is linked to the earliest one.
    """
    query = (
        sa.select(articles.c.id, articles.c.minhash)
        .where(articles.c.duplicate_of.is_(None), articles.c.minhash.is_not(None),
               articles.c.published_at >= window.start - NEAR_DUPLICATE_SPAN,
               articles.c.published_at < window.end + NEAR_DUPLICATE_SPAN)
        .order_by(articles.c.published_at, articles.c.id)
    )
    index = fingerprint.NearDuplicateIndex()
    relinked = 0
    for row in conn.execute(query).all():
        match = index.best_match(row.minhash)
        if match is None:
            index.add(row.id, row.minhash)
            continue
        original_id, score = match
        conn.execute(articles.update().where(sa.or_(articles.c.id == row.id, articles.c.duplicate_of == row.id))
                     .values(duplicate_of=original_id))
        conn.execute(articles.update().where(articles.c.id == row.id).values(duplicate_similarity=round(score, 3)))
        relinked += 1
    return relinked


def _chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
