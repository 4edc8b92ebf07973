"""The stages of a pass (discover → fetch → extract → tag) and the pass that runs them all.

Each stage takes one source and hands its output to the next through the warehouse, so
the Airflow DAG can run them as separate tasks on separate workers, and the CLI can run
them in one process. A source's failure is recorded in its report and never stops the
others.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import sqlalchemy as sa

from . import store
from .config import Settings
from .extraction import ExtractedArticle, extract_page
from .feeds import parse_feed
from .fetching import FetchStatus, HttpClient
from .sources import Source
from .warehouse import Warehouse, WarehouseError
from .windows import Window

LOGGER = logging.getLogger(__name__)

FEED_ACCEPT = "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
# Below this many pages in a batch, starting worker processes costs more than it saves.
MIN_PAGES_FOR_PROCESS_POOL = 8


@dataclass
class SourceReport:
    """What one pass did for one source: the numbers of the run summary."""

    source: str
    status: str = "ok"
    feed_status: str | None = None
    items_seen: int = 0
    items_new: int = 0
    items_in_window: int = 0
    fetched: int = 0
    extracted: int = 0
    duplicates: int = 0
    failed: int = 0
    tagged: int = 0
    relevant: int = 0
    reasons: dict[str, dict] = field(default_factory=dict)
    error: str | None = None

    def note(self, stage: str, kind: str, reason: str, *, counts_as_failure: bool = True) -> None:
        """Count a problem under ``stage/kind``, keeping the first reason as an example."""
        entry = self.reasons.setdefault(f"{stage}/{kind}", {"count": 0, "example": reason})
        entry["count"] += 1
        if counts_as_failure:
            self.failed += 1
            if self.status == "ok":
                self.status = "partial"

    def as_row(self) -> dict:
        return {k: v for k, v in asdict(self).items()}


@dataclass
class RunReport:
    run_id: int
    window: Window
    started_at: datetime
    finished_at: datetime | None = None
    sources: list[SourceReport] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        keys = ("items_seen", "items_new", "items_in_window", "fetched", "extracted", "duplicates", "failed",
                "tagged", "relevant")
        return {k: sum(getattr(s, k) for s in self.sources) for k in keys}

    @property
    def failed_sources(self) -> list[str]:
        return [s.source for s in self.sources if s.status == "failed"]

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "window": {"start": self.window.start.isoformat(), "end": self.window.end.isoformat()},
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "totals": self.totals(),
            "sources": [s.as_row() for s in self.sources],
        }


@dataclass
class PassContext:
    """What every stage of one pass shares."""

    settings: Settings
    warehouse: Warehouse
    client: HttpClient
    window: Window
    run_id: int | None
    now: datetime
    extract_executor: Executor | None = None
    tagging: TaggingService = field(default_factory=lambda: TaggingService())


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


# -- discover -------------------------------------------------------------------------


def discover(ctx: PassContext, source: Source, report: SourceReport) -> None:
    """Read the source's feed (conditionally) and store its entries as feed items."""
    with ctx.warehouse.read() as conn:
        state = store.load_feed_state(conn, source.name, source.feed)
    result = ctx.client.get(source.feed, etag=state.etag, last_modified=state.last_modified, accept=FEED_ACCEPT)
    now = _utcnow()
    state.last_attempt_at = now
    state.last_http_status = result.http_status
    report.feed_status = result.status.value
    problems: list[tuple[str, str, str | None]] = []
    new_entries = []
    parsed = None
    if result.ok:
        body_hash = hashlib.sha256(result.body or b"").hexdigest()
        if body_hash == state.body_hash:
            report.feed_status = "unchanged"
        else:
            parsed = parse_feed(result.body or b"", url=result.final_url or source.feed,
                                content_type=result.headers.get("content-type"), now=now)
            if parsed.is_feed:
                state.body_hash = body_hash
                state.feed_format = parsed.format
                state.last_change_at = now
                report.items_seen = len(parsed.entries)
                if parsed.problem:
                    problems.append(("malformed_feed", parsed.problem, source.feed))
            else:
                report.feed_status = "not_a_feed"
                problems.append(("not_a_feed", parsed.problem or "not a feed", source.feed))
    elif result.status is not FetchStatus.NOT_MODIFIED:
        problems.append((result.status.value, result.reason or result.status.value, source.feed))

    feed_failed = report.feed_status not in {"ok", "not_modified", "unchanged"}
    if feed_failed:
        state.consecutive_failures += 1
        state.last_status = report.feed_status
        state.last_error = problems[0][1] if problems else report.feed_status
    else:
        state.consecutive_failures = 0
        state.last_status = report.feed_status
        state.last_error = None
        state.last_success_at = now
        if result.ok:
            # some servers drop validators; keep what this response said
            state.etag = result.headers.get("etag")
            state.last_modified = result.headers.get("last-modified")
        state.last_problem = problems[0][1] if problems else None

    def write(conn: sa.Connection) -> None:
        nonlocal new_entries
        if parsed is not None and parsed.is_feed:
            state.last_item_count = len(parsed.entries)
            new_entries = store.record_feed_items(conn, source.name, parsed.entries, now)
        store.save_feed_state(conn, state)
        for kind, reason, url in problems:
            store.add_problem(conn, run_id=ctx.run_id, source=source.name, stage="discover", url=url,
                              kind=kind, reason=reason, now=now)
        dated = {e.guid: e.date_problem for e in parsed.entries} if parsed is not None else {}
        for item in new_entries:
            if item.problem:
                store.add_problem(conn, run_id=ctx.run_id, source=source.name, stage="discover", url=item.url,
                                  kind="bad_entry", reason=item.problem, now=now)
            if dated.get(item.guid):
                store.add_problem(conn, run_id=ctx.run_id, source=source.name, stage="discover", url=item.url,
                                  kind="feed_date", reason=f"{dated[item.guid]}: counted as published when first seen",
                                  now=now)

    ctx.warehouse.transaction(write)
    report.items_new = len(new_entries)
    for kind, reason, _url in problems:
        report.note("discover", kind, reason, counts_as_failure=feed_failed)
    for item in new_entries:
        if item.problem:
            report.note("discover", "bad_entry", item.problem)
    if feed_failed:
        report.status = "failed"
        report.error = problems[0][1] if problems else report.feed_status
    with ctx.warehouse.read() as conn:
        report.items_in_window = store.count_items_in_window(conn, source.name, ctx.window)


# -- fetch ----------------------------------------------------------------------------


def fetch(ctx: PassContext, source: Source, report: SourceReport) -> None:
    """Download the pages of the window's items that are not stored yet."""
    with ctx.warehouse.read() as conn:
        todo = store.items_to_fetch(
            conn, source.name, ctx.window, now=ctx.now,
            limit=ctx.settings.max_items_per_source,
            max_attempts=ctx.settings.max_fetch_attempts,
            backlog_days=ctx.settings.retry_backlog_days,
        )
    if not todo:
        return

    def one(item: store.ItemToFetch):
        claimed = ctx.warehouse.transaction(lambda conn: store.claim_page(
            conn, url=item.url, link=item.link, source=source.name, now=_utcnow(),
            max_attempts=ctx.settings.max_fetch_attempts))
        if not claimed:
            return None  # another source is fetching the same story
        result = ctx.client.get(item.link, accept=PAGE_ACCEPT, check_robots=True)
        now = _utcnow()

        def write(conn: sa.Connection) -> None:
            store.save_page(conn, item.url, result, now)
            if not result.ok:
                store.add_problem(conn, run_id=ctx.run_id, source=source.name, stage="fetch", url=item.link,
                                  kind=result.status.value, reason=result.reason or result.status.value, now=now)

        ctx.warehouse.transaction(write)
        return result

    workers = max(1, min(ctx.settings.http.per_host_concurrency * 2, len(todo)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"fetch-{source.name[:12]}") as pool:
        for result in pool.map(one, todo):
            if result is None:
                continue
            if result.ok:
                report.fetched += 1
            else:
                report.note("fetch", result.status.value, f"{result.reason} <{result.url}>")


# -- extract --------------------------------------------------------------------------


def _extract_stored(page: store.StoredPage, favor_precision: bool) -> ExtractedArticle:
    return extract_page(
        page.body,
        url=page.final_url or page.url,
        content_type=page.content_type,
        feed_date=page.feed_published_at,
        first_seen=page.first_seen_at,
        favor_precision=favor_precision,
    )


def extract(ctx: PassContext, source: Source, report: SourceReport, *, reprocess: bool = False) -> None:
    """Extract stored pages into articles, one transaction per batch."""
    with ctx.warehouse.read() as conn:
        page_ids = store.pages_to_extract(conn, source.name, ctx.window, reprocess=reprocess)
    size = max(1, ctx.settings.batch_size)
    precision = ctx.settings.favor_precision
    for start in range(0, len(page_ids), size):
        with ctx.warehouse.read() as conn:
            batch_pages = store.load_pages(conn, page_ids[start:start + size])
        executor = ctx.extract_executor if len(batch_pages) >= MIN_PAGES_FOR_PROCESS_POOL else None
        if executor is not None:
            results = list(executor.map(_extract_stored, batch_pages, [precision] * len(batch_pages)))
        else:
            results = [_extract_stored(page, precision) for page in batch_pages]
        batch = list(zip(batch_pages, results))
        now = _utcnow()
        outcome = ctx.warehouse.transaction(lambda conn: store.write_extractions(conn, batch, now, ctx.run_id))
        report.extracted += outcome.inserted + outcome.updated + outcome.unchanged
        report.duplicates += outcome.duplicates
        for page, extracted in batch:
            if not extracted.ok:
                report.note("extract", extracted.status.value, f"{extracted.reason} <{page.url}>")


# -- tag ------------------------------------------------------------------------------


class TaggingService:
    """One tagger for a pass, built on first use and shared by the source threads.

    spaCy pipelines are not safe to call from several threads at once, so calls are
    serialised; tagging is CPU-bound, so the threads would not run it in parallel anyway.
    """

    def __init__(self, tagger=None):
        self._tagger = tagger
        self._lock = threading.Lock()

    @property
    def tagger(self):
        with self._lock:
            if self._tagger is None:
                from .tagger import shared_tagger

                self._tagger = shared_tagger()
            return self._tagger

    @property
    def version(self) -> str:
        return self.tagger.version

    def tag(self, batch: Sequence[store.ArticleToTag]) -> list[tuple[int, object]]:
        tagger = self.tagger
        with self._lock:
            results = tagger.tag_many([(a.text, a.title, a.language) for a in batch])
            return [(article.id, result) for article, result in zip(batch, results)]


def tag_articles(warehouse: Warehouse, tagging: TaggingService, ids: Sequence[int], *, batch_size: int,
                 run_id: int | None, source: str | None, on_batch: Callable[[store.TagOutcome], None] | None = None,
                 on_problem: Callable[[str, str], None] | None = None) -> store.TagOutcome:
    """Tag stored articles in batches, each batch one transaction. An article the tagger
    cannot handle is recorded as a problem and left untagged (tried again next time)."""
    total = store.TagOutcome()
    size = max(1, batch_size)
    for start in range(0, len(ids), size):
        with warehouse.read() as conn:
            batch = store.load_articles_to_tag(conn, ids[start:start + size])
        try:
            tagged = tagging.tag(batch)
        except Exception:  # noqa: BLE001 - find the article that breaks the tagger, keep the others
            LOGGER.exception("tagging a batch failed; tagging its articles one by one")
            tagged = []
            for article in batch:
                try:
                    tagged += tagging.tag([article])
                except Exception as err:  # noqa: BLE001
                    reason = f"{err.__class__.__name__}: {err}"
                    now = _utcnow()
                    warehouse.transaction(lambda conn, a=article, r=reason: store.add_problem(
                        conn, run_id=run_id, source=source, stage="tag", url=None, kind="tag_error",
                        reason=f"article {a.id}: {r}", now=now))
                    if on_problem is not None:
                        on_problem("tag_error", f"article {article.id}: {reason}")
        now = _utcnow()
        outcome = warehouse.transaction(lambda conn: store.write_tags(conn, tagged, now))
        total.written += outcome.written
        total.unchanged += outcome.unchanged
        total.relevant += outcome.relevant
        if on_batch is not None:
            on_batch(outcome)
    return total


def tag(ctx: PassContext, source: Source, report: SourceReport, *, reprocess: bool = False) -> None:
    """Tag the source's new and re-extracted articles (with ``reprocess``, the window's again)."""
    with ctx.warehouse.read() as conn:
        ids = store.articles_to_tag(conn, source=source.name, window=ctx.window, retag_window=reprocess)
    if not ids:
        return
    outcome = tag_articles(
        ctx.warehouse, ctx.tagging, ids, batch_size=ctx.settings.batch_size, run_id=ctx.run_id, source=source.name,
        on_problem=lambda kind, reason: report.note("tag", kind, reason))
    report.tagged += outcome.written + outcome.unchanged
    report.relevant += outcome.relevant


# -- the whole pass -------------------------------------------------------------------

Stage = Callable[[PassContext, Source, SourceReport], None]


def process_source(ctx: PassContext, source: Source, *, reprocess: bool = False) -> SourceReport:
    """Run discover, fetch and extract for one source; never raises."""
    report = SourceReport(source.name)
    stages: Sequence[tuple[str, Stage]] = (
        ("discover", discover),
        ("fetch", fetch),
        ("extract", lambda c, s, r: extract(c, s, r, reprocess=reprocess)),
        ("tag", lambda c, s, r: tag(c, s, r, reprocess=reprocess)),
    )
    for name, stage in stages:
        try:
            stage(ctx, source, report)
        except sa.exc.SQLAlchemyError as err:
            LOGGER.exception("warehouse error in %s of %s", name, source.name)
            report.status = "failed"
            report.error = f"{name}: warehouse error: {err.__class__.__name__}: {str(err).splitlines()[0]}"
            report.note(name, "warehouse_error", report.error)
            break
        except Exception as err:  # one source's bug must not stop the others
            LOGGER.exception("%s failed for %s", name, source.name)
            report.status = "failed"
            report.error = f"{name}: {err.__class__.__name__}: {err}"
            report.note(name, "internal_error", report.error)
            break
    return report


def run_pass(
    settings: Settings,
    sources: Sequence[Source],
    window: Window,
    *,
    warehouse: Warehouse | None = None,
    run_key: str | None = None,
    trigger: str = "cli",
    reprocess: bool = False,
    upgrade: bool = True,
    tagging: TaggingService | None = None,
) -> RunReport:
    """One pass of the pipeline over ``sources`` for ``window``.

    Raises :class:`WarehouseError` only when the warehouse cannot be used at all.
    """
    own_warehouse = warehouse is None
    warehouse = warehouse or Warehouse(settings.warehouse_url)
    started = _utcnow()
    try:
        if upgrade:
            warehouse.upgrade()
        else:
            warehouse.ping()
        store.sync_sources(warehouse, sources, started)
        run_id = store.start_run(warehouse, run_key=run_key or f"{trigger}:{started.isoformat()}",
                                 trigger=trigger, window=window, now=started)
        report = RunReport(run_id=run_id, window=window, started_at=started)
        executor = None
        if settings.extract_workers > 1:
            import multiprocessing

            executor = ProcessPoolExecutor(settings.extract_workers, mp_context=multiprocessing.get_context("spawn"))
        with HttpClient(settings.http) as client:
            ctx = PassContext(settings, warehouse, client, window, run_id, started, executor,
                              tagging or TaggingService())
            try:
                with ThreadPoolExecutor(max_workers=max(1, settings.source_workers),
                                        thread_name_prefix="source") as pool:
                    report.sources = list(pool.map(lambda s: process_source(ctx, s, reprocess=reprocess), sources))
            finally:
                if executor is not None:
                    executor.shutdown(cancel_futures=True)
        report.finished_at = _utcnow()
        for source_report in report.sources:
            try:
                store.save_source_run(warehouse, run_id, source_report.as_row(), report.finished_at)
            except sa.exc.SQLAlchemyError as err:
                raise WarehouseError(f"cannot record the run summary: {err}") from err
        status = "succeeded" if not report.failed_sources else "partial"
        store.finish_run(warehouse, run_id, status=status, summary=report.as_dict(), now=report.finished_at)
        return report
    except sa.exc.OperationalError as err:
        raise WarehouseError(f"warehouse error at {warehouse.display_url()}: {str(err).splitlines()[0]}") from err
    finally:
        if own_warehouse:
            warehouse.dispose()
