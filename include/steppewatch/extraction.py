"""From a stored page to clean text and metadata, with trafilatura and htmldate.

Pure functions of the raw response: the extract stage can rerun them over stored pages
at any time, without the network.
"""

from __future__ import annotations

import codecs
import logging
import re
from html import unescape
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from enum import Enum

from .fingerprint import content_hash, minhash

LOGGER = logging.getLogger(__name__)

# Bump when the extraction settings or logic change: stored pages are re-extracted.
EXTRACTOR_VERSION = "1"

_HTML_TYPES = {"text/html", "application/xhtml+xml", "application/xml", "text/xml", "text/plain", ""}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([-\w.:]+)""", re.IGNORECASE)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([-\w.:]+)", re.IGNORECASE)
_MAGIC = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"PK\x03\x04", "application/zip"),
)
_WORD_RE = re.compile(r"\w+", re.UNICODE)
_MIN_WORDS = 40
# Read from the raw HTML, so that the page is parsed once (by trafilatura).
_LINK_TAG = re.compile(r"<link\b[^>]*>", re.IGNORECASE)
_ATTRIBUTE = re.compile(r"""([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")
_HTML_LANG = re.compile(r"""<html\b[^>]*?\blang\s*=\s*["']?([\w-]+)""", re.IGNORECASE)
_HEAD_END = re.compile(r"</head\s*>", re.IGNORECASE)
_LANGUAGE_SAMPLE_CHARS = 2000


class ExtractionStatus(str, Enum):
    OK = "ok"
    NOT_HTML = "not_html"
    EMPTY = "empty"
    UNPARSEABLE = "unparseable"


@dataclass
class ExtractedArticle:
    """Clean text and metadata of one page."""

    status: ExtractionStatus
    reason: str | None = None
    text: str | None = None
    title: str | None = None
    author: str | None = None
    page_date: date | None = None
    published_at: datetime | None = None
    date_source: str | None = None
    language: str | None = None
    word_count: int = 0
    content_hash: str | None = None
    signature: bytes | None = None
    canonical_url: str | None = None
    sitename: str | None = None
    description: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is ExtractionStatus.OK


def sniff_type(body: bytes, content_type: str | None) -> str:
    """The media type: magic bytes win over a wrong header."""
    head = body[:16]
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_html(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """Decode a page: BOM, then the HTTP charset, then <meta charset>, then UTF-8, then a guess."""
    for bom, name in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if body.startswith(bom):
            return body.decode(name, errors="replace"), name
    declared = []
    if content_type:
        match = _HEADER_CHARSET.search(content_type)
        if match:
            declared.append(match.group(1))
    match = _META_CHARSET.search(body[:4096])
    if match:
        declared.append(match.group(1).decode("ascii", "replace"))
    for name in declared:
        try:
            codec = codecs.lookup(name).name
        except LookupError:
            continue
        if codec == "utf-8":
            try:
                return body.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                continue  # a wrong declaration: fall through to detection
        try:
            return body.decode(codec), codec
        except UnicodeDecodeError:
            continue
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(body[:20000]).best()
    if best is not None and best.encoding:
        return body.decode(best.encoding, errors="replace"), best.encoding
    return body.decode("cp1252", errors="replace"), "cp1252"


def declared_canonical(html: str) -> str | None:
    """The href of ``<link rel="canonical">`` in the page's head, as written."""
    head_end = _HEAD_END.search(html)
    head = html[: head_end.start()] if head_end else html[:200_000]
    for tag in _LINK_TAG.findall(head):
        attributes = {m.group(1).lower(): next(g for g in m.groups()[1:] if g is not None)
                      for m in _ATTRIBUTE.finditer(tag)}
        if "canonical" in attributes.get("rel", "").lower().split() and attributes.get("href", "").strip():
            return unescape(attributes["href"].strip())
    return None


def _normalize_language(code: str | None) -> str | None:
    if not code:
        return None
    code = code.strip().lower().replace("_", "-").split("-", 1)[0]
    return code if re.fullmatch(r"[a-z]{2,3}", code) else None


def detect_language(text: str, declared: str | None = None) -> str | None:
    """ISO 639-1 language of the text (py3langid); the page's declaration when the text is too short."""
    sample = text[:_LANGUAGE_SAMPLE_CHARS]
    if len(_WORD_RE.findall(sample)) < 5:
        return _normalize_language(declared)
    import py3langid

    code, _score = py3langid.classify(sample)
    return code


def _date_from_text(html: str, url: str | None, params: dict) -> str | None:
    """htmldate's search of the whole page, free text included: a last resort for pages that
    neither their markup, their URL nor a feed date."""
    from htmldate import find_date

    try:
        return find_date(html, url=url, **{**params, "extensive_search": True})
    except Exception as err:  # noqa: BLE001 - a page htmldate cannot read has no date, not an error
        LOGGER.debug("htmldate failed on %s: %s", url, err)
        return None


def resolve_published(
    page_date: date | None, feed_date: datetime | None, first_seen: datetime | None
) -> tuple[datetime | None, str | None]:
    """The article's original publication time, and which clue gave it.

    The page's own date (htmldate, original date) wins; when the feed's timestamp falls
    within a day of it, the feed's time of day is kept as more precise.
    """
    if page_date is not None:
        if feed_date is not None and abs(feed_date.date() - page_date) <= timedelta(days=1):
            return feed_date, "page+feed"
        return datetime.combine(page_date, time(0, 0), tzinfo=timezone.utc), "page"
    if feed_date is not None:
        return feed_date, "feed"
    if first_seen is not None:
        return first_seen, "first_seen"
    return None, None


def extract_page(
    body: bytes,
    *,
    url: str,
    content_type: str | None = None,
    feed_date: datetime | None = None,
    first_seen: datetime | None = None,
    favor_precision: bool = False,
    today: date | None = None,
) -> ExtractedArticle:
    """Extract the main text and metadata of one stored page. Never raises on bad input."""
    from trafilatura import bare_extraction

    media_type = sniff_type(body, content_type)
    if media_type not in _HTML_TYPES:
        return ExtractedArticle(ExtractionStatus.NOT_HTML, reason=f"not an HTML page: {media_type}")
    if not body.strip():
        return ExtractedArticle(ExtractionStatus.EMPTY, reason="empty response body")
    html, _encoding = decode_html(body, content_type)
    canonical = declared_canonical(html)
    lang_match = _HTML_LANG.search(html[:4096])
    declared_language = lang_match.group(1) if lang_match else None
    today = today or datetime.now(timezone.utc).date()
    # the page's markup and URL only: a year in the body ("recruited in 2024") is not the date
    # the page was published; the free-text search runs below, when nothing else dates the page
    date_params = {
        "original_date": True,
        "extensive_search": False,
        "max_date": (today + timedelta(days=1)).isoformat(),
    }
    try:
        document = bare_extraction(
            html,
            url=url,
            with_metadata=True,
            include_comments=False,
            include_tables=True,
            favor_precision=favor_precision,
            date_extraction_params=date_params,
        )
    except Exception as err:  # trafilatura and lxml errors on odd pages must not stop the batch
        LOGGER.warning("trafilatura failed on %s: %s", url, err)
        return ExtractedArticle(ExtractionStatus.UNPARSEABLE, reason=f"extraction error: {err.__class__.__name__}: {err}")
    text = (document.text or "").strip() if document is not None else ""
    words = len(_WORD_RE.findall(text))
    if document is None or words < _MIN_WORDS:
        return ExtractedArticle(
            ExtractionStatus.EMPTY,
            reason=f"no main text found ({words} words extracted)",
            canonical_url=canonical,
        )
    found = document.date
    if not found and feed_date is None:
        found = _date_from_text(html, url, date_params)
    page_date = None
    if found:
        try:
            page_date = date.fromisoformat(found[:10])
        except ValueError:
            page_date = None
    if page_date is not None and page_date > today + timedelta(days=1):
        page_date = None  # a future date on the page is wrong, not news from the future
    published_at, date_source = resolve_published(page_date, feed_date, first_seen)
    return ExtractedArticle(
        ExtractionStatus.OK,
        text=text,
        title=(document.title or "").strip() or None,
        author=(document.author or "").strip() or None,
        page_date=page_date,
        published_at=published_at,
        date_source=date_source,
        language=detect_language(text, declared_language),
        word_count=words,
        content_hash=content_hash(text),
        signature=minhash(text),
        canonical_url=canonical,
        sitename=document.sitename,
        description=document.description,
    )
