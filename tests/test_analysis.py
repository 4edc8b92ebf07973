"""What analysts read, on SQLite and PostgreSQL: filters, pagination, the evidence of one
article, trends, source health, exports (CSV round trip, JSON lines, Atom through feedparser),
digests and their email through a real SMTP server on loopback."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import json
import socket
from datetime import date

import feedparser
import pytest

from analysts import SCRIPT_TITLE, populate, run_id, run_window
from steppewatch import analysis, digest


@pytest.fixture
def stocked(warehouse):
    return populate(warehouse)


def titles(page: analysis.Page) -> list[str]:
    return [row.title for row in page.rows]


def test_filters_by_state_group_person_source_language_and_dates(warehouse, stocked):
    with warehouse.read() as conn:
        every = analysis.find_articles(conn, analysis.ArticleFilter())
        # relevant originals only, newest first; the syndicated copy is counted on its original
        assert [r.id for r in every.rows] == [stocked["aktobe"], stocked["osh"], stocked["tashkent"], stocked["moscow"]]
        assert every.rows[-1].copies == 1 and every.total == 4
        assert titles(analysis.find_articles(conn, analysis.ArticleFilter(country="Tajikistan"))) == [
            "Tajik citizen detained in Moscow over plot for Islamic State"]
        assert [r.id for r in analysis.find_articles(conn, analysis.ArticleFilter(group="Hizb ut-Tahrir")).rows] == [
            stocked["osh"]]
        assert [r.id for r in analysis.find_articles(conn, analysis.ArticleFilter(person="Ruslan Kulekbayev")).rows] \
            == [stocked["aktobe"]]
        assert [r.id for r in analysis.find_articles(conn, analysis.ArticleFilter(language="ru")).rows] == [
            stocked["osh"]]
        assert [r.id for r in analysis.find_articles(conn, analysis.ArticleFilter(source="Caspian Post")).rows] == [
            stocked["aktobe"]]
        window = analysis.ArticleFilter(start=date(2026, 11, 21), end=date(2026, 11, 22))
        assert [r.id for r in analysis.find_articles(conn, window).rows] == [stocked["osh"], stocked["tashkent"]]
        with_copies = analysis.find_articles(conn, analysis.ArticleFilter(country="Tajikistan", copies=True))
        assert sorted(r.id for r in with_copies.rows) == sorted([stocked["moscow"], stocked["moscow-copy"]])
        everything = analysis.find_articles(conn, analysis.ArticleFilter(relevant=None))
        assert stocked["almaty"] in [r.id for r in everything.rows]
        row = next(r for r in every.rows if r.id == stocked["tashkent"])
        assert row.countries == ["Uzbekistan"] and row.groups == ["Katibat Imam al-Bukhari"]


def test_free_text_search_in_titles_and_texts(warehouse, stocked):
    with warehouse.read() as conn:
        assert [r.id for r in analysis.find_articles(conn, analysis.ArticleFilter(q="railway station")).rows] == [
            stocked["moscow"]]
        assert [r.id for r in analysis.find_articles(conn, analysis.ArticleFilter(q="Namangan")).rows] == [
            stocked["tashkent"]]
        # Cyrillic too
        assert [r.id for r in analysis.find_articles(conn, analysis.ArticleFilter(q="листовки")).rows] == [
            stocked["osh"]]
        assert analysis.find_articles(conn, analysis.ArticleFilter(q="avalanche")).total == 0
        # words the search syntax would read as operators are words
        assert analysis.find_articles(conn, analysis.ArticleFilter(q="'; drop table articles; --")).total == 0


def test_pagination(warehouse, stocked):
    with warehouse.read() as conn:
        first = analysis.find_articles(conn, analysis.ArticleFilter(), page=1, per_page=10)
        assert first.pages == 1
        pages = [analysis.find_articles(conn, analysis.ArticleFilter(relevant=None, copies=True), page=n, per_page=10)
                 for n in (1, 2)]
    assert pages[0].total == 6 and pages[0].pages == 1 and len(pages[0].rows) == 6
    assert pages[1].page == 1, "a page past the end shows the last page"


def test_bad_filter_values_are_refused_with_a_reason():
    with pytest.raises(analysis.FilterError, match="not a date"):
        analysis.ArticleFilter.from_params({"start": "yesterday"})
    with pytest.raises(analysis.FilterError, match="before start"):
        analysis.ArticleFilter.from_params({"start": "2026-11-22", "end": "2026-11-20"})
    flt = analysis.ArticleFilter.from_params({"country": " Tajikistan ", "q": "x" * 500, "copies": "1"})
    assert flt.country == "Tajikistan" and len(flt.q) == 200 and flt.copies


def test_article_detail_highlights_each_mention_and_lists_copies(warehouse, stocked):
    with warehouse.read() as conn:
        detail = analysis.article_detail(conn, stocked["moscow"])
        copy = analysis.article_detail(conn, stocked["moscow-copy"])
        assert analysis.article_detail(conn, 10_000) is None
    marked = [(text, h) for text, h in detail.segments if h]
    assert {text for text, _ in marked} >= {"Tajik", "Islamic State"}
    tajik = next(h for text, h in marked if text == "Tajik")
    assert tajik.role == "anchor" and tajik.rules and "Tajik" in tajik.aliases
    assert "".join(text for text, _ in detail.segments) == detail.article["text"], "nothing lost or doubled"
    assert [c["id"] for c in detail.copies] == [stocked["moscow-copy"]] and detail.original is None
    assert copy.original["id"] == stocked["moscow"]
    assert detail.tied["country"] == ["Tajikistan"]


def test_highlights_never_overlap_and_skip_offsets_outside_the_text():
    found = [{"rule": "a", "field": "text", "entities": [
        {"text": "Tajik", "label": "NATIONAL", "canonical": "Tajik", "start": 2, "end": 7, "role": "anchor"},
        {"text": "jik ci", "label": "X", "canonical": "X", "start": 4, "end": 10, "role": "signal"},
        {"text": "zzz", "label": "X", "canonical": "X", "start": 50, "end": 53, "role": "signal"}]}]
    segments = analysis.highlight_segments("A Tajik citizen", found)
    assert segments[0] == ("A ", None) and segments[1][0] == "Tajik" and segments[2] == (" citizen", None)


def test_trends_count_mentions_per_day_by_state_and_group(warehouse, stocked):
    flt = analysis.ArticleFilter(start=date(2026, 11, 19), end=date(2026, 11, 24))
    with warehouse.read() as conn:
        states = analysis.trends(conn, flt, kind="country")
        groups = analysis.trends(conn, flt, kind="group")
        with pytest.raises(analysis.FilterError):
            analysis.trends(conn, flt, kind="planet")
    assert states["days"][0] == date(2026, 11, 19) and len(states["days"]) == 6
    by_name = {s["name"]: s["counts"] for s in states["series"]}
    assert by_name["Tajikistan"][1] >= 1 and sum(by_name["Tajikistan"]) == by_name["Tajikistan"][1], \
        "the copy of the 21st is not counted twice"
    assert by_name["Kyrgyzstan"][3] >= 1
    assert "Katibat Imam al-Bukhari" in {s["name"] for s in groups["series"]}


def test_source_health_flags_a_source_gone_silent(warehouse, stocked):
    with warehouse.read() as conn:
        health = {s.name: s for s in analysis.source_health(conn, days=14)}
    quiet = health["Quiet Review"]
    assert quiet.went_silent and sum(quiet.items_per_day) == 9 and quiet.items_per_day[-3:] == [0, 0, 0]
    assert not health["Steppe Times"].went_silent, "it brought an item an hour ago"
    failing = health["Caspian Post"]
    assert failing.consecutive_failures == 4 and "503" in failing.last_error and failing.last_status == "http_error"


def test_csv_export_round_trips(warehouse, stocked):
    with warehouse.read() as conn:
        text = "".join(analysis.to_csv(analysis.export_articles(conn, analysis.ArticleFilter()),
                                       analysis.ARTICLE_FIELDS))
        mentions = [json.loads(line) for line in analysis.to_jsonl(
            analysis.export_mentions(conn, analysis.ArticleFilter(country="Uzbekistan")))]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["id"]) for r in rows] == [stocked["aktobe"], stocked["osh"], stocked["tashkent"], stocked["moscow"]]
    tashkent = next(r for r in rows if int(r["id"]) == stocked["tashkent"])
    assert tashkent["title"] == SCRIPT_TITLE and tashkent["countries"] == "Uzbekistan"
    osh = next(r for r in rows if int(r["id"]) == stocked["osh"])
    assert osh["title"] == "ГКНБ задержал в Оше членов «Хизб ут-Тахрир»"
    assert mentions and all(m["article_id"] == stocked["tashkent"] for m in mentions)
    assert all({"sentence", "rule", "aliases", "start_offset", "end_offset"} <= m.keys() for m in mentions)


def test_atom_feed_validates_with_feedparser(warehouse, stocked):
    with warehouse.read() as conn:
        body = analysis.atom_feed(conn, analysis.ArticleFilter(country="Uzbekistan"),
                                  feed_url="http://ui.test/steppewatch/feed.atom?country=Uzbekistan",
                                  site_url="http://ui.test/steppewatch")
    parsed = feedparser.parse(body.encode("utf-8"))
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10" and "country=Uzbekistan" in parsed.feed.title
    (entry,) = parsed.entries
    assert entry.title == SCRIPT_TITLE and entry.link == "http://news.test/tashkent"
    assert {t.term for t in entry.tags} == {"Uzbekistan", "Katibat Imam al-Bukhari"}


def test_digest_groups_the_runs_stories_each_once(warehouse, stocked):
    run = run_id(warehouse)
    written = warehouse.transaction(lambda conn: digest.write_digest(conn, run, run_window()))
    assert written["stories"] == 4
    stories = [s for _, items in written["sections"] for s in items]
    assert len({s["id"] for s in stories}) == len(stories) == 4, "each story once"
    moscow = next(s for s in stories if s["id"] == stocked["moscow"])
    assert moscow["also"] == ["Caspian Post"], "the copy is named, not repeated"
    headings = [heading for heading, _ in written["sections"]]
    assert "Tajikistan — Islamic State" in headings and "Uzbekistan — Katibat Imam al-Bukhari" in headings
    assert "also Caspian Post" in written["text"]
    # a rerun of the report rewrites the same digest
    again = warehouse.transaction(lambda conn: digest.write_digest(conn, run, run_window()))
    assert again["id"] == written["id"] and again["sections"] == written["sections"]


class Mailbox:
    """A real SMTP server on loopback that keeps what it receives."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages: list[bytes] = []
        mailbox = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
                mailbox.messages.append(envelope.content)
                return "250 OK"

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self):
        self.controller.stop()


def test_digest_is_emailed_once_through_the_smtp_connection(warehouse, stocked, monkeypatch):
    run = run_id(warehouse)
    written = warehouse.transaction(lambda conn: digest.write_digest(conn, run, run_window()))
    note = warehouse.transaction(lambda conn: digest.send_digest(conn, written))
    assert note.startswith("not sent: no recipients")
    mailbox = Mailbox()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", f"smtp://127.0.0.1:{mailbox.port}")
        monkeypatch.setenv("STEPPEWATCH_DIGEST_TO", "desk@analysts.test, lead@analysts.test")
        note = warehouse.transaction(lambda conn: digest.send_digest(conn, written))
        assert note == "sent to desk@analysts.test, lead@analysts.test"
        (raw,) = mailbox.messages
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert message["Subject"] == "steppewatch: 4 stories, 2026-11-20"
        text, html = (message.get_body((kind,)).get_content() for kind in ("plain", "html"))
        assert "Tajik citizen detained in Moscow" in text and "also Caspian Post" in text
        assert "&lt;script&gt;" in html and "<script>" not in html, "titles are escaped in the HTML part"
        # sent once: a rerun of the report does not mail again
        stored = warehouse.transaction(lambda conn: digest.write_digest(conn, run, run_window()))
        assert warehouse.transaction(lambda conn: digest.send_digest(conn, stored)) == note
        assert len(mailbox.messages) == 1
    finally:
        mailbox.stop()


def test_export_command_writes_the_filters_articles_mentions_and_feed(warehouse, stocked, tmp_path):
    import subprocess
    import sys

    def export(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "steppewatch", "export", *args], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    rows = list(csv.DictReader(io.StringIO(export("articles", "--country", "Kyrgyzstan"))))
    assert [int(r["id"]) for r in rows] == [stocked["osh"]]
    lines = [json.loads(line) for line in export("mentions", "--format", "jsonl", "--group", "Katibat Imam al-Bukhari")
             .splitlines()]
    assert lines and {line["article_id"] for line in lines} == {stocked["tashkent"]}
    target = tmp_path / "feed.atom"
    export("atom", "--language", "ru", "-o", str(target))
    parsed = feedparser.parse(target.read_bytes())
    assert not parsed.bozo and [e.link for e in parsed.entries] == ["http://news.test/osh"]
    done = subprocess.run([sys.executable, "-m", "steppewatch", "export", "articles", "--start", "soon"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not a date" in done.stderr
