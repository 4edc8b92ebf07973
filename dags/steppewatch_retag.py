"""
### steppewatch re-tag

Re-tags stored articles from their stored text, without the network: by default those
tagged by an older tagger version (after the gazetteer or the rules changed), optionally
every article of a date range. The same as `steppewatch retag` on the command line.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task


@task(execution_timeout=timedelta(hours=3))
def retag() -> dict:
    from steppewatch import orchestration

    return orchestration.retag(get_current_context())


@dag(
    dag_id="steppewatch_retag",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["steppewatch"],
    default_args={"owner": "steppewatch", "retries": 1, "retry_delay": timedelta(minutes=5)},
    params={
        "start": Param(None, type=["null", "string"], format="date", title="From",
                       description="Only articles published (or read from a feed) from this day."),
        "end": Param(None, type=["null", "string"], format="date", title="Until",
                     description="... until this day, exclusive."),
        "all": Param(False, type="boolean", title="Every article of the range",
                     description="Re-tag every article of the range, not only those of older tagger versions."),
    },
)
def steppewatch_retag():
    retag()


steppewatch_retag()
