"""What the Airflow tasks do, so that the DAG files stay wiring.

Every function takes the task's context (a mapping) and returns a small value for XCom:
ids and counts, never articles. The warehouse is the staging area between tasks, so the
same DAG runs on one laptop or on Celery and Kubernetes workers. Airflow is imported only
inside functions that need it: the package stays usable, and testable, without it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace

from .config import ENV_WAREHOUSE, Settings, load_settings
from .windows import Window, parse_instant, window_from_context

LOGGER = logging.getLogger(__name__)

WAREHOUSE_CONN_ID = "news_warehouse"
HTTP_POOL = "steppewatch_http"
DEFAULT_MAX_ITEMS = 200


def settings_for_task(context: Mapping | None = None) -> Settings:
    """Settings from the environment; the warehouse from the ``news_warehouse`` connection
    (an ``AIRFLOW_CONN_NEWS_WAREHOUSE`` URL, or a connection stored in Airflow), else the
    embedded default. Tasks extract in their own process: Airflow runs sources in parallel."""
    settings = load_settings().with_overrides(extract_workers=1)
    if os.environ.get(ENV_WAREHOUSE):
        return settings
    try:
        from airflow.sdk import Connection

        connection = Connection.get(WAREHOUSE_CONN_ID)
    except Exception as err:  # noqa: BLE001 - not defined, or not in a task: the embedded default
        LOGGER.info("no %s connection (%s): using %s", WAREHOUSE_CONN_ID, err.__class__.__name__,
                    settings.warehouse_url)
        return settings
    return settings.with_overrides(warehouse_url=connection.get_uri())


def _params(context: Mapping) -> dict:
    return dict(context.get("params") or {})


def _is_backfill(context: Mapping) -> bool:
    dag_run = context.get("dag_run")
    run_type = getattr(dag_run, "run_type", None)
    return str(getattr(run_type, "value", run_type) or "").lower() == "backfill"


class RunPlan:
    """What a DAG run does, derived the same way by each of its tasks from the task context:
    its window, its row in ``runs``, and whether to reprocess and read archives."""

    def __init__(self, context: Mapping):
        from .pipeline import PAST_WINDOW

        self.context = context
        params = _params(context)
        self.window = window_from_context(context)
        dag_run = context.get("dag_run")
        self.run_key = (f"airflow:{getattr(dag_run, 'dag_id', None) or 'steppewatch'}:"
                        f"{getattr(dag_run, 'run_id', None) or 'manual'}")
        self.backfill = _is_backfill(context)
        self.reprocess = bool(params.get("reprocess")) or self.backfill
        run_after = getattr(dag_run, "run_after", None)
        # a backfill, or a run of a day long gone: the feed no longer lists that day's items
        self.deep = self.backfill or (run_after is not None and self.window.end <= run_after - PAST_WINDOW)
        self.max_items = int(params.get("max_items_per_source") or DEFAULT_MAX_ITEMS)
        self.only = list(params.get("sources") or [])
        self.settings = replace(settings_for_task(context), max_items_per_source=self.max_items)

    @contextmanager
    def warehouse(self) -> Iterator:
        """One warehouse engine for the task, disposed at its end."""
        from .warehouse import Warehouse

        warehouse = Warehouse(self.settings.warehouse_url)
        try:
            yield warehouse
        finally:
            warehouse.dispose()

    def run_id(self, warehouse) -> int:
        from . import store

        with warehouse.read() as conn:
            found = store.find_run(conn, self.run_key)
        if found is None:
            raise RuntimeError(f"no run {self.run_key!r} in the warehouse: the start task opens it")
        return found


def start(context: Mapping) -> list[str]:
    """Open the run in the warehouse; return the names of the sources to process.

    A backfill run reprocesses its day (re-extracts and re-tags stored pages with the
    current versions) and reads sitemaps and feed archives for items the feed no longer has.
    """
    from .pipeline import begin_run

    plan = RunPlan(context)
    opened = begin_run(plan.settings, plan.window, run_key=plan.run_key,
                       trigger="backfill" if plan.backfill else "airflow", only=plan.only or None)
    LOGGER.info("run %s: window %s, %d sources, reprocess=%s, sitemaps and archives=%s", opened["run_id"],
                plan.window, len(opened["sources"]), plan.reprocess, plan.deep)
    return opened["sources"]


def stage(name: str, source: str, context: Mapping) -> dict:
    """One stage for one source. A failure that may go away (a timeout, a 503, a dropped
    warehouse connection) raises for Airflow to retry; a lasting one (404, not a feed, a
    refused address) fails the task at once, without retries."""
    from .pipeline import SourceFailed, run_stage

    if isinstance(context, dict):
        context["source_name"] = source  # the mapped task's label in the UI (map_index_template)
    plan = RunPlan(context)
    try:
        with plan.warehouse() as warehouse:
            return run_stage(name, plan.settings, source, plan.window, plan.run_id(warehouse),
                             reprocess=plan.reprocess, deep=plan.deep, warehouse=warehouse)
    except SourceFailed as err:
        if err.transient:
            raise
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(err)) from err


def load(sources: list[str] | None, context: Mapping) -> dict:
    """After every source: link copies parallel sources missed, close the run."""
    from .pipeline import load_run

    plan = RunPlan(context)
    with plan.warehouse() as warehouse:
        return load_run(plan.settings, plan.run_id(warehouse), plan.window, expected=sources or (),
                        warehouse=warehouse)


def report(context: Mapping) -> dict:
    """Each source's outcome, in the task log and as a small summary."""
    from .pipeline import run_outcomes

    plan = RunPlan(context)
    with plan.warehouse() as warehouse:
        run_id = plan.run_id(warehouse)
        outcomes = run_outcomes(plan.settings, run_id, warehouse=warehouse)
        digest_id, stories, sent = _digest(warehouse, plan, run_id)
    lines = [f"run {run_id} ({plan.run_key}), window {plan.window}"]
    for outcome in outcomes:
        detail = f"error: {outcome.error}" if outcome.error else ", ".join(
            f"{k} {getattr(outcome, k)}" for k in ("items_in_window", "fetched", "extracted", "tagged", "relevant",
                                                  "failed"))
        lines.append(f"  {outcome.source:<40} {outcome.status:<8} {detail}")
        for key, entry in sorted(outcome.reasons.items()):
            lines.append(f"      {key}: {entry['count']}, e.g. {entry['example']}")
    lines.append(f"digest {digest_id}: {stories} relevant stor{'y' if stories == 1 else 'ies'}; {sent}")
    LOGGER.info("\n".join(lines))
    return {
        "run_id": run_id,
        "sources": {o.source: o.status for o in outcomes},
        "relevant": sum(o.relevant for o in outcomes),
        "failed_sources": sorted(o.source for o in outcomes if o.status == "failed"),
        "digest_id": digest_id,
        "digest_stories": stories,
        "digest_email": sent,
    }


def _digest(warehouse, plan: RunPlan, run_id: int) -> tuple[int, int, str]:
    """Write the run's digest (rewritten when the run is reprocessed) and email it once."""
    from .digest import send_digest, write_digest

    digest = warehouse.transaction(lambda conn: write_digest(conn, run_id, plan.window))
    sent = warehouse.transaction(lambda conn: send_digest(conn, digest))
    return digest["id"], digest["stories"], sent


def retag(context: Mapping) -> dict:
    """Re-tag stored articles (older tagger versions, or all of a range), without the network."""
    from . import store
    from .pipeline import TaggingService, tag_articles
    from .warehouse import Warehouse

    params = _params(context)
    settings = settings_for_task(context)
    start_at = params.get("start") or "1970-01-01"
    window = Window(parse_instant(start_at), parse_instant(params["end"])) if params.get("end") else \
        Window.from_strings(start_at, None)
    warehouse = Warehouse(settings.warehouse_url)
    try:
        warehouse.upgrade()
        tagging = TaggingService()
        with warehouse.read() as conn:
            if params.get("all"):
                ids = store.articles_to_tag(conn, window=window, retag_window=True)
            else:
                ids = store.articles_to_tag(conn, window=window, version=tagging.version)
        outcome = tag_articles(warehouse, tagging, ids, batch_size=settings.batch_size, run_id=None, source=None)
    finally:
        warehouse.dispose()
    return {"tagger_version": tagging.version, "articles": len(ids), "changed": outcome.written,
            "unchanged": outcome.unchanged, "relevant": outcome.relevant}
