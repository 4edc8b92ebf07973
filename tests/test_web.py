"""The analysts' pages in a real Airflow API server: the plugin is mounted, every route wants
an Airflow user, filters, pages and exports work over HTTP, nothing from an article is ever
markup, and a real headless Chromium reads the page, filters, opens an article and finds the
highlighted mention (a screenshot goes to test-artifacts/)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from analysts import SCRIPT_TITLE, populate
from steppewatch.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def fetch(url: str, token: str | None = None, *, method: str = "GET", body: dict | None = None):
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("content-type", ""), response.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("content-type", ""), err.read().decode("utf-8", "replace")


@pytest.fixture(scope="module")
def ui(postgres, tmp_path_factory):
    """An Airflow API server with the steppewatch plugin, over a PostgreSQL warehouse with
    the analysts' fixture rows."""
    warehouse_url = postgres.new()
    warehouse = Warehouse(warehouse_url)
    ids = populate(warehouse)
    warehouse.dispose()
    home = tmp_path_factory.mktemp("airflow-ui")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(port),
        "AIRFLOW_CONN_NEWS_WAREHOUSE": warehouse_url,
    })
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    log = (home / "api-server.log").open("w")
    server = subprocess.Popen([AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if fetch(f"{base}/api/v2/version")[0] == 200:
                    break
            except (urllib.error.URLError, OSError):
                pass
            assert server.poll() is None, (home / "api-server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the API server did not come up"
            time.sleep(1)
        password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
        status, _, body = fetch(f"{base}/auth/token", method="POST", body={"username": "admin", "password": password})
        assert status in (200, 201), body
        yield SimpleNamespace(base=base, token=json.loads(body)["access_token"], ids=ids)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        log.close()


def page(ui, path: str):
    return fetch(f"{ui.base}/steppewatch{path}", ui.token)


@pytest.mark.parametrize("path", ["/mentions", "/articles/1", "/trends", "/sources", "/digests",
                                  "/export/articles.csv", "/export/mentions.jsonl", "/feed.atom"])
def test_every_route_wants_an_airflow_user(ui, path):
    status, _, _ = fetch(f"{ui.base}/steppewatch{path}")
    assert status == 401
    status, _, _ = fetch(f"{ui.base}/steppewatch{path}", "not-a-token")
    assert status in (401, 403)
    status, _, _ = page(ui, path)
    assert status == 200


def test_the_plugin_adds_the_page_under_browse(ui):
    status, _, body = fetch(f"{ui.base}/api/v2/plugins", ui.token)
    assert status == 200
    (plugin,) = [p for p in json.loads(body)["plugins"] if p["name"] == "steppewatch"]
    (view,) = plugin["external_views"]
    assert view["name"] == "Central Asia mentions" and view["href"] == "/steppewatch/mentions"
    assert view["category"] == "browse" and view["destination"] == "nav"


def test_filters_and_pagination_over_http(ui):
    status, content_type, body = page(ui, "/mentions?country=Tajikistan")
    assert status == 200 and content_type.startswith("text/html")
    assert "Tajik citizen detained in Moscow" in body and "Namangan" not in body
    assert body.count('class="article"') == 1 and "1 copy" in body
    _, _, body = page(ui, "/mentions?q=Namangan")
    assert body.count('class="article"') == 1
    _, _, body = page(ui, "/mentions?language=ru")
    assert "ГКНБ задержал в Оше" in body and body.count('class="article"') == 1
    _, _, body = page(ui, "/mentions?per_page=10&page=1")
    assert "page 1 of 1" in body and body.count('class="article"') == 4
    status, _, body = page(ui, "/mentions?start=last-week")
    assert status == 400 and "not a date" in body


def test_article_text_is_never_markup(ui):
    _, _, body = page(ui, "/mentions")
    assert "<script>alert" not in body and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in body
    _, _, body = page(ui, f"/articles/{ui.ids['tashkent']}")
    assert "<script>alert" not in body and "&lt;script&gt;" in body
    assert '<mark class="anchor"' in body and 'data-canonical="Namangan"' in body


def test_exports_over_http(ui):
    status, content_type, body = page(ui, "/export/articles.csv?country=Uzbekistan")
    assert status == 200 and content_type.startswith("text/csv")
    (row,) = list(csv.DictReader(io.StringIO(body)))
    assert row["title"] == SCRIPT_TITLE and row["groups"] == "Katibat Imam al-Bukhari"
    status, content_type, body = page(ui, "/feed.atom?group=Hizb%20ut-Tahrir")
    assert status == 200 and "atom" in content_type and "<entry>" in body


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Chromium: .ci/run installs Debian's chromium")
def test_a_real_browser_filters_and_opens_an_article(ui):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            # the Airflow UI keeps its user's token in this cookie; the plugin's pages read it
            context.add_cookies([{"name": "_token", "value": ui.token, "url": ui.base}])
            tab = context.new_page()
            tab.goto(f"{ui.base}/steppewatch/mentions")
            assert tab.locator("tr.article").count() == 4
            tab.select_option("select[name=country]", "Uzbekistan")
            tab.click("button[type=submit]")
            tab.wait_for_url("**country=Uzbekistan**")
            rows = tab.locator("tr.article")
            assert rows.count() == 1
            assert "<script>" in rows.first.inner_text(), "the title shows as text"
            rows.first.locator("a", has_text="evidence").click()
            tab.wait_for_url("**/articles/**")
            mark = tab.locator("mark[data-canonical='Namangan']")
            assert mark.count() == 1 and mark.inner_text() == "Namangan"
            assert "place+" in mark.get_attribute("data-rules") or "+" in mark.get_attribute("data-rules")
            tab.screenshot(path=str(ARTIFACTS / "article-evidence.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "article-evidence.png").stat().st_size > 10_000
