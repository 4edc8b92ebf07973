"""The one HTTP layer for feeds, robots.txt and pages.

Polite and defensive: a User-Agent with a contact URL, connect/read timeouts and a
whole-response deadline, a redirect limit with loop detection, a body cap applied
after decompression (so a gzip bomb stops at the cap), retries with exponential
backoff and jitter for 429/5xx/timeouts that honour Retry-After, per-host
concurrency and delay limits, robots.txt for pages, and a refusal to connect to
loopback, private, link-local or reserved addresses unless the network policy allows
them, checked on the resolved address of every hop.
"""

from __future__ import annotations

import email.utils
import logging
import random
import socket
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationParseError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util import connection as urllib3_connection

from .config import HttpSettings, NetworkPolicy

LOGGER = logging.getLogger(__name__)

ROBOTS_PRODUCT_TOKEN = "steppewatch"
RETRYABLE_HTTP_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class FetchStatus(str, Enum):
    """How a fetch ended. Everything but OK and NOT_MODIFIED is a failure with a reason."""

    OK = "ok"
    NOT_MODIFIED = "not_modified"
    HTTP_ERROR = "http_error"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    DNS_ERROR = "dns_error"
    TLS_ERROR = "tls_error"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    REDIRECT_LOOP = "redirect_loop"
    TOO_LARGE = "too_large"
    BLOCKED_ADDRESS = "blocked_address"
    ROBOTS_DISALLOWED = "robots_disallowed"
    INVALID_URL = "invalid_url"
    DECODING_ERROR = "decoding_error"


# Failures worth another try in a later run (the pipeline's backlog), not only now.
TRANSIENT_STATUSES = frozenset(
    {FetchStatus.TIMEOUT, FetchStatus.CONNECTION_ERROR, FetchStatus.DNS_ERROR, FetchStatus.TLS_ERROR}
)


@dataclass
class FetchResult:
    """The outcome of one logical GET (all its retries and redirects)."""

    url: str
    status: FetchStatus
    final_url: str | None = None
    http_status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    reason: str | None = None
    attempts: int = 0
    redirects: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    # a dropped connection or timeout: worth retrying within this fetch
    retry_now: bool = field(default=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.status is FetchStatus.OK

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def transient(self) -> bool:
        """A failure that may go away: a later run should try again."""
        if self.status in TRANSIENT_STATUSES:
            return True
        return self.status is FetchStatus.HTTP_ERROR and self.http_status in RETRYABLE_HTTP_STATUSES


class BlockedAddressError(Exception):
    """The host resolves to an address the network policy refuses."""


class _BodyTooLarge(Exception):
    pass


class _DeadlineExceeded(Exception):
    pass


class _UnsupportedEncoding(Exception):
    pass


def _guarded_connection(base: type[HTTPConnection]) -> type[HTTPConnection]:
    """A connection class that resolves the host itself and connects only to permitted addresses."""

    class Guarded(base):  # type: ignore[misc, valid-type]
        network_policy: NetworkPolicy = NetworkPolicy()

        def _new_conn(self) -> socket.socket:
            host = self._dns_host
            try:
                infos = socket.getaddrinfo(host, self.port, type=socket.SOCK_STREAM)
            except socket.gaierror as err:
                raise NameResolutionError(self.host, self, err) from err
            addresses = list(dict.fromkeys(info[4][0] for info in infos))
            refused = [a for a in addresses if not self.network_policy.permits(a)]
            if refused:
                raise BlockedAddressError(
                    f"{self.host} resolves to {refused[0]}, a loopback/private/link-local/reserved address "
                    "(set STEPPEWATCH_ALLOW_PRIVATE_NETWORKS to allow it)"
                )
            last_error: OSError | None = None
            for address in addresses:
                try:
                    return urllib3_connection.create_connection(
                        (address, self.port),
                        self.timeout,
                        source_address=self.source_address,
                        socket_options=self.socket_options,
                    )
                except socket.timeout as err:
                    raise ConnectTimeoutError(self, f"Connection to {self.host} timed out") from err
                except OSError as err:
                    last_error = err
            raise NewConnectionError(self, f"Failed to establish a new connection: {last_error}")

    Guarded.__name__ = f"Guarded{base.__name__}"
    return Guarded


def _pool_manager(policy: NetworkPolicy, maxsize: int) -> urllib3.PoolManager:
    http_conn = _guarded_connection(HTTPConnection)
    https_conn = _guarded_connection(HTTPSConnection)
    http_conn.network_policy = policy
    https_conn.network_policy = policy

    class HttpPool(HTTPConnectionPool):
        ConnectionCls = http_conn

    class HttpsPool(HTTPSConnectionPool):
        ConnectionCls = https_conn

    manager = urllib3.PoolManager(num_pools=64, maxsize=maxsize, block=False)
    manager.pool_classes_by_scheme = {"http": HttpPool, "https": HttpsPool}
    return manager


class HostLimiter:
    """Per-host concurrency and minimum delay between request starts."""

    def __init__(self, concurrency: int, delay: float):
        self._concurrency = max(1, concurrency)
        self._default_delay = max(0.0, delay)
        self._lock = threading.Lock()
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}
        self._next_start: dict[str, float] = {}
        self._delays: dict[str, float] = {}

    def set_delay(self, host: str, delay: float) -> None:
        with self._lock:
            self._delays[host] = max(self._default_delay, delay)

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        with self._lock:
            semaphore = self._semaphores.setdefault(host, threading.BoundedSemaphore(self._concurrency))
        semaphore.acquire()
        try:
            with self._lock:
                now = time.monotonic()
                start = max(now, self._next_start.get(host, now))
                self._next_start[host] = start + self._delays.get(host, self._default_delay)
            if start > now:
                time.sleep(start - now)
            yield
        finally:
            semaphore.release()


class _Decoder:
    """Incremental Content-Encoding decoder that never produces more than asked for."""

    def __init__(self, encoding: str):
        encoding = encoding.strip().lower()
        if encoding in {"", "identity"}:
            self._zlib = None
        elif encoding in {"gzip", "x-gzip"}:
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS)
        else:
            raise _UnsupportedEncoding(f"unsupported Content-Encoding {encoding!r}")
        self._raw_deflate_fallback = encoding == "deflate"

    def feed(self, data: bytes, room: int) -> bytes:
        """Decode ``data``; return at most ``room`` + 1 bytes (one more signals overflow)."""
        if self._zlib is None:
            return data
        out = bytearray()
        pending = data
        while pending and len(out) <= room:
            try:
                out += self._zlib.decompress(pending, room + 1 - len(out))
            except zlib.error:
                if self._raw_deflate_fallback:
                    # some servers send raw deflate without the zlib header
                    self._raw_deflate_fallback = False
                    self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise
            self._raw_deflate_fallback = False
            pending = self._zlib.unconsumed_tail
            if not pending and self._zlib.eof and self._zlib.unused_data:
                # concatenated gzip members
                pending = self._zlib.unused_data
                self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return bytes(out)


def _read_bounded(response: urllib3.BaseHTTPResponse, limit: int, deadline: float) -> bytes:
    decoder = _Decoder(response.headers.get("Content-Encoding", ""))
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge(f"Content-Length {int(declared):,} exceeds the {limit:,}-byte limit")
    body = bytearray()
    while True:
        # read1 returns what has arrived: a slow drip cannot hold a read past the deadline
        chunk = response.read1(64 * 1024, decode_content=False)
        if not chunk:
            break
        body += decoder.feed(chunk, limit - len(body))
        if len(body) > limit:
            raise _BodyTooLarge(f"body exceeds the {limit:,}-byte limit after decompression")
        if time.monotonic() > deadline:
            raise _DeadlineExceeded("body still arriving at the response deadline")
    return bytes(body)


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


class HttpClient:
    """A polite, bounded HTTP client; thread-safe, one per pass."""

    def __init__(self, settings: HttpSettings, *, sleep=time.sleep):
        self.settings = settings
        self._sleep = sleep
        self._pool = _pool_manager(settings.network_policy, maxsize=max(2, settings.per_host_concurrency))
        self._limiter = HostLimiter(settings.per_host_concurrency, settings.per_host_delay)
        self._robots: dict[str, RobotFileParser | str] = {}
        self._robots_locks: dict[str, threading.Lock] = {}
        self._robots_guard = threading.Lock()

    def close(self) -> None:
        self._pool.clear()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public API -------------------------------------------------------------------

    def get(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = "*/*",
        check_robots: bool = False,
    ) -> FetchResult:
        """GET ``url`` with retries; conditional when validators are given."""
        started = time.monotonic()
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            return FetchResult(url, FetchStatus.INVALID_URL, reason=f"not an http(s) URL: {url!r}")
        if check_robots and self.settings.respect_robots:
            allowed, why = self.robots_allow(url)
            if not allowed:
                return FetchResult(url, FetchStatus.ROBOTS_DISALLOWED, reason=why)
        headers = {
            "User-Agent": self.settings.user_agent,
            "Accept": accept,
            "Accept-Encoding": "gzip, deflate",
        }
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        attempt = 0
        while True:
            attempt += 1
            result = self._follow(url, headers)
            result.attempts = attempt
            if not self._should_retry(result) or attempt > self.settings.retries:
                break
            delay = self._backoff(attempt, result)
            if delay is None:
                result.reason = f"{result.reason}; Retry-After exceeds {self.settings.max_retry_after:.0f}s, not retried now"
                break
            LOGGER.info("retrying %s in %.2fs after %s", url, delay, result.reason)
            self._sleep(delay)
        result.elapsed = time.monotonic() - started
        return result

    def robots_allow(self, url: str) -> tuple[bool, str | None]:
        """Whether robots.txt of ``url``'s site lets steppewatch fetch it, and why not."""
        parts = urlsplit(url)
        site = f"{parts.scheme}://{parts.netloc}"
        with self._robots_guard:
            lock = self._robots_locks.setdefault(site, threading.Lock())
        with lock:
            rules = self._robots.get(site)
            if rules is None:
                rules = self._load_robots(site, parts.hostname or "")
                self._robots[site] = rules
        if isinstance(rules, str):
            return False, rules
        if rules.can_fetch(ROBOTS_PRODUCT_TOKEN, url):
            return True, None
        return False, f"disallowed by {site}/robots.txt"

    # -- internals --------------------------------------------------------------------

    def _load_robots(self, site: str, host: str) -> RobotFileParser | str:
        result = self.get(f"{site}/robots.txt", accept="text/plain,*/*")
        rules = RobotFileParser()
        if result.ok:
            text = (result.body or b"").decode("utf-8", errors="replace")
            rules.parse(text.splitlines())
            delay = rules.crawl_delay(ROBOTS_PRODUCT_TOKEN)
            if delay:
                self._limiter.set_delay(host, min(float(delay), self.settings.max_crawl_delay))
            return rules
        if result.status is FetchStatus.HTTP_ERROR and result.http_status and 400 <= result.http_status < 500:
            rules.parse([])  # RFC 9309: an unavailable robots.txt allows everything
            return rules
        # RFC 9309: an unreachable robots.txt (5xx, network) means complete disallow for now
        return f"robots.txt unreachable ({result.reason})"

    def _should_retry(self, result: FetchResult) -> bool:
        if result.retry_now:
            return True
        return result.status is FetchStatus.HTTP_ERROR and result.http_status in RETRYABLE_HTTP_STATUSES

    def _backoff(self, attempt: int, result: FetchResult) -> float | None:
        retry_after = _retry_after_seconds(result.headers.get("retry-after"))
        if retry_after is not None:
            if retry_after > self.settings.max_retry_after:
                return None
            return retry_after
        base = self.settings.backoff_base * (2 ** (attempt - 1))
        return min(self.settings.backoff_max, base) * random.uniform(0.5, 1.0) + random.uniform(0, base * 0.1)

    def _follow(self, url: str, headers: Mapping[str, str]) -> FetchResult:
        """One attempt: the request and its redirects."""
        current = url
        visited = [url]
        timeout = urllib3.Timeout(connect=self.settings.connect_timeout, read=self.settings.read_timeout)
        deadline = time.monotonic() + self.settings.connect_timeout + 3 * self.settings.read_timeout
        hop_headers = dict(headers)
        for _hop in range(self.settings.max_redirects + 1):
            host = urlsplit(current).hostname or ""
            with self._limiter.slot(host):
                result = self._request(current, hop_headers, timeout, deadline)
            result.url = url
            result.redirects = visited[1:]
            if result.http_status not in _REDIRECT_STATUSES:
                return result
            location = result.headers.get("location")
            if not location:
                result.status = FetchStatus.HTTP_ERROR
                result.reason = f"HTTP {result.http_status} redirect without a Location header"
                return result
            target = urljoin(current, location.strip())
            if urlsplit(target).scheme not in {"http", "https"}:
                return FetchResult(url, FetchStatus.INVALID_URL, http_status=result.http_status,
                                   reason=f"redirect to a non-http URL {target!r}", redirects=visited[1:])
            if target in visited:
                return FetchResult(url, FetchStatus.REDIRECT_LOOP, http_status=result.http_status,
                                   reason=f"redirect loop: {' -> '.join(visited + [target])}",
                                   redirects=visited[1:])
            visited.append(target)
            current = target
            # validators belong to the first URL only
            hop_headers.pop("If-None-Match", None)
            hop_headers.pop("If-Modified-Since", None)
        return FetchResult(url, FetchStatus.TOO_MANY_REDIRECTS,
                           reason=f"more than {self.settings.max_redirects} redirects (last: {current})",
                           redirects=visited[1:])

    def _request(self, url: str, headers: Mapping[str, str], timeout: urllib3.Timeout, deadline: float) -> FetchResult:
        response = None
        completed = False
        try:
            response = self._pool.request(
                "GET", url, headers=dict(headers), timeout=timeout, retries=False,
                redirect=False, preload_content=False, decode_content=False,
            )
            status = response.status
            response_headers = {k.lower(): v for k, v in response.headers.items()}
            base = FetchResult(url, FetchStatus.OK, final_url=url, http_status=status, headers=response_headers)
            if status in _REDIRECT_STATUSES:
                return base
            if status == 304:
                base.status = FetchStatus.NOT_MODIFIED
                return base
            if status >= 400:
                base.status = FetchStatus.HTTP_ERROR
                base.reason = f"HTTP {status} {response.reason or ''}".strip()
                return base
            base.body = _read_bounded(response, self.settings.max_body_bytes, deadline)
            completed = True
            return base
        except BlockedAddressError as err:
            return FetchResult(url, FetchStatus.BLOCKED_ADDRESS, reason=str(err))
        except NameResolutionError as err:
            return FetchResult(url, FetchStatus.DNS_ERROR, reason=f"cannot resolve {urlsplit(url).hostname}: {_cause(err)}")
        except NewConnectionError as err:
            # before the timeouts: urllib3 makes NewConnectionError a ConnectTimeoutError subclass
            if isinstance(err.__cause__, (socket.timeout, TimeoutError)) or "timed out" in str(err):
                return FetchResult(url, FetchStatus.TIMEOUT, reason=f"timed out: {_cause(err)}", retry_now=True)
            return FetchResult(url, FetchStatus.CONNECTION_ERROR, reason=f"connection failed: {_cause(err)}")
        except (ConnectTimeoutError, ReadTimeoutError, socket.timeout, TimeoutError) as err:
            return FetchResult(url, FetchStatus.TIMEOUT, reason=f"timed out: {_cause(err)}", retry_now=True)
        except _DeadlineExceeded as err:
            # a server that drips its body will drip it again: not retried now
            return FetchResult(url, FetchStatus.TIMEOUT, reason=str(err))
        except _BodyTooLarge as err:
            return FetchResult(url, FetchStatus.TOO_LARGE, http_status=response.status if response else None,
                               reason=str(err))
        except (_UnsupportedEncoding, zlib.error) as err:
            return FetchResult(url, FetchStatus.DECODING_ERROR, http_status=response.status if response else None,
                               reason=f"cannot decode the body: {err}")
        except SSLError as err:
            return FetchResult(url, FetchStatus.TLS_ERROR, reason=f"TLS error: {_cause(err)}")
        except LocationParseError as err:
            return FetchResult(url, FetchStatus.INVALID_URL, reason=f"invalid URL: {err}")
        except ProtocolError as err:
            return FetchResult(url, FetchStatus.CONNECTION_ERROR, reason=f"connection broken: {_cause(err)}",
                               retry_now=True)
        except (HTTPError, OSError) as err:
            return FetchResult(url, FetchStatus.CONNECTION_ERROR, reason=f"connection failed: {_cause(err)}")
        finally:
            if response is not None:
                if not completed:
                    # unread or partly read body: the connection cannot be reused
                    response.close()
                response.release_conn()


def _cause(err: BaseException) -> str:
    """The innermost useful message of a wrapped urllib3 error."""
    inner = err
    while inner.__cause__ is not None or inner.__context__ is not None:
        inner = inner.__cause__ or inner.__context__  # type: ignore[assignment]
    text = str(inner) or inner.__class__.__name__
    if "Connection refused" in text:
        return "connection refused"
    return text
