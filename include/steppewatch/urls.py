"""URL identity: one canonical form per article URL."""

from __future__ import annotations

import logging
from urllib.parse import urljoin, urlsplit, urlunsplit

from courlan import clean_url

LOGGER = logging.getLogger(__name__)


def canonical_url(url: str | None, base: str | None = None) -> str | None:
    """Normalise ``url`` into the key articles are stored under, or None if unusable.

    Tracking parameters (utm_*, fbclid, ref, ...) and the fragment are dropped, the
    scheme and host lower-cased and default ports removed (courlan). Relative URLs are
    resolved against ``base``.
    """
    if not url:
        return None
    url = url.strip()
    if base:
        url = urljoin(base, url)
    parts = urlsplit(url)
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        return None
    cleaned = clean_url(url)
    if not cleaned:
        return None
    parts = urlsplit(cleaned)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))


def same_site(first: str, second: str) -> bool:
    """True when both URLs are on the same host, ignoring a leading ``www.``."""

    def host(url: str) -> str:
        name = (urlsplit(url).hostname or "").lower()
        return name[4:] if name.startswith("www.") else name

    return bool(host(first)) and host(first) == host(second)
