"""A small world of sources on the loopback server, with the bad inputs DESIGN.md lists.

Good sources serve the fixture pages; the others misbehave in one way each. Tests run
passes over it and check what landed in the warehouse and what was recorded.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from httpserver import FixtureServer, Item, Reply, atom, rss
from steppewatch.config import load_settings
from steppewatch.pipeline import run_pass
from steppewatch.sources import load_sources
from steppewatch.windows import Window


def day(d: int, hour: int = 8) -> datetime:
    return datetime(2026, 3, d, hour, tzinfo=timezone.utc)


# Short articles written for these tests (the fixture pages cover the long ones).
BRIEFS = {
    "/briefs/osh-checkpoint.html": (
        "Osh checkpoint reopens after two-week closure",
        [
            "The border crossing south of Osh reopened to freight traffic on Monday after a two-week closure "
            "that local traders said had left hundreds of lorries queuing along the approach road.",
            "Customs officers on both sides cited repairs to the inspection hall and a new scanner, and said "
            "passenger traffic would resume under the usual schedule later in the week.",
            "Drivers waiting at the barrier said the delay had spoiled part of the early vegetable harvest "
            "bound for markets in Kazakhstan and Russia, and asked for compensation from the authorities.",
        ],
    ),
    "/briefs/almaty-metro.html": (
        "Almaty city council approves third metro line study",
        [
            "Almaty's city council approved funding for a feasibility study of a third metro line that would "
            "link the western districts with the railway station, officials said on Wednesday.",
            "The study is expected to take eighteen months, and the council said construction could begin only "
            "after the second line's extension is finished, which is now scheduled for the end of next year.",
            "Residents of the new housing estates on the western edge of the city have long complained about "
            "crowded buses and hour-long journeys to the centre during the morning rush.",
        ],
    ),
    "/briefs/dushanbe-flood-drill.html": (
        "Dushanbe rescue services rehearse spring flood response",
        [
            "Emergency services in Dushanbe staged a two-day exercise this week to rehearse their response to "
            "mudflows and river floods, which hit the capital's outskirts most springs.",
            "Crews practised evacuating a school and a clinic in the Varzob valley and setting up a field "
            "kitchen, while volunteers checked the warning sirens along the riverbank.",
            "Officials said the exercise showed that radio links between district teams still fail in the "
            "narrow side valleys, and promised new repeaters before the snow begins to melt in April.",
        ],
    ),
}


def brief_page(base: str, path: str) -> bytes:
    title, paragraphs = BRIEFS[path]
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title} | Brief Wire</title>"
        f"<link rel='canonical' href='{base}{path}'></head><body>"
        "<nav><a href='/'>Home</a> <a href='/region'>Region</a> <a href='/economy'>Economy</a></nav>"
        f"<article><h1>{title}</h1><p class='byline'>By Brief Wire staff</p>{body}</article>"
        "<footer>Brief Wire - regional news in brief</footer></body></html>"
    ).encode("utf-8")


@dataclass
class World:
    server: FixtureServer
    sources_file: Path

    def url(self, path: str) -> str:
        return self.server.url(path)


GOOD_SOURCES = ["Steppe Times", "Ferghana Wire", "Caspian Post", "Analysis Desk", "Azattyk RU", "Brief Wire"]
FAILING_FEEDS = {
    "Broken XML": "discover/malformed_feed",
    "Homepage Not Feed": "discover/not_a_feed",
    "Gone Feed": "discover/http_error",
    "Refused Feed": "discover/connection_error",
    "Looping Feed": "discover/redirect_loop",
    "Sneaky Feed": "discover/blocked_address",
    "Slow Feed": "discover/timeout",
}


def build_world(server: FixtureServer, directory: Path, *, refused_port: int) -> World:
    """Register every route and write the sources file; returns the world."""
    base = server.base
    u = server.url
    st = "/steppe-times/2026/03"
    server.add("/steppe-times/rss.xml", rss([
        # tracking parameters must not make a second article
        Item("Tajik security service detains 14", u(f"{st}/10/dushanbe-arrests.html?utm_source=rss&utm_medium=feed"),
             "st-1", day(10)),
        # the same link again under another GUID: a duplicate within one feed
        Item("Tajik security service detains 14 (updated)", u(f"{st}/10/dushanbe-arrests.html"), "st-1b", day(10, 9)),
        Item("Uzbekistan loosens cotton cluster rules", u(f"{st}/11/cotton-harvest.html"), "st-2", day(11)),
        Item("Kazakhstan grain exports", u(f"{st}/16/no-date.html"), "st-3", None),
        Item("Turkmen gas pipeline", u("/steppe-times/2099/01/01/future-date.html"), "st-4",
             datetime(2099, 1, 1, tzinfo=timezone.utc)),
        Item("In pictures: Nowruz", u(f"{st}/17/gallery-only.html"), "st-5", day(17)),
        Item("Aktobe court jails five", u(f"{st}/18/kazakh-aktobe-trial.html"), "st-6", day(18)),
        Item("A story that was taken down", u(f"{st}/12/removed-story.html"), "st-7", day(12)),
        Item("Annual report (PDF)", u("/steppe-times/files/annual-report.pdf"), "st-8", day(12)),
        Item("An entry without a link", None, "st-9", day(12)),
    ], title="Steppe Times"))
    server.add("/steppe-times/files/annual-report.pdf", Reply(200, b"%PDF-1.7\n1 0 obj <<>> endobj\n",
                                                             {"Content-Type": "application/pdf"}))

    fw = "/ferghana-wire/news"
    server.add("/ferghana-wire/atom.xml", atom([
        Item("Kyrgyz and Tajik commissions meet in Batken", u(f"{fw}/2026-03-12-border-talks.html"), "fw-1", day(12)),
        # the print version declares the story as canonical: the same article
        Item("Border talks (print)", u(f"{fw}/2026-03-12-border-talks-print.html"), "fw-2", day(12, 9)),
        # a short link that redirects to the story: the same article again
        Item("Border talks (short link)", u("/ferghana-wire/s/bt"), "fw-3", day(12, 10)),
    ], title="Ferghana Wire"))
    server.add("/ferghana-wire/s/bt", Reply(301, b"", {"Location": f"{fw}/2026-03-12-border-talks.html"}))

    server.add("/caspian-post/feed/", rss([
        Item("Tajikistan arrests 14 (syndicated)", u("/caspian-post/2026/03/13/syndicated-dushanbe-arrests.html"),
             "cp-1", day(13)),
        # the same story as Steppe Times' first item, carried by a second feed: stored once
        Item("From our partners: Dushanbe arrests", u(f"{st}/10/dushanbe-arrests.html?ref=caspian"), "cp-2", day(10)),
        Item("Half a gigabyte of zeros", u("/caspian-post/bomb.html"), "cp-3", day(13)),
    ], title="Caspian Post"))
    server.add("/caspian-post/bomb.html", Reply(200, gzip.compress(b" " * (20 * 1024 * 1024), 9),
                                                {"Content-Encoding": "gzip"}))

    server.add("/analysis-desk/feed.xml", rss([
        Item("From labour migration to militancy", u("/analysis-desk/reports/jihadist-networks-central-asia.html"),
             "ad-1", day(5)),
    ], title="Analysis Desk"))

    az = "/azattyk-ru/2026/03"
    server.add("/azattyk-ru/rss", rss([
        Item("ГКНБ задержал сторонников запрещённой организации", u(f"{az}/14/zaderzhaniya.html"), "az-1", day(14)),
        Item("Рогунская ГЭС и вода", u(f"{az}/15/vodnye-resursy-cp1251.html"), "az-2", day(15)),
        Item("Внутренняя ссылка", u("/azattyk-ru/internal"), "az-3", day(15)),
    ], title="Азаттык"))
    # a server error on the first try, then the page: retried within the run
    cp1251 = f"{az}/15/vodnye-resursy-cp1251.html"
    server.add(cp1251, lambda r: Reply(500, b"oops") if r.count == 1 else server.static(cp1251))
    # a redirect to the cloud metadata address: refused, not followed
    server.add("/azattyk-ru/internal", Reply(302, b"", {"Location": "http://169.254.169.254/latest/meta-data/"}))

    server.add("/briefs/feed", rss([
        Item(BRIEFS[path][0], u(path), path, day(12 + n)) for n, path in enumerate(BRIEFS)
    ], title="Brief Wire"))
    for path in BRIEFS:
        server.add(path, brief_page(base, path))

    # the bad feeds
    server.add("/broken/rss", rss([
        Item("Almaty metro", u("/briefs/almaty-metro.html"), "b-1", day(13)),
    ]).replace(b"</channel></rss>", b"<item><title>unclosed & broken"))
    server.add("/homepage/rss", "<!DOCTYPE html><html><head><title>Home</title>"
               "<link rel='alternate' type='application/rss+xml' href='/homepage/feed/'></head>"
               "<body><h1>Welcome to our homepage</h1></body></html>")
    server.add("/gone/rss", Reply(410, b"Gone"))
    server.add("/loop/rss", Reply(302, b"", {"Location": "/loop/rss2"}))
    server.add("/loop/rss2", Reply(302, b"", {"Location": "/loop/rss"}))
    server.add("/sneaky/rss", Reply(302, b"", {"Location": "http://10.0.0.7/rss"}))
    server.add("/slow/rss", Reply(200, b"<rss/>", delay=1.5))

    feeds = {
        "Steppe Times": ("news", "/steppe-times/rss.xml"),
        "Ferghana Wire": ("news", "/ferghana-wire/atom.xml"),
        "Caspian Post": ("news", "/caspian-post/feed/"),
        "Analysis Desk": ("think_tank", "/analysis-desk/feed.xml"),
        "Azattyk RU": ("news", "/azattyk-ru/rss"),
        "Brief Wire": ("news", "/briefs/feed"),
        "Broken XML": ("news", "/broken/rss"),
        "Homepage Not Feed": ("news", "/homepage/rss"),
        "Gone Feed": ("think_tank", "/gone/rss"),
        "Looping Feed": ("news", "/loop/rss"),
        "Sneaky Feed": ("news", "/sneaky/rss"),
        "Slow Feed": ("news", "/slow/rss"),
    }
    lines = ["sources:"]
    for name, (kind, path) in feeds.items():
        language = "ru" if "Azattyk" in name else "en"
        lines += [f"  - name: {name}", f"    kind: {kind}", f"    feed: {u(path)}", f"    homepage: {base}/",
                  f"    language: {language}"]
    lines += ["  - name: Refused Feed", "    kind: news", f"    feed: http://127.0.0.1:{refused_port}/rss",
              "    homepage: http://127.0.0.1/", "    language: en"]
    sources_file = directory / "sources.yaml"
    sources_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return World(server, sources_file)


# The articles a full pass over the world must produce, by canonical URL path.
EXPECTED_ARTICLES = {
    "/steppe-times/2026/03/10/dushanbe-arrests.html",
    "/steppe-times/2026/03/11/cotton-harvest.html",
    "/steppe-times/2026/03/16/no-date.html",
    "/steppe-times/2099/01/01/future-date.html",
    "/steppe-times/2026/03/18/kazakh-aktobe-trial.html",
    "/ferghana-wire/news/2026-03-12-border-talks.html",
    "/caspian-post/2026/03/13/syndicated-dushanbe-arrests.html",
    "/analysis-desk/reports/jihadist-networks-central-asia.html",
    "/azattyk-ru/2026/03/14/zaderzhaniya.html",
    "/azattyk-ru/2026/03/15/vodnye-resursy-cp1251.html",
    "/briefs/osh-checkpoint.html",
    "/briefs/almaty-metro.html",
    "/briefs/dushanbe-flood-drill.html",
}


FULL_WINDOW_START = datetime(2026, 3, 1, tzinfo=timezone.utc)


def full_window() -> Window:
    """Every item of the world (items without a usable feed date count as published now)."""
    return Window(FULL_WINDOW_START, datetime.now(timezone.utc) + timedelta(hours=1))


def run(world: World, warehouse, window: Window | None = None, **kwargs):
    """One pass over the world's sources into ``warehouse``."""
    settings = load_settings().with_overrides(sources_path=world.sources_file)
    return run_pass(settings, load_sources(world.sources_file), window or full_window(), warehouse=warehouse, **kwargs)
