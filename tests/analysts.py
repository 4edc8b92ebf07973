"""A warehouse with what analysts read: tagged articles (one a syndicated copy, one with a
title that tries to inject a script, one in Russian), feed items, source health and a run.
The texts are written for the tests; the tags come from the real tagger."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from steppewatch import store
from steppewatch.schema import articles, feed_items, feed_state, runs, sources
from steppewatch.tagger import Tagger
from steppewatch.windows import Window

DAY = datetime(2026, 11, 20, tzinfo=timezone.utc)
SCRIPT_TITLE = "Uzbek court jails recruiter <script>alert('x')</script> for Katibat Imam al-Bukhari"

ARTICLES = [
    # (key, source, day offset, language, title, text)
    ("moscow", "Steppe Times", 0, "en", "Tajik citizen detained in Moscow over plot for Islamic State",
     "Police in Moscow detained a 29-year-old Tajik citizen suspected of preparing a terrorist attack on a railway "
     "station on the orders of an Islamic State handler, investigators said on Thursday.\n\nThe man had worked on "
     "building sites for three years; searches of his rented room found components for an explosive device and a "
     "phone with the handler's instructions."),
    ("moscow-copy", "Caspian Post", 1, "en", "Tajik man held in Moscow over Islamic State plot, police say",
     "Police in Moscow detained a 29-year-old Tajik citizen suspected of preparing a terrorist attack on a railway "
     "station on the orders of an Islamic State handler, investigators said on Thursday.\n\nThe man had worked on "
     "building sites for three years; searches of his rented room found components for an explosive device and a "
     "phone with the handler's instructions, the agency reported."),
    ("tashkent", "Steppe Times", 1, "en", SCRIPT_TITLE,
     "A court in Tashkent sentenced a 41-year-old man to nine years in prison for recruiting young men from Namangan "
     "to fight for Katibat Imam al-Bukhari in Syria, prosecutors said.\n\nHe had sent at least four recruits "
     "through Turkey and collected money for their tickets through a mobile wallet."),
    ("osh", "Azattyk RU", 2, "ru", "ГКНБ задержал в Оше членов «Хизб ут-Тахрир»",
     "Сотрудники ГКНБ Кыргызстана задержали в Ошской области шестерых членов запрещённой организации «Хизб "
     "ут-Тахрир». У задержанных изъяты листовки и книги, признанные судом экстремистскими материалами."),
    ("almaty", "Steppe Times", 2, "en", "Almaty opens new bus lanes on Abay avenue",
     "The city of Almaty opened dedicated bus lanes along Abay avenue on Monday, the transport department said, "
     "after a three-month trial on a shorter stretch cut journey times by a fifth.\n\nCyclists will share the new "
     "lanes outside rush hour, and cameras will fine drivers who stop in them from next month."),
    ("aktobe", "Caspian Post", 3, "en", "Ten years on, Aktobe remembers the 2016 attacks",
     "Families in Aktobe gathered on Sunday to remember the victims of the 2016 attacks, when gunmen seized "
     "weapons from two gun shops and stormed a military unit. Kazakhstan's courts later jailed dozens of people on "
     "terrorism charges.\n\nIn Almaty the same year Ruslan Kulekbayev killed police officers in a terrorist attack, "
     "a case the city's residents still recall."),
]


def populate(warehouse, *, now: datetime | None = None) -> dict[str, int]:
    """Fill a migrated warehouse; returns the article ids by key."""
    now = now or datetime.now(timezone.utc)
    tagger = Tagger(ner_models={})
    ids: dict[str, int] = {}

    def work(conn):
        for name, kind, language in (("Steppe Times", "news", "en"), ("Caspian Post", "news", "en"),
                                     ("Azattyk RU", "news", "ru"), ("Quiet Review", "think_tank", "en")):
            conn.execute(sources.insert().values(name=name, kind=kind, feed_url=f"http://feeds.test/{len(name)}",
                                                 homepage="http://feeds.test/", language=language, updated_at=now))
        for key, source, offset, language, title, text in ARTICLES:
            published = DAY + timedelta(days=offset, hours=9)
            article_id = conn.execute(articles.insert().values(
                url=f"http://news.test/{key}", source=source, title=title, language=language, text=text,
                published_at=published, published_at_source="feed", word_count=len(text.split()),
                content_hash=hashlib.sha256(text.encode()).hexdigest(), extractor_version="test",
                first_seen_at=published, extracted_at=published, updated_at=published,
            ).returning(articles.c.id)).scalar_one()
            ids[key] = article_id
            conn.execute(feed_items.insert().values(
                source=source, guid=key, link=f"http://news.test/{key}", url=f"http://news.test/{key}", title=title,
                feed_published_at=published, first_seen_at=published, last_seen_at=published, window_at=published,
                article_id=article_id))
        conn.execute(articles.update().where(articles.c.id == ids["moscow-copy"])
                     .values(duplicate_of=ids["moscow"], duplicate_similarity=0.81))
        # source health: one source brought items every day and then fell silent, one failing
        for day in range(14):
            moment = now - timedelta(days=13 - day, hours=1)
            if day < 9:
                conn.execute(feed_items.insert().values(
                    source="Quiet Review", guid=f"quiet-{day}", link=f"http://quiet.test/{day}",
                    url=f"http://quiet.test/{day}", first_seen_at=moment, last_seen_at=moment, window_at=moment))
        conn.execute(feed_items.insert().values(
            source="Steppe Times", guid="steppe-today", link="http://news.test/today", url="http://news.test/today",
            first_seen_at=now - timedelta(hours=1), last_seen_at=now, window_at=now - timedelta(hours=1)))
        conn.execute(feed_state.insert().values(
            source="Caspian Post", feed_url="http://feeds.test/12", last_status="http_error", consecutive_failures=4,
            last_error="HTTP 503 Service Unavailable", last_success_at=now - timedelta(days=5)))
        conn.execute(runs.insert().values(run_key="test:run", trigger="test", window_start=DAY,
                                          window_end=DAY + timedelta(days=4), started_at=now, finished_at=now,
                                          status="succeeded"))

    warehouse.transaction(work)
    with warehouse.read() as conn:
        batch = store.load_articles_to_tag(conn, list(ids.values()))
    results = list(tagger.tag_many([(a.text, a.title, a.language) for a in batch]))
    warehouse.transaction(lambda conn: store.write_tags(conn, [(a.id, r) for a, r in zip(batch, results)], now))
    return ids


def run_window() -> Window:
    return Window(DAY, DAY + timedelta(days=4))


def run_id(warehouse) -> int:
    with warehouse.read() as conn:
        return conn.execute(sa.select(runs.c.id).where(runs.c.run_key == "test:run")).scalar_one()
