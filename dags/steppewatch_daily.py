"""
### steppewatch daily

Reads the think-tank and news feeds of `include/sources.yaml`, downloads the articles of the
run's day, extracts their text, tags the passages that tie terrorism or violent extremism to
Central Asia, and loads articles and mentions into the `news_warehouse` warehouse.

- **Window**: a scheduled run covers its data interval (one UTC day); a manual run without a
  logical date covers the day before it was started.
- **Per source**: discover → fetch → extract → tag, one mapped task each, labelled with the
  source's name. A failing source fails only its own tasks (a lasting failure such as 404 at
  once, a passing one after retries); `load` and `report` run for the rest.
- **Backfills** (Trigger → Backfill): each day re-extracts and re-tags its stored pages with the
  current versions, and also reads the sources' sitemaps and feed archives for items the feed
  no longer lists. Reprocessing a finished day writes nothing that is already right.
- **Params**: which sources, at most how many pages per source, and whether to re-extract and
  re-tag the window's stored articles.

Each source's outcome is in the `report` task's log and in the warehouse (`source_runs`).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, TriggerRule, dag, get_current_context, task, task_group

HTTP_POOL = "steppewatch_http"
# each mapped task is labelled with its source (orchestration.stage puts the name in the context)
SOURCE_LABEL = "{{ source_name }}"


def _source_names() -> list[str]:
    """The sources file's names, for the trigger form (a local file; no network, no database)."""
    try:
        from steppewatch.sources import source_names

        return source_names()
    except Exception:  # noqa: BLE001 - a broken sources file must not break the DAG; `start` reports it
        return []


@task(execution_timeout=timedelta(minutes=10))
def start() -> list[str]:
    from steppewatch import orchestration

    return orchestration.start(get_current_context())


@task(pool=HTTP_POOL, map_index_template=SOURCE_LABEL, execution_timeout=timedelta(minutes=30))
def discover(source: str) -> dict:
    from steppewatch import orchestration

    return orchestration.stage("discover", source, get_current_context())


@task(pool=HTTP_POOL, map_index_template=SOURCE_LABEL, execution_timeout=timedelta(hours=2))
def fetch(source: str) -> dict:
    from steppewatch import orchestration

    return orchestration.stage("fetch", source, get_current_context())


@task(map_index_template=SOURCE_LABEL, execution_timeout=timedelta(hours=1))
def extract(source: str) -> dict:
    from steppewatch import orchestration

    return orchestration.stage("extract", source, get_current_context())


@task(map_index_template=SOURCE_LABEL, execution_timeout=timedelta(hours=1))
def tag(source: str) -> dict:
    from steppewatch import orchestration

    return orchestration.stage("tag", source, get_current_context())


@task_group(group_id="source")
def each_source(source: str) -> None:
    discover(source) >> fetch(source) >> extract(source) >> tag(source)


@task(trigger_rule=TriggerRule.ALL_DONE, execution_timeout=timedelta(minutes=30))
def load(sources: list[str]) -> dict:
    from steppewatch import orchestration

    return orchestration.load(sources, get_current_context())


@task(trigger_rule=TriggerRule.ALL_DONE, execution_timeout=timedelta(minutes=10))
def report() -> dict:
    from steppewatch import orchestration

    return orchestration.report(get_current_context())


@dag(
    dag_id="steppewatch_daily",
    schedule=CronDataIntervalTimetable(os.environ.get("STEPPEWATCH_SCHEDULE", "@daily"), timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=2,
    doc_md=__doc__,
    tags=["steppewatch"],
    default_args={
        "owner": "steppewatch",
        "retries": int(os.environ.get("STEPPEWATCH_TASK_RETRIES", "3")),
        "retry_delay": timedelta(seconds=float(os.environ.get("STEPPEWATCH_RETRY_DELAY_SECONDS", "120"))),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(hours=1),
    },
    params={
        "sources": Param([], type="array", items={"type": "string", "enum": _source_names()}, uniqueItems=True,
                         title="Sources", description="Sources to process; none chosen: every enabled source."),
        "max_items_per_source": Param(200, type="integer", minimum=1, maximum=5000, title="Pages per source",
                                      description="At most this many pages fetched per source."),
        "reprocess": Param(False, type="boolean", title="Re-extract and re-tag",
                           description="Also re-extract and re-tag the window's stored articles (no network)."),
    },
)
def steppewatch_daily():
    sources = start()
    each_source.expand(source=sources) >> load(sources) >> report()


steppewatch_daily()
