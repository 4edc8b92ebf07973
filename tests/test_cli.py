"""The steppewatch command as users run it: a real subprocess, exit codes, output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from httpserver import Item, Reply, rss
from world import BRIEFS, brief_page, day

STEPPEWATCH = [sys.executable, "-m", "steppewatch"]


def steppewatch(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*STEPPEWATCH, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def write_sources(path: Path, site, extra: str = "") -> Path:
    path.write_text(
        f"sources:\n  - name: Brief Wire\n    kind: news\n    feed: {site.url('/briefs/feed')}\n"
        f"    homepage: {site.base}/\n    language: en\n"
        f"  - name: Gone\n    kind: think_tank\n    feed: {site.url('/gone/rss')}\n"
        f"    homepage: {site.base}/\n    language: en\n{extra}",
        encoding="utf-8",
    )
    return path


def serve_briefs(site) -> None:
    site.add("/briefs/feed", rss([Item(BRIEFS[p][0], site.url(p), p, day(12 + n)) for n, p in enumerate(BRIEFS)]))
    for path in BRIEFS:
        site.add(path, brief_page(site.base, path))
    site.add("/gone/rss", Reply(410, b"gone"))


def test_run_prints_a_per_source_summary_and_exits_zero_despite_failed_sources(site, tmp_path, warehouse_url):
    serve_briefs(site)
    sources = write_sources(tmp_path / "sources.yaml", site)
    result = steppewatch("run", "--sources", str(sources), "--start", "2026-03-12", "--end", "2026-03-15",
                         env={"AIRFLOW_CONN_NEWS_WAREHOUSE": warehouse_url})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Brief Wire" in out and "Gone" in out and "TOTAL" in out
    assert "discover/http_error: 1, e.g. HTTP 410" in out
    assert "[source failed]" in out
    brief_line = next(line for line in out.splitlines() if line.startswith("Brief Wire"))
    # fetched, extracted, copies, tagged, relevant (none: the briefs are about metro lines and floods), failed
    assert brief_line.split()[-6:] == ["3", "3", "0", "3", "0", "0"], brief_line
    engine = sa.create_engine(warehouse_url.replace("postgresql://", "postgresql+psycopg2://"))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM articles")).scalar() == 3
    engine.dispose()


def test_run_json_summary(site, tmp_path):
    serve_briefs(site)
    sources = write_sources(tmp_path / "sources.yaml", site)
    database = tmp_path / "w.db"
    result = steppewatch("run", "--sources", str(sources), "--start", "2026-03-12T00:00Z", "--end", "2026-03-13",
                         "--json", env={"AIRFLOW_CONN_NEWS_WAREHOUSE": f"sqlite:///{database}"})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["window"] == {"start": "2026-03-12T00:00:00+00:00", "end": "2026-03-13T00:00:00+00:00"}
    by_source = {s["source"]: s for s in summary["sources"]}
    assert by_source["Brief Wire"]["extracted"] == 1 and by_source["Brief Wire"]["items_in_window"] == 1
    assert by_source["Gone"]["status"] == "failed"
    assert summary["totals"]["extracted"] == 1


def test_default_warehouse_is_sqlite_under_the_data_directory(site, tmp_path):
    serve_briefs(site)
    sources = write_sources(tmp_path / "sources.yaml", site)
    result = steppewatch("run", "--sources", str(sources), "--start", "2026-03-12", "--end", "2026-03-13")
    assert result.returncode == 0, result.stderr
    assert (Path(os.environ["STEPPEWATCH_DATA_DIR"]) / "warehouse.db").is_file()


def test_sources_file_from_the_environment(site, tmp_path):
    serve_briefs(site)
    sources = write_sources(tmp_path / "custom.yaml", site)
    result = steppewatch("run", "--json", "--start", "2026-03-12", "--end", "2026-03-13",
                         env={"STEPPEWATCH_SOURCES": str(sources)})
    assert result.returncode == 0, result.stderr
    assert {s["source"] for s in json.loads(result.stdout)["sources"]} == {"Brief Wire", "Gone"}


def test_bad_sources_file_exits_2_naming_line_and_field(site, tmp_path):
    sources = write_sources(tmp_path / "sources.yaml", site,
                            "  - name: Typo\n    kind: newz\n    feed: not-a-url\n    homepage: https://x.org\n"
                            "    language: en\n")
    result = steppewatch("run", "--sources", str(sources))
    assert result.returncode == 2
    assert f"{sources}:13: error: sources[2] (Typo).kind: 'newz' is not one of news, think_tank" in result.stderr
    assert f"{sources}:14: error: sources[2] (Typo).feed: 'not-a-url' is not an http(s) URL" in result.stderr
    check = steppewatch("sources", "check", "--sources", str(sources))
    assert check.returncode == 2 and "kind" in check.stderr


def test_bad_window_exits_2(tmp_path, site):
    sources = write_sources(tmp_path / "sources.yaml", site)
    result = steppewatch("run", "--sources", str(sources), "--start", "yesterday")
    assert result.returncode == 2 and "ISO 8601" in result.stderr
    result = steppewatch("run", "--sources", str(sources), "--start", "2026-03-12", "--end", "2026-03-11")
    assert result.returncode == 2 and "before it starts" in result.stderr


def test_unreachable_warehouse_exits_3(tmp_path, site):
    sources = write_sources(tmp_path / "sources.yaml", site)
    result = steppewatch("run", "--sources", str(sources),
                         env={"AIRFLOW_CONN_NEWS_WAREHOUSE": "postgresql://nobody@127.0.0.1:1/none"})
    assert result.returncode == 3
    assert "warehouse unreachable" in result.stderr and "127.0.0.1:1" in result.stderr


def test_unsupported_warehouse_url_exits_3(tmp_path, site):
    sources = write_sources(tmp_path / "sources.yaml", site)
    result = steppewatch("run", "--sources", str(sources), env={"AIRFLOW_CONN_NEWS_WAREHOUSE": "mysql://x@y/z"})
    assert result.returncode == 3 and "unsupported warehouse URL scheme" in result.stderr


def test_sources_check_of_the_shipped_file():
    result = steppewatch("sources", "check")
    assert result.returncode == 0, result.stderr
    assert "sources OK" in result.stdout


def test_db_upgrade_and_current(tmp_path):
    env = {"AIRFLOW_CONN_NEWS_WAREHOUSE": f"sqlite:///{tmp_path / 'fresh.db'}"}
    before = steppewatch("db", "current", env=env)
    assert before.returncode == 2 and "revision none" in before.stdout
    upgraded = steppewatch("db", "upgrade", env=env)
    assert upgraded.returncode == 0 and "at revision" in upgraded.stdout
    after = steppewatch("db", "current", env=env)
    assert after.returncode == 0


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "steppewatch"
    assert script.is_file()
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("steppewatch ")
