"""The warehouse schema as SQLAlchemy Core tables (the migrations build the same thing).

``articles`` and ``mentions`` are the contract analysts query; the other tables are the
pipeline's staging and bookkeeping: the warehouse is the only place stages hand work to
each other, so the same code runs on one laptop or on distributed Airflow workers.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator):
    """Timezone-aware UTC datetimes on both backends (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("feed_url", sa.Text, nullable=False),
    sa.Column("homepage", sa.Text, nullable=False),
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("sitemap_url", sa.Text),
    sa.Column("archive_url", sa.Text),
    sa.Column("country", sa.String(2)),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Per-feed fetch state: validators for conditional GET, and the source's health.
feed_state = sa.Table(
    "feed_state",
    metadata,
    sa.Column("source", sa.String(200), sa.ForeignKey("sources.name", ondelete="CASCADE"), primary_key=True),
    sa.Column("feed_url", sa.Text, primary_key=True),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("body_hash", sa.String(64)),
    sa.Column("feed_format", sa.String(20)),
    sa.Column("last_status", sa.String(30)),
    sa.Column("last_http_status", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("last_problem", sa.Text),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_attempt_at", UTCDateTime),
    sa.Column("last_success_at", UTCDateTime),
    sa.Column("last_change_at", UTCDateTime),
    sa.Column("last_item_count", sa.Integer),
)

# Every entry ever read from a feed. The window selects them by feed date.
feed_items = sa.Table(
    "feed_items",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(200), sa.ForeignKey("sources.name", ondelete="CASCADE"), nullable=False),
    sa.Column("guid", sa.Text, nullable=False),
    sa.Column("link", sa.Text),
    sa.Column("url", sa.Text, index=True),
    sa.Column("title", sa.Text),
    sa.Column("feed_published_at", UTCDateTime),
    sa.Column("date_problem", sa.Text),
    sa.Column("first_seen_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
    # the feed date, or first sight when the feed gave none: what the window selects on
    sa.Column("window_at", UTCDateTime, nullable=False, index=True),
    sa.Column("problem", sa.Text),
    sa.Column("article_id", Id, sa.ForeignKey("articles.id", ondelete="SET NULL"), index=True),
    sa.UniqueConstraint("source", "guid"),
)

# Raw responses, compressed, keyed by the canonical form of the requested URL.
pages = sa.Table(
    "pages",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("url", sa.Text, nullable=False, unique=True),
    # the source whose item led here: it fetches and extracts the page, even when other feeds link it too
    sa.Column("source", sa.String(200), sa.ForeignKey("sources.name"), nullable=False, index=True),
    sa.Column("requested_url", sa.Text, nullable=False),
    sa.Column("final_url", sa.Text),
    sa.Column("fetch_status", sa.String(30), nullable=False),
    sa.Column("http_status", sa.Integer),
    sa.Column("content_type", sa.Text),
    sa.Column("headers", Json),
    sa.Column("body_gz", sa.LargeBinary),
    sa.Column("body_bytes", sa.Integer),
    sa.Column("reason", sa.Text),
    sa.Column("transient", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("first_attempt_at", UTCDateTime, nullable=False),
    # set while a worker fetches the page, so that parallel sources do not fetch it twice
    sa.Column("claimed_at", UTCDateTime),
    sa.Column("fetched_at", UTCDateTime),
    sa.Column("extract_status", sa.String(30), nullable=False, server_default="pending", index=True),
    sa.Column("extract_reason", sa.Text),
    sa.Column("extractor_version", sa.String(20)),
    sa.Column("article_id", Id, sa.ForeignKey("articles.id", ondelete="SET NULL"), index=True),
)

articles = sa.Table(
    "articles",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("url", sa.Text, nullable=False, unique=True),
    sa.Column("source", sa.String(200), sa.ForeignKey("sources.name"), nullable=False, index=True),
    sa.Column("guid", sa.Text),
    sa.Column("title", sa.Text),
    sa.Column("author", sa.Text),
    sa.Column("published_at", UTCDateTime, index=True),
    sa.Column("published_at_source", sa.String(20)),
    sa.Column("feed_published_at", UTCDateTime),
    sa.Column("language", sa.String(8)),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("sitename", sa.Text),
    sa.Column("word_count", sa.Integer, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False, index=True),
    sa.Column("minhash", sa.LargeBinary),
    sa.Column("duplicate_of", Id, sa.ForeignKey("articles.id", ondelete="SET NULL"), index=True),
    sa.Column("duplicate_similarity", sa.Float),
    sa.Column("extractor_version", sa.String(20), nullable=False),
    # the stored page the text comes from (several pages may be one article: print versions, short links)
    sa.Column("content_page_id", Id),
    sa.Column("relevant", sa.Boolean, index=True),
    sa.Column("relevance_score", sa.Float),
    sa.Column("tagger_version", sa.String(40), index=True),
    sa.Column("tagged_at", UTCDateTime),
    sa.Column("first_seen_at", UTCDateTime, nullable=False),
    sa.Column("extracted_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# PostgreSQL also has a GIN index over to_tsvector('simple', title || text) for full-text
# search (migration 0003): an expression index, which the table definitions cannot carry.
FULLTEXT_INDEX = "ix_articles_fulltext"

# Every URL an article is known under (feed link, final URL, rel=canonical).
article_urls = sa.Table(
    "article_urls",
    metadata,
    sa.Column("url", sa.Text, primary_key=True),
    sa.Column("article_id", Id, sa.ForeignKey("articles.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("kind", sa.String(20), nullable=False),
)

# One row per tagged passage; offsets index into articles.text (field 'title': into the title).
mentions = sa.Table(
    "mentions",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("article_id", Id, sa.ForeignKey("articles.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("start_offset", sa.Integer, nullable=False),
    sa.Column("end_offset", sa.Integer, nullable=False),
    sa.Column("sentence", sa.Text, nullable=False),
    sa.Column("rule", sa.String(80), nullable=False),
    # every entity of the passage: alias as matched, label, canonical name, gazetteer id, offsets, role
    sa.Column("entities", Json, nullable=False),
    sa.Column("tagger_version", sa.String(40), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("field", sa.String(10), nullable=False, server_default="text"),
    sa.Column("section", sa.String(10)),
    sa.Column("weight", sa.Float),
)

# The canonical entities analysts filter by (states, groups, people), one row each.
entities = sa.Table(
    "entities",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("canonical", sa.String(200), nullable=False),
    sa.UniqueConstraint("kind", "canonical"),
)

# Which states, groups and people a relevant article ties to the region (the tagger's lists).
article_entities = sa.Table(
    "article_entities",
    metadata,
    sa.Column("article_id", Id, sa.ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("entity_id", Id, sa.ForeignKey("entities.id", ondelete="CASCADE"), primary_key=True, index=True),
    sa.Column("mentions", sa.Integer, nullable=False, server_default="0"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("run_key", sa.String(250), unique=True),
    sa.Column("trigger", sa.String(30), nullable=False),
    sa.Column("window_start", UTCDateTime, nullable=False),
    sa.Column("window_end", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("summary", Json),
)

# One row per source per run: the numbers and the outcome the run report prints.
source_runs = sa.Table(
    "source_runs",
    metadata,
    sa.Column("run_id", Id, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("source", sa.String(200), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("feed_status", sa.String(30)),
    sa.Column("items_seen", sa.Integer, nullable=False, server_default="0"),
    sa.Column("items_new", sa.Integer, nullable=False, server_default="0"),
    sa.Column("items_in_window", sa.Integer, nullable=False, server_default="0"),
    sa.Column("fetched", sa.Integer, nullable=False, server_default="0"),
    sa.Column("extracted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("duplicates", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("tagged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("relevant", sa.Integer, nullable=False, server_default="0"),
    sa.Column("reasons", Json),
    sa.Column("error", sa.Text),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Every bad input, with its reason: what analysts and maintainers read to see what broke.
problems = sa.Table(
    "problems",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("run_id", Id, sa.ForeignKey("runs.id", ondelete="CASCADE"), index=True),
    sa.Column("source", sa.String(200), index=True),
    sa.Column("stage", sa.String(20), nullable=False),
    sa.Column("url", sa.Text),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)


# One digest per run: the run's relevant stories, grouped by state and group, each story once.
digests = sa.Table(
    "digests",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("run_id", Id, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, unique=True),
    sa.Column("window_start", UTCDateTime, nullable=False),
    sa.Column("window_end", UTCDateTime, nullable=False),
    sa.Column("stories", sa.Integer, nullable=False),
    sa.Column("sections", Json, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("sent_note", sa.Text),
)
