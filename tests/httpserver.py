"""A real HTTP server on loopback for tests: fixture pages, generated feeds and misbehaviour."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

SITE_DIR = Path(__file__).parent / "fixtures" / "site"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # stream the body in chunks with this pause between them (slow servers)
    chunk_delay: float = 0.0
    # wait before answering at all (timeouts)
    delay: float = 0.0
    # omit Content-Length (chunked-like streaming until close)
    no_length: bool = False


Handler = Callable[["Request"], Reply]


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    count: int


class FixtureServer:
    """Routes are exact paths (query included) mapped to a Reply or a function making one."""

    def __init__(self) -> None:
        self.routes: dict[str, Reply | Handler] = {}
        self.hits: Counter[str] = Counter()
        self.request_headers: dict[str, list[dict[str, str]]] = {}
        self.active = 0
        self.max_active: Counter[str] = Counter()
        self._lock = threading.Lock()
        server = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                with server._lock:
                    server.hits[self.path] += 1
                    count = server.hits[self.path]
                    server.request_headers.setdefault(self.path, []).append(dict(self.headers.items()))
                    server.active += 1
                    prefix = self.path.split("/")[1] if "/" in self.path else ""
                    server._concurrency[prefix] = server._concurrency.get(prefix, 0) + 1
                    server.max_active[prefix] = max(server.max_active[prefix], server._concurrency[prefix])
                try:
                    route = server.routes.get(self.path)
                    if route is None and self.path.endswith("/robots.txt"):
                        route = Reply(404, b"no robots here")
                    if route is None:
                        route = server.static(self.path)
                    reply = route(Request(self.path, dict(self.headers.items()), count)) if callable(route) else route
                    if reply.delay:
                        time.sleep(reply.delay)
                    self.send_response(reply.status)
                    headers = {"Content-Type": "text/html; charset=utf-8", **reply.headers}
                    for name, value in headers.items():
                        self.send_header(name, value)
                    if reply.no_length:
                        self.send_header("Connection", "close")
                    else:
                        self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    if reply.chunk_delay:
                        for start in range(0, len(reply.body), 512):
                            self.wfile.write(reply.body[start:start + 512])
                            self.wfile.flush()
                            time.sleep(reply.chunk_delay)
                    else:
                        self.wfile.write(reply.body)
                    if reply.no_length:
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server._lock:
                        server.active -= 1
                        server._concurrency[prefix] -= 1

        self._concurrency: dict[str, int] = {}
        class QuietServer(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                pass  # clients that hang up early (timeouts, size limits) are part of the tests

        self.httpd = QuietServer(("127.0.0.1", 0), RequestHandler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> FixtureServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def add(self, path: str, route: Reply | Handler | bytes | str, **reply: object) -> str:
        if isinstance(route, str):
            route = route.encode("utf-8")
        if isinstance(route, bytes):
            route = Reply(body=route, **reply)  # type: ignore[arg-type]
        self.routes[path] = route
        return self.url(path)

    def static(self, path: str) -> Reply:
        """Fixture pages from tests/fixtures/site, with {BASE} replaced by this server's address."""
        relative = path.split("?", 1)[0].lstrip("/")
        file = (SITE_DIR / relative).resolve()
        if not file.is_file() or SITE_DIR.resolve() not in file.parents:
            return Reply(404, b"<html><body><h1>Not found</h1></body></html>")
        body = file.read_bytes().replace(b"{BASE}", self.base.encode("ascii"))
        charset = "windows-1251" if b"windows-1251" in body[:2048].lower() else None
        content_type = "text/html" + (f"; charset={charset}" if charset else "")
        return Reply(200, body, {"Content-Type": content_type})

    def reset(self) -> None:
        self.routes.clear()
        self.hits.clear()
        self.request_headers.clear()
        self.max_active.clear()


@dataclass
class Item:
    title: str
    link: str | None
    guid: str | None = None
    published: datetime | str | None = None
    summary: str = ""


def rss(items: list[Item], *, title: str = "Fixture feed", link: str = "http://example.invalid/") -> bytes:
    """An RSS 2.0 document; ``published`` as a datetime becomes an RFC 822 date, a str is kept raw."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title><link>{escape(link)}</link><description>fixture</description>",
    ]
    for item in items:
        parts.append("<item>")
        parts.append(f"<title>{escape(item.title)}</title>")
        if item.link is not None:
            parts.append(f"<link>{escape(item.link)}</link>")
        if item.guid is not None:
            parts.append(f'<guid isPermaLink="false">{escape(item.guid)}</guid>')
        if isinstance(item.published, datetime):
            parts.append(f"<pubDate>{format_datetime(item.published)}</pubDate>")
        elif isinstance(item.published, str):
            parts.append(f"<pubDate>{escape(item.published)}</pubDate>")
        parts.append(f"<description>{escape(item.summary)}</description></item>")
    parts.append("</channel></rss>")
    return "\n".join(parts).encode("utf-8")


def atom(items: list[Item], *, title: str = "Fixture Atom feed") -> bytes:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom">',
        f"<title>{escape(title)}</title><id>urn:fixture:{escape(title)}</id><updated>2026-03-18T00:00:00Z</updated>",
    ]
    for item in items:
        parts.append("<entry>")
        parts.append(f"<title>{escape(item.title)}</title>")
        if item.link is not None:
            parts.append(f'<link rel="alternate" href="{escape(item.link)}"/>')
        parts.append(f"<id>{escape(item.guid or item.link or item.title)}</id>")
        if isinstance(item.published, datetime):
            parts.append(f"<published>{item.published.isoformat()}</published>")
            parts.append(f"<updated>{item.published.isoformat()}</updated>")
        parts.append(f"<summary>{escape(item.summary)}</summary></entry>")
    parts.append("</feed>")
    return "\n".join(parts).encode("utf-8")
