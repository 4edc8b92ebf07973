"""What analysts read: relevant articles by filter, one article with its evidence, trends,
source health, digests and exports. Queries only, parameterised, on PostgreSQL and SQLite.

The Airflow plugin's pages (:mod:`steppewatch.web`) and ``steppewatch export`` both stand on
these functions.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from xml.sax.saxutils import escape

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .schema import article_entities, articles, entities, feed_items, feed_state, mentions, sources

LOGGER = logging.getLogger(__name__)

PAGE_SIZES = (10, 25, 50, 100)
MAX_EXPORT_ROWS = 50_000


class FilterError(ValueError):
    """A filter value that cannot be used (a bad date, an unknown kind of sort)."""


def _day(value: str | None, name: str) -> date | None:
    if value is None or not str(value).strip():
        return None
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError as err:
        raise FilterError(f"{name}: {value!r} is not a date (YYYY-MM-DD)") from err


@dataclass(frozen=True)
class ArticleFilter:
    """Which articles: a date range (published, UTC days, end inclusive), a state, group,
    person, source and language, and words to search for in titles and texts."""

    start: date | None = None
    end: date | None = None
    country: str | None = None
    group: str | None = None
    person: str | None = None
    source: str | None = None
    language: str | None = None
    q: str | None = None
    relevant: bool | None = True
    # syndicated copies are shown with their first copy ("also reported by"), not as rows
    copies: bool = False

    @classmethod
    def from_params(cls, params: Mapping[str, str | None]) -> ArticleFilter:
        def text(name: str) -> str | None:
            value = params.get(name)
            value = str(value).strip() if value is not None else ""
            return value[:200] or None

        start, end = _day(params.get("start"), "start"), _day(params.get("end"), "end")
        if start and end and end < start:
            raise FilterError(f"end {end} is before start {start}")
        relevant = text("relevant")
        return cls(start=start, end=end, country=text("country"), group=text("group"), person=text("person"),
                   source=text("source"), language=text("language"), q=text("q"),
                   relevant=None if relevant == "any" else True, copies=text("copies") in {"1", "yes", "true"})

    def as_params(self) -> dict[str, str]:
        """The filter as query parameters (for links: pages, exports, the Atom feed)."""
        values = {"start": self.start and self.start.isoformat(), "end": self.end and self.end.isoformat(),
                  "country": self.country, "group": self.group, "person": self.person, "source": self.source,
                  "language": self.language, "q": self.q, "relevant": None if self.relevant else "any",
                  "copies": "1" if self.copies else None}
        return {k: v for k, v in values.items() if v}

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.as_params().items()]
        return ", ".join(parts) or "all relevant articles"


def _tied(kind: str, name: str) -> sa.ColumnElement[bool]:
    return sa.exists().where(
        article_entities.c.article_id == articles.c.id,
        article_entities.c.entity_id == entities.c.id,
        entities.c.kind == kind,
        sa.func.lower(entities.c.canonical) == name.lower(),
    )


def _search(conn: Connection, words: str) -> sa.ColumnElement[bool]:
    """Full-text search on PostgreSQL (the 'simple' configuration: English and Russian alike),
    every word as a substring of the title or text on SQLite."""
    if conn.dialect.name == "postgresql":
        document = sa.func.to_tsvector("simple", sa.func.coalesce(articles.c.title, "") + " " + articles.c.text)
        return document.op("@@")(sa.func.plainto_tsquery("simple", words))
    clauses = []
    for word in words.lower().split()[:10]:
        pattern = f"%{word.replace('%', '').replace('_', '')}%"
        clauses.append(sa.or_(sa.func.lower(sa.func.coalesce(articles.c.title, "")).like(pattern),
                              sa.func.lower(articles.c.text).like(pattern)))
    return sa.and_(*clauses) if clauses else sa.true()


def _conditions(conn: Connection, flt: ArticleFilter) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if flt.relevant:
        where.append(articles.c.relevant.is_(True))
    if not flt.copies:
        where.append(articles.c.duplicate_of.is_(None))
    if flt.start:
        where.append(articles.c.published_at >= datetime.combine(flt.start, time(0), tzinfo=timezone.utc))
    if flt.end:
        where.append(articles.c.published_at < datetime.combine(flt.end + timedelta(days=1), time(0),
                                                                tzinfo=timezone.utc))
    for kind, value in (("country", flt.country), ("group", flt.group), ("person", flt.person)):
        if value:
            where.append(_tied(kind, value))
    if flt.source:
        where.append(articles.c.source == flt.source)
    if flt.language:
        where.append(articles.c.language == flt.language)
    if flt.q:
        where.append(_search(conn, flt.q))
    return where


@dataclass
class ArticleRow:
    id: int
    title: str | None
    url: str
    source: str
    published_at: datetime | None
    language: str | None
    score: float | None
    relevant: bool | None
    countries: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    persons: list[str] = field(default_factory=list)
    copies: int = 0


@dataclass
class Page:
    rows: list[ArticleRow]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def _tied_names(conn: Connection, ids: Sequence[int]) -> dict[int, dict[str, list[str]]]:
    names: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    if not ids:
        return names
    query = (sa.select(article_entities.c.article_id, entities.c.kind, entities.c.canonical)
             .join(entities, entities.c.id == article_entities.c.entity_id)
             .where(article_entities.c.article_id.in_(list(ids)))
             .order_by(article_entities.c.article_id, entities.c.kind, entities.c.canonical))
    for row in conn.execute(query):
        names[row.article_id][row.kind].append(row.canonical)
    return names


def _rows(conn: Connection, found) -> list[ArticleRow]:
    found = list(found)
    names = _tied_names(conn, [r.id for r in found])
    copies = dict(conn.execute(
        sa.select(articles.c.duplicate_of, sa.func.count()).where(articles.c.duplicate_of.in_([r.id for r in found]))
        .group_by(articles.c.duplicate_of)).all()) if found else {}
    return [ArticleRow(r.id, r.title, r.url, r.source, r.published_at, r.language, r.relevance_score, r.relevant,
                       names[r.id]["country"], names[r.id]["group"], names[r.id]["person"], copies.get(r.id, 0))
            for r in found]


_LIST_COLUMNS = (articles.c.id, articles.c.title, articles.c.url, articles.c.source, articles.c.published_at,
                 articles.c.language, articles.c.relevance_score, articles.c.relevant)


def find_articles(conn: Connection, flt: ArticleFilter, *, page: int = 1, per_page: int = 25) -> Page:
    """One page of the articles matching ``flt``, newest first."""
    per_page = per_page if per_page in PAGE_SIZES else 25
    where = _conditions(conn, flt)
    total = conn.execute(sa.select(sa.func.count()).select_from(articles).where(*where)).scalar_one()
    page = min(max(1, page), max(1, math.ceil(total / per_page)))
    found = conn.execute(
        sa.select(*_LIST_COLUMNS).where(*where)
        .order_by(articles.c.published_at.desc().nulls_last(), articles.c.id.desc())
        .limit(per_page).offset((page - 1) * per_page))
    return Page(_rows(conn, found), total, page, per_page)


# -- one article, with its evidence -------------------------------------------------------


@dataclass
class Highlight:
    start: int
    end: int
    text: str
    label: str
    canonical: str
    role: str
    rules: list[str]
    aliases: list[str]


@dataclass
class ArticleDetail:
    article: dict
    mentions: list[dict]
    segments: list[tuple[str, Highlight | None]]
    tied: dict[str, list[str]]
    copies: list[dict]
    original: dict | None


def highlight_segments(text: str, found: Iterable[Mapping]) -> list[tuple[str, Highlight | None]]:
    """The text cut into plain runs and highlighted entities (those of mentions in the text),
    each highlight with the rules and aliases of the mentions it belongs to."""
    spans: dict[tuple[int, int], Highlight] = {}
    for mention in found:
        if mention.get("field", "text") != "text":
            continue
        aliases = sorted({e["text"] for e in mention["entities"] if e.get("role") in {"anchor", "signal"}})
        for entity in mention["entities"]:
            if entity.get("field", "text") != "text" or entity.get("role") not in {"anchor", "signal", "person"}:
                continue
            start, end = int(entity["start"]), int(entity["end"])
            if not (0 <= start < end <= len(text)):
                continue
            key = (start, end)
            if key not in spans:
                spans[key] = Highlight(start, end, text[start:end], entity["label"], entity["canonical"],
                                       entity["role"], [], aliases)
            if mention["rule"] not in spans[key].rules:
                spans[key].rules.append(mention["rule"])
    segments: list[tuple[str, Highlight | None]] = []
    position = 0
    for (start, end), highlight in sorted(spans.items()):
        if start < position:
            continue  # overlaps the previous highlight
        if start > position:
            segments.append((text[position:start], None))
        segments.append((text[start:end], highlight))
        position = end
    if position < len(text):
        segments.append((text[position:], None))
    return segments


def article_detail(conn: Connection, article_id: int) -> ArticleDetail | None:
    row = conn.execute(sa.select(articles).where(articles.c.id == article_id)).mappings().first()
    if row is None:
        return None
    article = dict(row)
    found = [dict(m) for m in conn.execute(
        sa.select(mentions).where(mentions.c.article_id == article_id)
        .order_by(mentions.c.field.desc(), mentions.c.start_offset)).mappings()]
    tied = _tied_names(conn, [article_id])[article_id]
    original_id = article["duplicate_of"] or article_id
    group = conn.execute(
        sa.select(articles.c.id, articles.c.title, articles.c.url, articles.c.source, articles.c.published_at,
                  articles.c.duplicate_similarity)
        .where(sa.or_(articles.c.id == original_id, articles.c.duplicate_of == original_id),
               articles.c.id != article_id)
        .order_by(articles.c.published_at)).mappings().all()
    original = next((dict(g) for g in group if g["id"] == article["duplicate_of"]), None)
    copies = [dict(g) for g in group if g["id"] != article["duplicate_of"]]
    return ArticleDetail(article, found, highlight_segments(article["text"], found),
                         {k: list(v) for k, v in tied.items()}, copies, original)


# -- trends ---------------------------------------------------------------------------------


def trends(conn: Connection, flt: ArticleFilter, *, kind: str = "country", top: int = 8) -> dict:
    """Mentions per day by state (or group) over the filter's range: ``{"days", "series"}``,
    each series a name and its daily counts (the passages that name it in relevant articles)."""
    if kind not in {"country", "group"}:
        raise FilterError(f"kind: {kind!r} is not country or group")
    end = flt.end or datetime.now(timezone.utc).date()
    start = flt.start or end - timedelta(days=29)
    flt = replace(flt, start=start, end=end)
    day = sa.func.date(articles.c.published_at) if conn.dialect.name == "sqlite" else \
        sa.cast(sa.func.timezone("UTC", articles.c.published_at), sa.Date)
    query = (sa.select(day.label("day"), entities.c.canonical, sa.func.sum(article_entities.c.mentions))
             .select_from(articles.join(article_entities, article_entities.c.article_id == articles.c.id)
                          .join(entities, entities.c.id == article_entities.c.entity_id))
             .where(*_conditions(conn, flt), entities.c.kind == kind)
             .group_by(day, entities.c.canonical))
    counts: dict[str, dict[date, int]] = defaultdict(dict)
    for row_day, name, count in conn.execute(query):
        counts[name][row_day if isinstance(row_day, date) else date.fromisoformat(str(row_day))] = int(count or 0)
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    ranked = sorted(counts, key=lambda name: -sum(counts[name].values()))[:top]
    return {"days": days, "series": [{"name": name, "counts": [counts[name].get(d, 0) for d in days]}
                                     for name in ranked]}


# -- source health ----------------------------------------------------------------------------


@dataclass
class SourceHealth:
    name: str
    kind: str
    enabled: bool
    last_success_at: datetime | None
    consecutive_failures: int
    last_status: str | None
    last_error: str | None
    items_per_day: list[int]
    went_silent: bool


SILENT_DAYS = 3


def source_health(conn: Connection, *, days: int = 14, now: datetime | None = None) -> list[SourceHealth]:
    """Each source's feed health and how many new items it brought each day; a source that
    brought items earlier in the period and none in the last three days is flagged."""
    now = now or datetime.now(timezone.utc)
    first = (now - timedelta(days=days - 1)).date()
    since = datetime.combine(first, time(0), tzinfo=timezone.utc)
    day = sa.func.date(feed_items.c.first_seen_at) if conn.dialect.name == "sqlite" else \
        sa.cast(sa.func.timezone("UTC", feed_items.c.first_seen_at), sa.Date)
    per_day: dict[str, dict[date, int]] = defaultdict(dict)
    for name, row_day, count in conn.execute(
            sa.select(feed_items.c.source, day, sa.func.count()).where(feed_items.c.first_seen_at >= since)
            .group_by(feed_items.c.source, day)):
        per_day[name][row_day if isinstance(row_day, date) else date.fromisoformat(str(row_day))] = count
    states = {r.source: r for r in conn.execute(sa.select(feed_state))}
    health = []
    for row in conn.execute(sa.select(sources).order_by(sources.c.name)):
        counts = [per_day[row.name].get(first + timedelta(days=n), 0) for n in range(days)]
        state = states.get(row.name)
        silent = row.enabled and sum(counts[:-SILENT_DAYS]) > 0 and sum(counts[-SILENT_DAYS:]) == 0
        health.append(SourceHealth(row.name, row.kind, row.enabled, state.last_success_at if state else None,
                                   state.consecutive_failures if state else 0, state.last_status if state else None,
                                   state.last_error if state else None, counts, silent))
    return health


# -- exports ------------------------------------------------------------------------------------

ARTICLE_FIELDS = ("id", "published_at", "source", "title", "url", "language", "relevance_score", "countries",
                  "groups", "persons", "copies")
MENTION_FIELDS = ("article_id", "article_url", "field", "start_offset", "end_offset", "rule", "weight", "sentence",
                  "aliases", "entities", "tagger_version")


def export_articles(conn: Connection, flt: ArticleFilter, *, limit: int = MAX_EXPORT_ROWS) -> Iterator[dict]:
    """The filter's articles, newest first, as flat records."""
    where = _conditions(conn, flt)
    batch: list = []
    query = (sa.select(*_LIST_COLUMNS).where(*where)
             .order_by(articles.c.published_at.desc().nulls_last(), articles.c.id.desc()).limit(limit))
    for row in conn.execute(query):
        batch.append(row)
        if len(batch) == 500:
            yield from (_flat(r) for r in _rows(conn, batch))
            batch = []
    yield from (_flat(r) for r in _rows(conn, batch))


def _flat(row: ArticleRow) -> dict:
    return {"id": row.id, "published_at": row.published_at.isoformat() if row.published_at else None,
            "source": row.source, "title": row.title, "url": row.url, "language": row.language,
            "relevance_score": row.score, "countries": row.countries, "groups": row.groups, "persons": row.persons,
            "copies": row.copies}


def export_mentions(conn: Connection, flt: ArticleFilter, *, limit: int = MAX_EXPORT_ROWS) -> Iterator[dict]:
    """The mentions of the filter's articles, as flat records."""
    ids = sa.select(articles.c.id).where(*_conditions(conn, flt))
    query = (sa.select(mentions, articles.c.url.label("article_url"))
             .join(articles, articles.c.id == mentions.c.article_id)
             .where(mentions.c.article_id.in_(ids))
             .order_by(articles.c.published_at.desc().nulls_last(), mentions.c.article_id, mentions.c.field.desc(),
                       mentions.c.start_offset).limit(limit))
    for row in conn.execute(query).mappings():
        yield {"article_id": row["article_id"], "article_url": row["article_url"], "field": row["field"],
               "start_offset": row["start_offset"], "end_offset": row["end_offset"], "rule": row["rule"],
               "weight": row["weight"], "sentence": row["sentence"],
               "aliases": sorted({e["text"] for e in row["entities"] if e.get("role") in {"anchor", "signal"}}),
               "entities": row["entities"], "tagger_version": row["tagger_version"]}


def to_csv(records: Iterable[dict], fields: Sequence[str]) -> Iterator[str]:
    """CSV text, lists joined with "; " and structures as JSON."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    yield buffer.getvalue()
    for record in records:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow({k: ("; ".join(v) if isinstance(v, list) and all(isinstance(x, str) for x in v)
                             else json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v)
                         for k, v in record.items()})
        yield buffer.getvalue()


def to_jsonl(records: Iterable[dict]) -> Iterator[str]:
    for record in records:
        yield json.dumps(record, ensure_ascii=False, default=str) + "\n"


def atom_feed(conn: Connection, flt: ArticleFilter, *, feed_url: str, site_url: str, limit: int = 100) -> str:
    """An Atom feed of the filter's relevant articles, newest first (RFC 4287)."""
    records = list(export_articles(conn, replace(flt, relevant=True), limit=limit))
    updated = max((r["published_at"] for r in records if r["published_at"]), default=None) or \
        datetime.now(timezone.utc).isoformat()
    entries = []
    for record in records:
        tags = "".join(f'<category term="{escape(name, {chr(34): "&quot;"})}" label="{escape(kind)}"/>'
                       for kind in ("countries", "groups") for name in record[kind])
        summary = "; ".join(part for part in (", ".join(record["countries"]), ", ".join(record["groups"])) if part)
        entries.append(
            "<entry>"
            f"<id>{escape(site_url)}/articles/{record['id']}</id>"
            f"<title>{escape(record['title'] or record['url'])}</title>"
            f'<link rel="alternate" href="{escape(record["url"], {chr(34): "&quot;"})}"/>'
            f'<link rel="related" href="{escape(site_url, {chr(34): "&quot;"})}/articles/{record["id"]}"/>'
            f"<updated>{escape(record['published_at'] or updated)}</updated>"
            f"<author><name>{escape(record['source'])}</name></author>"
            f"<summary>{escape(summary or 'relevant')} (score {record['relevance_score'] or 0:.2f})</summary>"
            f"{tags}</entry>")
    return ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f"<id>{escape(feed_url)}</id><title>steppewatch: {escape(flt.describe())}</title>"
            f'<link rel="self" href="{escape(feed_url, {chr(34): "&quot;"})}"/>'
            f"<updated>{escape(updated)}</updated><generator>steppewatch</generator>"
            + "".join(entries) + "</feed>")
