"""The real thing: `airflow standalone` started the way `make run` starts it, a backfill of
three past days through the REST API against loopback sources, a reprocessing backfill
that must leave the same rows, and a manual run with params. Every process started is
stopped, by pid, at the end. Takes a few minutes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa

from httpserver import Item, rss
from steppewatch.schema import article_entities, articles, feed_items, mentions, runs, source_runs

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = ROOT / "scripts" / "airflow_local.py"
DAG_ID = "steppewatch_daily"

pytestmark = pytest.mark.slow

STORIES = [
    ("Tajik citizen detained in Moscow over plot for Islamic State",
     "Police in Moscow detained a 29-year-old Tajik citizen suspected of preparing a terrorist attack on a "
     "railway station on the orders of an Islamic State handler, investigators said. The man had worked on "
     "building sites for three years; searches of his rented room found components for an explosive device."),
    ("Almaty opens new bus lanes on Abay avenue",
     "The city of Almaty opened dedicated bus lanes along Abay avenue on Monday, the transport department said, "
     "after a three-month trial on a shorter stretch cut journey times by a fifth. Cyclists will share the new "
     "lanes outside rush hour, and cameras will fine drivers who stop in them from next month."),
    ("Uzbek court jails recruiter for Katibat Imam al-Bukhari",
     "A court in Tashkent sentenced a 41-year-old man to nine years in prison for recruiting young men from "
     "Namangan to fight for Katibat Imam al-Bukhari in Syria, prosecutors said. He had sent at least four "
     "recruits through Turkey in 2024 and collected money for their tickets through a mobile wallet."),
    ("Dushanbe hosts regional conference on irrigation",
     "Water ministers from five countries met in Dushanbe on Thursday to discuss irrigation along the Vakhsh "
     "and the Amu Darya, with lining old canals and metering water at the farm gate high on the agenda. The "
     "delegations agreed to publish shared flow data every month during the growing season."),
    ("Kyrgyz GKNB detains members of Hizb ut-Tahrir in Jalal-Abad",
     "The State Committee for National Security of Kyrgyzstan said it had detained five members of the banned "
     "Hizb ut-Tahrir in Jalal-Abad and seized leaflets and books that courts have declared extremist. The "
     "suspects face charges of distributing extremist materials and could be jailed for up to eight years."),
    ("Turkmenistan raises cotton purchase price for farmers",
     "Turkmenistan raised the state purchase price for raw cotton by twelve percent for the coming harvest, "
     "a government decree published on Friday said. Farmers in Lebap and Mary provinces had complained that "
     "fuel and fertiliser costs had outpaced the price paid by state buyers for two seasons in a row."),
]


def page(title: str, text: str) -> bytes:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title></head><body>"
            f"<article><h1>{title}</h1><p>{text}</p><p>{text.replace('.', ';', 1)}</p></article></body></html>"
            ).encode()


def news_sitemap(entries: list[tuple[str, datetime, str]]) -> bytes:
    rows = "".join(
        f"<url><loc>{loc}</loc><news:news><news:publication><news:name>Archive Post</news:name>"
        f"<news:language>en</news:language></news:publication><news:publication_date>{date.isoformat()}"
        f"</news:publication_date><news:title>{title}</news:title></news:news></url>" for loc, date, title in entries)
    return ('<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
            'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">' + rows + "</urlset>").encode()


class Api:
    def __init__(self, base: str, token: str | None = None):
        self.base, self.token = base, token

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        """POST, trying again while Airflow's SQLite metadata database answers 503 "locked"
        (what make run uses; a client of a busy Airflow must expect it)."""
        for _ in range(20):
            status, answer = self.call("POST", path, body)
            if status != 503:
                return status, answer
            time.sleep(3)
        return status, answer

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(f"{self.base}{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Content-Type": "application/json"})
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")
        except (urllib.error.URLError, OSError):
            return 0, {}  # not listening yet


def wait_for(what: str, check, *, timeout: float, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def snapshot(engine) -> dict:
    with engine.connect() as conn:
        return {
            "articles": [dict(r) for r in conn.execute(sa.select(articles).order_by(articles.c.id)).mappings()],
            "mentions": [dict(r) for r in conn.execute(sa.select(mentions).order_by(mentions.c.id)).mappings()],
            "article_entities": [dict(r) for r in conn.execute(
                sa.select(article_entities).order_by(article_entities.c.article_id, article_entities.c.entity_id)
            ).mappings()],
            "feed_items": [dict(r) for r in conn.execute(
                sa.select(feed_items.c.id, feed_items.c.guid, feed_items.c.article_id).order_by(feed_items.c.id)
            ).mappings()],
        }


def test_backfill_reprocess_and_manual_run_through_the_api(site, tmp_path, postgres):
    now = datetime.now(timezone.utc)
    if now.hour == 0 and now.minute < 3:
        time.sleep(200)  # keep the recent story out of yesterday's scheduled run
        now = datetime.now(timezone.utc)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    days = [today - timedelta(days=n) for n in (6, 5, 4)]
    at = [day + timedelta(hours=9) for day in days]
    recent = now - timedelta(minutes=2)

    urls = {n: site.url(f"/story/{n}.html") for n in range(len(STORIES))}
    for n, (title, text) in enumerate(STORIES):
        site.add(f"/story/{n}.html", page(title, text))
    # the wire's feed still lists the three days; the post's feed has moved on, its sitemap has not
    site.add("/wire/feed", rss([
        Item(STORIES[0][0], urls[0], "w0", at[0]), Item(STORIES[1][0], urls[1], "w1", at[1]),
        Item(STORIES[2][0], urls[2], "w2", at[2]),
        Item("An older story", site.url("/story/old.html"), "w-old", days[0] - timedelta(days=3)),
        Item(STORIES[5][0], urls[5], "w5", recent),
    ]))
    site.add("/post/feed", rss([Item("Today's story", site.url("/story/today.html"), "p-today", recent)]))
    site.add("/post/sitemap.xml", news_sitemap([(urls[3], at[1] + timedelta(hours=1), STORIES[3][0]),
                                                (urls[4], at[2] + timedelta(hours=2), STORIES[4][0]),
                                                (site.url("/story/older.html"), days[0] - timedelta(days=5),
                                                 "Older")]))
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        f"sources:\n  - name: Backfill Wire\n    kind: news\n    feed: {site.url('/wire/feed')}\n"
        f"    homepage: {site.base}/\n    language: en\n"
        f"  - name: Archive Post\n    kind: news\n    feed: {site.url('/post/feed')}\n    homepage: {site.base}/\n"
        f"    language: en\n    sitemap: {site.url('/post/sitemap.xml')}\n", encoding="utf-8")

    warehouse_url = postgres.new()
    engine = sa.create_engine(warehouse_url.replace("postgresql://", "postgresql+psycopg2://"))
    home = tmp_path / "airflow_home"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({"AIRFLOW_CONN_NEWS_WAREHOUSE": warehouse_url, "STEPPEWATCH_SOURCES": str(sources),
                "STEPPEWATCH_TASK_RETRIES": "1", "STEPPEWATCH_RETRY_DELAY_SECONDS": "1",
                "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2", "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5"})
    log = (tmp_path / "airflow.log").open("w")
    launcher = subprocess.Popen([sys.executable, str(LAUNCHER), "--home", str(home), "--port", str(port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    started: set[int] = set()
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for("the API server", lambda: Api(base).call("GET", "/api/v2/version")[0] == 200
                 if launcher.poll() is None else pytest.fail("the launcher died"), timeout=240)
        password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
        status, body = Api(base).call("POST", "/auth/token", {"username": "admin", "password": password})
        assert status in (200, 201) and body["access_token"]
        api = Api(base, body["access_token"])
        assert Api(base).call("GET", f"/api/v2/dags/{DAG_ID}")[0] == 401, "the API wants a token"
        wait_for("the DAG, parsed and unpaused",
                 lambda: (lambda r: r[0] == 200 and not r[1].get("is_paused"))(api.call("GET", f"/api/v2/dags/{DAG_ID}")),
                 timeout=180)
        started = {p.pid for p in psutil.Process(launcher.pid).children(recursive=True)}
        # the DAG starts unpaused: yesterday's scheduled run goes first (it finds nothing)
        wait_for("the scheduled run", lambda: (lambda runs: runs and all(
            r["state"] in ("success", "failed") for r in runs))(
            api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns")[1].get("dag_runs")), timeout=300, every=3)

        # -- a backfill of three past days --------------------------------------------
        request = {"dag_id": DAG_ID, "from_date": days[0].isoformat(), "to_date": days[2].isoformat(),
                   "reprocess_behavior": "none", "max_active_runs": 3, "dag_run_conf": {}}
        status, backfill = api.post("/api/v2/backfills", request)
        assert status in (200, 201), backfill

        def backfill_runs(backfill_id: int):
            _, found = api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=100")
            mine = [r for r in found["dag_runs"] if r["run_type"] == "backfill"]
            done = [r for r in mine if r["state"] in ("success", "failed")]
            return mine if len(mine) == 3 and len(done) == 3 and api.call(
                "GET", f"/api/v2/backfills/{backfill_id}")[1].get("completed_at") else None

        first = wait_for("the backfill's runs", lambda: backfill_runs(backfill["id"]), timeout=600, every=5)
        assert all(r["state"] == "success" for r in first), [(r["dag_run_id"], r["state"]) for r in first]
        intervals = sorted((datetime.fromisoformat(r["data_interval_start"].replace("Z", "+00:00")),
                            datetime.fromisoformat(r["data_interval_end"].replace("Z", "+00:00"))) for r in first)
        assert [start for start, _ in intervals] == days, "one run per day, covering that day"

        with engine.connect() as conn:
            stored = {row.url: row for row in conn.execute(sa.select(articles))}
            run_rows = conn.execute(sa.select(runs).where(runs.c.trigger == "backfill")).mappings().all()
        # each day's stories, from the feed and from the sitemap; nothing from outside the days
        assert set(stored) == {urls[0], urls[1], urls[2], urls[3], urls[4]}
        for n, day in ((0, 0), (1, 1), (2, 2), (3, 1), (4, 2)):
            assert days[day] <= stored[urls[n]].published_at < days[day] + timedelta(days=1), n
        assert stored[urls[0]].relevant and stored[urls[2]].relevant and stored[urls[4]].relevant
        assert not stored[urls[1]].relevant and not stored[urls[3]].relevant
        assert len(run_rows) == 3 and all(r["status"] == "succeeded" for r in run_rows)
        before = snapshot(engine)

        # -- reprocess the finished days: the same rows ----------------------------------
        status, again = api.post("/api/v2/backfills", {**request, "reprocess_behavior": "completed"})
        assert status in (200, 201), again
        wait_for("the reprocessing backfill", lambda: api.call("GET", f"/api/v2/backfills/{again['id']}")[1]
                 .get("completed_at"), timeout=600, every=5)
        _, found = api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=100")
        assert all(r["state"] == "success" for r in found["dag_runs"] if r["run_type"] == "backfill")
        assert snapshot(engine) == before

        # -- a manual run with params ------------------------------------------------------
        status, refused = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns",
                                   {"logical_date": None, "conf": {"max_items_per_source": 0}})
        assert status == 400, refused
        status, manual = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", {
            "logical_date": None, "conf": {"sources": ["Backfill Wire"], "max_items_per_source": 5}})
        assert status in (200, 201), manual
        run_id = manual["dag_run_id"]
        state = wait_for("the manual run", lambda: (lambda r: r if r in ("success", "failed") else None)(
            api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")[1].get("state")), timeout=300, every=3)
        assert state == "success"
        with engine.connect() as conn:
            manual_sources = conn.execute(sa.select(source_runs.c.source).join(runs, runs.c.id == source_runs.c.run_id)
                                          .where(runs.c.run_key.like(f"%{run_id}"))).scalars().all()
            now_stored = set(conn.execute(sa.select(articles.c.url)).scalars())
        assert manual_sources == ["Backfill Wire"], "only the chosen source"
        assert urls[5] in now_stored and site.url("/story/today.html") not in now_stored
    finally:
        started |= {p.pid for p in psutil.Process(launcher.pid).children(recursive=True)} if launcher.poll() is None \
            else set()
        if launcher.poll() is None:
            os.kill(launcher.pid, signal.SIGINT)
        try:
            launcher.wait(timeout=120)
        finally:
            log.close()
            engine.dispose()
        alive = [pid for pid in started if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
        for pid in alive:
            os.kill(pid, signal.SIGKILL)
        assert alive == [], f"processes left running: {alive}"
