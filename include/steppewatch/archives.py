"""Past items beyond the feed: sitemaps (news sitemaps with dates) and paged feed archives.

A feed holds the last few dozen items; a backfill of last month needs more. Where a
source declares a ``sitemap`` (a sitemap, a sitemap index, or a Google news sitemap) or an
``archive`` (a paged feed such as WordPress ``/feed/?paged={page}``), these functions list
the items of a window from them, as :class:`~steppewatch.feeds.FeedEntry` like a feed's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree

from .feeds import FeedEntry, _parse_iso, check_date, parse_feed
from .fetching import FetchStatus, HttpClient
from .windows import Window

LOGGER = logging.getLogger(__name__)

SITEMAP_ACCEPT = "application/xml, text/xml;q=0.9, */*;q=0.5"
# A sitemap index can list thousands of sitemaps; a window needs few of them.
MAX_CHILD_SITEMAPS = 20
MAX_ARCHIVE_PAGES = 30
_NEWS_NS = "http://www.google.com/schemas/sitemap-news/0.9"


@dataclass
class ArchiveListing:
    """The window's entries found in a sitemap or archive, and what went wrong on the way."""

    entries: list[FeedEntry] = field(default_factory=list)
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, reason, url)
    fetched: int = 0


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def parse_sitemap(body: bytes) -> tuple[str, list[tuple[str, datetime | None, str | None]]]:
    """``("index", [(sitemap url, lastmod, None)])`` or ``("urlset", [(page url, date, title)])``.

    The date of a page is its news publication date, else its ``lastmod``.
    """
    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True, huge_tree=False)
    root = etree.fromstring(body, parser)
    if root is None:
        raise ValueError("not XML")
    kind = _local(root.tag)
    if kind not in {"sitemapindex", "urlset"}:
        raise ValueError(f"not a sitemap (root element <{kind}>)")
    found = []
    for node in root:
        if _local(node.tag) not in {"sitemap", "url"}:
            continue
        values = {_local(child.tag): (child.text or "").strip() for child in node}
        news = next((child for child in node if _local(child.tag) == "news"), None)
        published, title = None, None
        if news is not None:
            published = _parse_iso(news.findtext(f"{{{_NEWS_NS}}}publication_date"))
            title = (news.findtext(f"{{{_NEWS_NS}}}title") or "").strip() or None
        if published is None:
            published = _parse_iso(values.get("lastmod"))
        if values.get("loc"):
            found.append((values["loc"], published, title))
    return ("index" if kind == "sitemapindex" else "urlset"), found


def sitemap_entries(client: HttpClient, url: str, window: Window, *, now: datetime) -> ArchiveListing:
    """Pages of ``window`` listed by a sitemap (following an index to its recent sitemaps)."""
    listing = ArchiveListing()
    queue, seen = [url], set()
    while queue and len(seen) <= MAX_CHILD_SITEMAPS:
        current = queue.pop(0)
        if current in seen:
            continue
        seen.add(current)
        result = client.get(current, accept=SITEMAP_ACCEPT)
        listing.fetched += 1
        if not result.ok:
            listing.problems.append((f"sitemap_{result.status.value}", result.reason or result.status.value, current))
            continue
        try:
            kind, found = parse_sitemap(result.body or b"")
        except (ValueError, etree.XMLSyntaxError) as err:
            listing.problems.append(("sitemap_malformed", str(err), current))
            continue
        if kind == "index":
            # a child sitemap last changed before the window began holds nothing of it
            queue += [loc for loc, lastmod, _ in found if lastmod is None or lastmod >= window.start]
            continue
        for loc, published, title in found:
            checked, problem = check_date(published, published is not None, now)
            if checked is not None and window.contains(checked):
                listing.entries.append(FeedEntry(guid=loc, url=loc, title=title, published=checked,
                                                 date_problem=problem))
    return listing


def archive_entries(client: HttpClient, template: str, window: Window, *, now: datetime,
                    accept: str) -> ArchiveListing:
    """Items of ``window`` from a paged feed archive (``{page}`` in the template), newest page
    first, until a page holds only older items, is empty, or does not exist."""
    listing = ArchiveListing()
    for page in range(1, MAX_ARCHIVE_PAGES + 1):
        url = template.replace("{page}", str(page))
        result = client.get(url, accept=accept)
        listing.fetched += 1
        if result.status is FetchStatus.HTTP_ERROR and result.http_status in {404, 410}:
            break  # past the last page
        if not result.ok:
            listing.problems.append((f"archive_{result.status.value}", result.reason or result.status.value, url))
            break
        parsed = parse_feed(result.body or b"", url=result.final_url or url,
                            content_type=result.headers.get("content-type"), now=now)
        if not parsed.is_feed:
            listing.problems.append(("archive_not_a_feed", parsed.problem or "not a feed", url))
            break
        if not parsed.entries:
            break
        listing.entries += [e for e in parsed.entries if e.published is not None and window.contains(e.published)]
        dated = [e.published for e in parsed.entries if e.published is not None]
        if dated and max(dated) < window.start:
            break
    return listing
