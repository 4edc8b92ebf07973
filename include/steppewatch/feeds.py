"""Feed parsing: RSS 0.9x/1.0/2.0 and Atom through feedparser, JSON Feed by hand.

A malformed feed still yields every entry that can be read; what was wrong is kept in
:attr:`ParsedFeed.problem` so the run can record it.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urljoin

import feedparser

LOGGER = logging.getLogger(__name__)

# Feed dates this far ahead are clock skew; beyond it they are rejected as future.
FUTURE_TOLERANCE = timedelta(hours=24)
_LEADING_JUNK = re.compile(rb"^(?:\xef\xbb\xbf|\s)+")
_HTML_SNIFF = re.compile(rb"<(?:!doctype\s+html|html[\s>])", re.IGNORECASE)
_ALTERNATE_FEED = re.compile(
    rb"<link[^>]+type=[\"']application/(?:rss|atom)\+xml[\"'][^>]*>", re.IGNORECASE
)
_HREF = re.compile(rb"href=[\"']([^\"']+)[\"']", re.IGNORECASE)


@dataclass(frozen=True)
class FeedEntry:
    """One item of a feed, with its date already checked."""

    guid: str
    url: str | None
    title: str | None = None
    published: datetime | None = None
    date_problem: str | None = None
    summary: str | None = None


@dataclass
class ParsedFeed:
    """What could be read from a feed body."""

    entries: list[FeedEntry] = field(default_factory=list)
    title: str | None = None
    format: str | None = None
    problem: str | None = None

    @property
    def is_feed(self) -> bool:
        return self.format is not None


def _utc_from_struct(value) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=timezone.utc)
    except (OverflowError, ValueError, TypeError):
        return None


def _parse_iso(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def check_date(published: datetime | None, raw_present: bool, now: datetime) -> tuple[datetime | None, str | None]:
    """Reject future dates; say why a date is missing."""
    if published is None:
        return None, "unparseable date" if raw_present else "no date"
    if published > now + FUTURE_TOLERANCE:
        return None, f"future date {published.isoformat()} rejected"
    return published, None


def _entry_guid(guid: str | None, url: str | None, title: str | None, summary: str | None) -> str:
    if guid and guid.strip():
        return guid.strip()
    if url:
        return url
    digest = hashlib.sha256(f"{title}\x00{summary}".encode()).hexdigest()[:32]
    return f"sha256:{digest}"


def _describe_bozo(parsed) -> str | None:
    error = parsed.get("bozo_exception")
    if not parsed.get("bozo") or error is None:
        return None
    if isinstance(error, feedparser.NonXMLContentType):
        return None  # a feed served as text/html or text/plain parses fine: not worth a record
    if isinstance(error, feedparser.CharacterEncodingOverride):
        return f"wrong declared encoding: {error}"
    line = getattr(error, "getLineNumber", lambda: None)()
    where = f" (line {line})" if line else ""
    return f"malformed feed{where}: {error}"


def _parse_json_feed(body: bytes, base_url: str | None, now: datetime) -> ParsedFeed | None:
    try:
        document = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(document, dict) or "jsonfeed.org" not in str(document.get("version", "")):
        return None
    feed = ParsedFeed(title=document.get("title"), format="json")
    for item in document.get("items") or []:
        if not isinstance(item, dict):
            continue
        url = item.get("url") or item.get("external_url")
        url = urljoin(base_url or "", url) if isinstance(url, str) else None
        raw_date = item.get("date_published") or item.get("date_modified")
        published, problem = check_date(_parse_iso(raw_date), bool(raw_date), now)
        title = item.get("title")
        summary = item.get("summary")
        feed.entries.append(
            FeedEntry(
                guid=_entry_guid(str(item["id"]) if item.get("id") is not None else None, url, title, summary),
                url=url,
                title=title,
                published=published,
                date_problem=problem,
                summary=summary,
            )
        )
    return feed


def parse_feed(
    body: bytes,
    *,
    url: str | None = None,
    content_type: str | None = None,
    now: datetime | None = None,
) -> ParsedFeed:
    """Parse a feed body into entries; never raises on bad input."""
    now = now or datetime.now(timezone.utc)
    body = _LEADING_JUNK.sub(b"", body or b"")
    if not body:
        return ParsedFeed(problem="empty body")
    if body[:1] in (b"{", b"["):
        json_feed = _parse_json_feed(body, url, now)
        if json_feed is not None:
            return json_feed
    headers = {"content-location": url} if url else {}
    if content_type:
        headers["content-type"] = content_type
    try:
        parsed = feedparser.parse(body, response_headers=headers, sanitize_html=False, resolve_relative_uris=False)
    except Exception as err:  # feedparser is robust, but a crash must not stop the run
        LOGGER.exception("feedparser crashed on %s", url)
        return ParsedFeed(problem=f"feed parser error: {err.__class__.__name__}: {err}")
    version = parsed.get("version") or None
    if not version and not parsed.entries:
        if _HTML_SNIFF.search(body[:2048]):
            hint = ""
            alternate = _ALTERNATE_FEED.search(body)
            if alternate:
                href = _HREF.search(alternate.group(0))
                if href:
                    hint = f"; the page advertises a feed at {urljoin(url or '', href.group(1).decode('utf-8', 'replace'))}"
            return ParsedFeed(problem=f"not a feed: the server sent an HTML page{hint}")
        return ParsedFeed(problem=_describe_bozo(parsed) or "not a feed: no RSS, Atom or JSON Feed found")
    feed = ParsedFeed(title=parsed.feed.get("title"), format=version or "unknown", problem=_describe_bozo(parsed))
    seen: set[str] = set()
    for entry in parsed.entries:
        link = entry.get("link")
        if not link and entry.get("guidislink"):
            link = entry.get("id")
        link = urljoin(url or "", link.strip()) if link else None
        raw_struct = entry.get("published_parsed") or entry.get("updated_parsed")
        raw_present = bool(entry.get("published") or entry.get("updated"))
        published, problem = check_date(_utc_from_struct(raw_struct), raw_present, now)
        title = entry.get("title")
        summary = entry.get("summary")
        guid = _entry_guid(entry.get("id"), link, title, summary)
        if guid in seen:
            continue
        seen.add(guid)
        feed.entries.append(
            FeedEntry(guid=guid, url=link, title=title, published=published, date_problem=problem, summary=summary)
        )
    return feed
