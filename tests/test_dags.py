"""The DAGs in a real Airflow: they parse without touching the network or the warehouse, and
`dag.test()` runs the daily DAG end to end against loopback feeds and a PostgreSQL warehouse."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from steppewatch.schema import articles, digests, runs, source_runs
from steppewatch.windows import Window, window_for_run
from world import FAILING_FEEDS, GOOD_SOURCES

ROOT = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).with_name("airflow_probe.py")
PERMANENT = {"Gone Feed", "Homepage Not Feed", "Looping Feed", "Sneaky Feed"}
TRANSIENT = {"Slow Feed", "Refused Feed"}


def airflow_environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "STEPPEWATCH_TASK_RETRIES": "1",
        "STEPPEWATCH_RETRY_DELAY_SECONDS": "0.5",
        **extra,
    })
    return env


def probe(env: dict[str, str], *args: str, timeout: int = 600) -> dict:
    done = subprocess.run([sys.executable, str(PROBE), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    assert done.returncode == 0 and lines, f"probe failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return json.loads(lines[-1][len("PROBE "):])


class ConnectionCounter:
    """A TCP listener that only counts who connects: a warehouse nobody should reach."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.count = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            conn.close()

    def close(self):
        self.sock.close()


def test_dags_parse_without_network_or_warehouse(world, tmp_path):
    listener = ConnectionCounter()
    data_dir = tmp_path / "data"
    env = airflow_environment(tmp_path, STEPPEWATCH_SOURCES=str(world.sources_file), STEPPEWATCH_DATA_DIR=str(data_dir),
                              AIRFLOW_CONN_NEWS_WAREHOUSE=f"postgresql://nobody@127.0.0.1:{listener.port}/warehouse")
    hits_before = sum(world.server.hits.values())
    result = probe(env, "parse")
    listener.close()
    assert result["import_errors"] == {}
    daily, retag = result["dags"]["steppewatch_daily"], result["dags"]["steppewatch_retag"]
    assert daily["tasks"] == ["load", "report", "source.discover", "source.extract", "source.fetch", "source.tag",
                              "start"]
    assert daily["timetable"] == "CronDataIntervalTimetable" and daily["timezone"] == "UTC"
    assert daily["expression"] == "0 0 * * *"
    assert "Backfills" in daily["doc_md"] and "re-tag" in retag["doc_md"]
    assert "steppewatch_http" in daily["pools"]
    assert all(seconds for seconds in daily["timeouts"].values()), "every task has an execution timeout"
    # the trigger form offers the sources of the file, and refuses what does not fit
    assert set(daily["params"]) == {"sources", "max_items_per_source", "reprocess"}
    assert len(result["refused"]) == 3, result["refused"]
    # nothing reached the warehouse, the feeds, or a SQLite file of ours
    assert listener.count == 0
    assert sum(world.server.hits.values()) == hits_before
    assert not [path for path in result["sqlite_opened"] if str(data_dir) in path or "warehouse" in path]


def test_window_is_the_data_interval_or_the_day_before_a_manual_run():
    start, end = datetime(2026, 3, 12, tzinfo=timezone.utc), datetime(2026, 3, 13, tzinfo=timezone.utc)
    assert window_for_run(start, end, datetime(2026, 11, 30, tzinfo=timezone.utc)) == Window(start, end)
    run_after = datetime(2026, 11, 30, 9, 30, tzinfo=timezone.utc)
    assert window_for_run(None, None, run_after) == Window(run_after - timedelta(days=1), run_after)
    # a zero-length interval (schedule="@daily" in Airflow 3) is not a window either
    assert window_for_run(end, end, run_after) == Window(run_after - timedelta(days=1), run_after)


def test_dag_test_runs_every_source_and_fails_only_the_bad_ones(world, tmp_path, postgres):
    warehouse_url = postgres.new()
    env = airflow_environment(tmp_path, STEPPEWATCH_SOURCES=str(world.sources_file),
                              AIRFLOW_CONN_NEWS_WAREHOUSE=warehouse_url)
    result = probe(env, "test", "2026-03-13T00:00:00+00:00")
    assert result["data_interval"] == ["2026-03-12T00:00:00+00:00", "2026-03-13T00:00:00+00:00"]
    assert result["state"] == "success", result
    by_task = {}
    for ti in result["tasks"]:
        by_task.setdefault(ti["task_id"], {})[ti["label"]] = ti
    for task in ("start", "load", "report"):
        assert by_task[task][None]["state"] == "success", by_task[task]
    stages = ("source.discover", "source.fetch", "source.extract", "source.tag")
    # each mapped task is labelled with its source
    assert set(by_task["source.discover"]) == set(GOOD_SOURCES) | set(FAILING_FEEDS) | {"Refused Feed"}
    for name in GOOD_SOURCES:
        assert all(by_task[stage][name]["state"] == "success" for stage in stages), name
    for name in PERMANENT | TRANSIENT:
        discover = by_task["source.discover"][name]
        assert discover["state"] == "failed", name
        # a lasting failure is not retried; a passing one is, up to the retries
        assert discover["try_number"] == (1 if name in PERMANENT else 2), (name, discover)
        later = [ti for stage in stages[1:] for ti in result["tasks"]
                 if ti["task_id"] == stage and ti["map_index"] == discover["map_index"]]
        assert later and all(ti["state"] == "upstream_failed" for ti in later), (name, later)

    engine = sa.create_engine(warehouse_url.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with engine.connect() as conn:
            stored = {url.split("/", 3)[3] for url in conn.execute(sa.select(articles.c.url)).scalars()}
            (run,) = conn.execute(sa.select(runs)).mappings().all()
            outcomes = {r["source"]: r for r in conn.execute(sa.select(source_runs)).mappings()}
            (digest,) = conn.execute(sa.select(digests)).mappings().all()
    finally:
        engine.dispose()
    # the window's stories, and nothing from outside it
    assert stored == {"ferghana-wire/news/2026-03-12-border-talks.html", "briefs/osh-checkpoint.html"}
    assert run["status"] == "partial" and run["run_key"].startswith("airflow:steppewatch_daily:")
    assert run["window_start"] == datetime(2026, 3, 12, tzinfo=timezone.utc)
    assert set(run["summary"]["failed_sources"]) == PERMANENT | TRANSIENT
    assert outcomes["Gone Feed"]["status"] == "failed" and "410" in outcomes["Gone Feed"]["error"]
    # the report task wrote the run's digest (the border talks are not relevant: no story)
    assert digest["run_id"] == run["id"] and digest["stories"] == 0 and digest["sent_note"].startswith("not sent")
    # three pages (the story, its print version, a short link) are one article, tagged once
    assert outcomes["Ferghana Wire"]["extracted"] == 3 and outcomes["Ferghana Wire"]["tagged"] == 1
