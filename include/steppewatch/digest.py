"""The daily digest: a run's relevant stories, grouped by state and group, each story once.

Written by the daily DAG's report task into ``digests`` (one per run, rewritten when the run
is reprocessed), shown on the plugin's Digests page, and sent by email through the SMTP
connection (``smtp_default``) when one is configured and ``STEPPEWATCH_DIGEST_TO`` names the
recipients.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from html import escape

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .schema import article_entities, articles, digests, entities, feed_items
from .warehouse import upsert
from .windows import Window

LOGGER = logging.getLogger(__name__)

ENV_RECIPIENTS = "STEPPEWATCH_DIGEST_TO"
ENV_SENDER = "STEPPEWATCH_DIGEST_FROM"
SMTP_CONN_ID = "smtp_default"
SEVERAL_STATES = "Several states"
NO_STATE = "Central Asia (no single state)"
NO_GROUP = "No group named"


@dataclass
class Story:
    id: int
    title: str
    url: str
    source: str
    published_at: str | None
    countries: list[str]
    groups: list[str]
    also: list[str]


def stories_of(conn: Connection, window: Window) -> list[Story]:
    """The window's relevant stories: originals only, their copies' sources as "also"."""
    in_window = sa.or_(
        sa.and_(articles.c.published_at >= window.start, articles.c.published_at < window.end),
        sa.exists().where(feed_items.c.article_id == articles.c.id, feed_items.c.window_at >= window.start,
                          feed_items.c.window_at < window.end),
    )
    found = conn.execute(
        sa.select(articles.c.id, articles.c.title, articles.c.url, articles.c.source, articles.c.published_at,
                  articles.c.duplicate_of, articles.c.relevance_score)
        .where(articles.c.relevant.is_(True), in_window)
        .order_by(articles.c.relevance_score.desc(), articles.c.published_at, articles.c.id)).all()
    originals = {row.id: row for row in found if row.duplicate_of is None}
    also: dict[int, list[str]] = {}
    standing_in: dict[int, int] = {}  # an original outside the window -> the copy that stands for it
    for row in found:
        if row.duplicate_of is None:
            continue
        if row.duplicate_of in originals:
            also.setdefault(row.duplicate_of, []).append(row.source)
        elif row.duplicate_of in standing_in:
            also.setdefault(standing_in[row.duplicate_of], []).append(row.source)
        else:
            standing_in[row.duplicate_of] = row.id
            originals[row.id] = row
    tied: dict[int, dict[str, list[str]]] = {}
    if originals:
        for article_id, kind, name in conn.execute(
                sa.select(article_entities.c.article_id, entities.c.kind, entities.c.canonical)
                .join(entities, entities.c.id == article_entities.c.entity_id)
                .where(article_entities.c.article_id.in_(list(originals)))
                .order_by(article_entities.c.mentions.desc(), entities.c.canonical)):
            tied.setdefault(article_id, {}).setdefault(kind, []).append(name)
    return [Story(row.id, row.title or row.url, row.url, row.source,
                  row.published_at.isoformat() if row.published_at else None,
                  sorted(tied.get(row.id, {}).get("country", [])), tied.get(row.id, {}).get("group", []),
                  sorted(set(also.get(row.id, [])) - {row.source}))
            for row in originals.values()]


def sections_of(stories: list[Story]) -> list[tuple[str, list[dict]]]:
    """Headings "state — group" (a story naming several states under "Several states", its
    first group by mentions), each story once."""
    grouped: dict[str, list[dict]] = {}
    for story in stories:
        state = story.countries[0] if len(story.countries) == 1 else (SEVERAL_STATES if story.countries else NO_STATE)
        heading = f"{state} — {story.groups[0] if story.groups else NO_GROUP}"
        grouped.setdefault(heading, []).append(vars(story))
    order = sorted(grouped, key=lambda h: (h.startswith((SEVERAL_STATES, NO_STATE)), h))
    return [(heading, grouped[heading]) for heading in order]


def plain_text(window: Window, sections: list[tuple[str, list[dict]]]) -> str:
    lines = [f"steppewatch digest, {window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC", ""]
    if not sections:
        lines.append("No relevant story in this window.")
    for heading, stories in sections:
        lines.append(heading)
        for story in stories:
            also = f" (also {', '.join(story['also'])})" if story["also"] else ""
            states = f" [{', '.join(story['countries'])}]" if len(story["countries"]) > 1 else ""
            lines.append(f"  - {story['title']} — {story['source']}{also}{states}\n    {story['url']}")
        lines.append("")
    return "\n".join(lines)


def html_body(window: Window, sections: list[tuple[str, list[dict]]]) -> str:
    parts = [f"<h2>steppewatch digest, {window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC</h2>"]
    if not sections:
        parts.append("<p>No relevant story in this window.</p>")
    for heading, stories in sections:
        parts.append(f"<h3>{escape(heading)}</h3><ul>")
        for story in stories:
            also = f" (also {escape(', '.join(story['also']))})" if story["also"] else ""
            parts.append(f'<li><a href="{escape(story["url"], quote=True)}">{escape(story["title"])}</a> '
                         f"— {escape(story['source'])}{also}</li>")
        parts.append("</ul>")
    return "".join(parts)


def write_digest(conn: Connection, run_id: int, window: Window, *, now: datetime | None = None) -> dict:
    """Write (or rewrite) the run's digest; returns it as a row."""
    now = now or datetime.now(timezone.utc)
    stories = stories_of(conn, window)
    sections = sections_of(stories)
    row = {"run_id": run_id, "window_start": window.start, "window_end": window.end, "stories": len(stories),
           "sections": [[heading, items] for heading, items in sections], "text": plain_text(window, sections),
           "created_at": now, "updated_at": now}
    upsert(conn, digests, [row], keys=["run_id"], update=["window_start", "window_end", "stories", "sections",
                                                         "text", "updated_at"])
    return dict(conn.execute(sa.select(digests).where(digests.c.run_id == run_id)).mappings().one())


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    login: str | None
    password: str | None
    ssl: bool
    starttls: bool
    sender: str


def smtp_settings() -> SmtpSettings | None:
    """The ``smtp_default`` Airflow connection (an ``AIRFLOW_CONN_SMTP_DEFAULT`` URL or one stored
    in Airflow), or None when there is none."""
    connection = None
    try:
        from airflow.sdk import Connection

        connection = Connection.get(SMTP_CONN_ID)
    except Exception:  # noqa: BLE001 - not configured, or not inside an Airflow task
        url = os.environ.get("AIRFLOW_CONN_SMTP_DEFAULT")
        if url:
            from urllib.parse import unquote, urlsplit

            parts = urlsplit(url)
            return SmtpSettings(parts.hostname or "localhost", parts.port or 25, unquote(parts.username or "") or None,
                                unquote(parts.password or "") or None, parts.scheme == "smtps",
                                "starttls" in parts.query, os.environ.get(ENV_SENDER) or "steppewatch@localhost")
        return None
    extra = connection.extra_dejson or {}
    return SmtpSettings(connection.host or "localhost", int(connection.port or 25), connection.login or None,
                        connection.password or None, bool(extra.get("use_ssl") or extra.get("ssl")),
                        bool(extra.get("starttls") or extra.get("use_tls")),
                        os.environ.get(ENV_SENDER) or extra.get("from_email") or "steppewatch@localhost")


def send_digest(conn: Connection, digest: dict, *, settings: SmtpSettings | None = None,
                recipients: list[str] | None = None, now: datetime | None = None) -> str:
    """Email the digest once; returns (and records) what happened."""
    if digest.get("sent_at"):
        return digest.get("sent_note") or "already sent"
    recipients = recipients if recipients is not None else [
        r.strip() for r in os.environ.get(ENV_RECIPIENTS, "").split(",") if r.strip()]
    settings = settings or smtp_settings()
    if not recipients or settings is None:
        note = "not sent: no recipients (STEPPEWATCH_DIGEST_TO)" if not recipients else \
            "not sent: no SMTP connection (smtp_default)"
        conn.execute(digests.update().where(digests.c.id == digest["id"]).values(sent_note=note))
        return note
    window = Window(digest["window_start"], digest["window_end"])
    sections = [(heading, items) for heading, items in digest["sections"]]
    message = EmailMessage()
    message["Subject"] = f"steppewatch: {digest['stories']} stor{'y' if digest['stories'] == 1 else 'ies'}, " \
                         f"{window.start:%Y-%m-%d}"
    message["From"] = settings.sender
    message["To"] = ", ".join(recipients)
    message.set_content(digest["text"])
    message.add_alternative(html_body(window, sections), subtype="html")
    try:
        client = smtplib.SMTP_SSL if settings.ssl else smtplib.SMTP
        with client(settings.host, settings.port, timeout=30) as smtp:
            if settings.starttls and not settings.ssl:
                smtp.starttls(context=ssl.create_default_context())
            if settings.login:
                smtp.login(settings.login, settings.password or "")
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as err:
        note = f"not sent: {err.__class__.__name__}: {err}"
        conn.execute(digests.update().where(digests.c.id == digest["id"]).values(sent_note=note[:2000]))
        return note
    note = f"sent to {', '.join(recipients)}"
    conn.execute(digests.update().where(digests.c.id == digest["id"])
                 .values(sent_at=now or datetime.now(timezone.utc), sent_note=note))
    return note
