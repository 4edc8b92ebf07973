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
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta, timezone

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


# The counters each stage owns in a SourceReport.
STAGE_COUNTERS = {
    "discover": ("feed_status", "items_seen", "items_new", "items_in_window"),
    "fetch": ("fetched",),
    "extract": ("extracted", "duplicates"),
    "tag": ("tagged", "relevant"),
}


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
    # whether the failure may go away by itself (a timeout, a 503), so a retry is worth it
    transient: bool = False

    def note(self, stage: str, kind: str, reason: str, *, counts_as_failure: bool = True) -> None:
        """Count a problem under ``stage/kind``, keeping the first reason as an example."""
        entry = self.reasons.setdefault(f"{stage}/{kind}", {"count": 0, "example": reason, "failures": 0})
        entry["count"] += 1
        if counts_as_failure:
            entry["failures"] = entry.get("failures", 0) + 1
            self.failed += 1
            if self.status == "ok":
                self.status = "partial"

    def restart(self, stage: str) -> None:
        """Forget what an earlier try of ``stage`` counted, before the stage runs again."""
        for name in STAGE_COUNTERS[stage]:
            setattr(self, name, None if name == "feed_status" else 0)
        for key in [k for k in self.reasons if k.startswith(f"{stage}/")]:
            self.failed -= self.reasons.pop(key).get("failures", 0)
        self.error, self.transient = None, False
        self.status = "partial" if self.failed else "ok"

    def as_row(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "transient"}

    @classmethod
    def from_row(cls, row: dict) -> SourceReport:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names and v is not None})


# The counts a run's summary adds up over its sources.
TOTAL_KEYS = ("items_seen", "items_new", "items_in_window", "fetched", "extracted", "duplicates", "failed", "tagged",
              "relevant")


def totals_of(reports: Sequence[SourceReport]) -> dict[str, int]:
    return {key: sum(getattr(report, key) for report in reports) for key in TOTAL_KEYS}


@dataclass
class RunReport:
    run_id: int
    window: Window
    started_at: datetime
    finished_at: datetime | None = None
    sources: list[SourceReport] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        return totals_of(self.sources)

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
    # also read the sources' sitemaps and paged archives (past windows: the feed has moved on)
    deep: bool = False


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
        report.transient = result.transient
    if ctx.deep and (source.sitemap or source.archive):
        discover_archives(ctx, source, report)
    with ctx.warehouse.read() as conn:
        report.items_in_window = store.count_items_in_window(conn, source.name, ctx.window)


def discover_archives(ctx: PassContext, source: Source, report: SourceReport) -> None:
    """The window's items from the source's sitemap and paged feed archive, stored like feed items."""
    from .archives import archive_entries, sitemap_entries

    now = _utcnow()
    listings = []
    if source.sitemap:
        listings.append(sitemap_entries(ctx.client, source.sitemap, ctx.window, now=now))
    if source.archive:
        listings.append(archive_entries(ctx.client, source.archive, ctx.window, now=now, accept=FEED_ACCEPT))
    entries = list({e.guid: e for listing in listings for e in listing.entries}.values())
    problems = [p for listing in listings for p in listing.problems]

    def write(conn: sa.Connection) -> list[store.NewItem]:
        for kind, reason, url in problems:
            store.add_problem(conn, run_id=ctx.run_id, source=source.name, stage="discover", url=url, kind=kind,
                              reason=reason, now=now)
        return store.record_feed_items(conn, source.name, entries, now)

    new = ctx.warehouse.transaction(write)
    report.items_seen += len(entries)
    report.items_new += len(new)
    for kind, reason, _url in problems:
        # the feed itself decides whether the source failed; a missing archive page is a note
        report.note("discover", kind, reason, counts_as_failure=False)


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

# A window that ended this long ago is history: its items may have left the feed.
PAST_WINDOW = timedelta(days=1)


def is_past(window: Window, now: datetime) -> bool:
    return window.end <= now - PAST_WINDOW


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
    deep: bool | None = None,
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
                              tagging or TaggingService(), is_past(window, started) if deep is None else deep)
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


# -- the pass as separate steps: one Airflow task each ---------------------------------


class SourceFailed(RuntimeError):
    """One stage of one source failed; ``transient`` says whether another try may help."""

    def __init__(self, message: str, *, transient: bool):
        super().__init__(message)
        self.transient = transient


def begin_run(settings: Settings, window: Window, *, run_key: str, trigger: str, only: Sequence[str] | None = None,
              warehouse: Warehouse | None = None) -> dict:
    """Migrate the warehouse, mirror the sources file, and open (or reopen) the run.

    Returns ``{"run_id", "sources"}``: the names of the enabled sources to process.
    """
    from .sources import load_sources

    sources = load_sources(settings.sources_path, only=list(only) if only else None)
    own = warehouse is None
    warehouse = warehouse or Warehouse(settings.warehouse_url)
    try:
        warehouse.upgrade()
        now = _utcnow()
        store.sync_sources(warehouse, sources, now)
        run_id = store.start_run(warehouse, run_key=run_key, trigger=trigger, window=window, now=now)
        return {"run_id": run_id, "sources": [s.name for s in sources]}
    finally:
        if own:
            warehouse.dispose()


_STAGES: dict[str, Callable[..., None]] = {
    "discover": lambda ctx, source, report, reprocess: discover(ctx, source, report),
    "fetch": lambda ctx, source, report, reprocess: fetch(ctx, source, report),
    "extract": lambda ctx, source, report, reprocess: extract(ctx, source, report, reprocess=reprocess),
    "tag": lambda ctx, source, report, reprocess: tag(ctx, source, report, reprocess=reprocess),
}


def run_stage(stage: str, settings: Settings, source_name: str, window: Window, run_id: int, *,
              reprocess: bool = False, deep: bool = False, warehouse: Warehouse | None = None) -> dict:
    """Run one stage for one source and record its outcome in ``source_runs``.

    Raises :class:`SourceFailed` when the source failed (its feed, or the stage itself); the
    outcome is recorded first, so the run's report shows it either way. Returns the
    source's counts so far.
    """
    from .sources import load_sources

    (source,) = load_sources(settings.sources_path, only=[source_name])
    own = warehouse is None
    warehouse = warehouse or Warehouse(settings.warehouse_url)
    try:
        with warehouse.read() as conn:
            row = store.load_source_run(conn, run_id, source_name)
        report = SourceReport.from_row(row) if row and stage != "discover" else SourceReport(source_name)
        report.restart(stage)
        with HttpClient(settings.http) as client:
            ctx = PassContext(settings, warehouse, client, window, run_id, _utcnow(), deep=deep)
            try:
                _STAGES[stage](ctx, source, report, reprocess)
            except Exception as err:
                report.status = "failed"
                report.error = f"{stage}: {err.__class__.__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                report.transient = isinstance(err, sa.exc.OperationalError) or not isinstance(err, sa.exc.SQLAlchemyError)
                report.note(stage, "warehouse_error" if isinstance(err, sa.exc.SQLAlchemyError) else "internal_error",
                            report.error)
                _record(warehouse, run_id, report)
                raise SourceFailed(f"{source_name}: {report.error}", transient=report.transient) from err
        _record(warehouse, run_id, report)
        if report.status == "failed":
            raise SourceFailed(f"{source_name}: {report.error}", transient=report.transient)
        return {k: getattr(report, k) for k in ("items_in_window", "fetched", "extracted", "tagged", "relevant",
                                                "failed")}
    finally:
        if own:
            warehouse.dispose()


def _record(warehouse: Warehouse, run_id: int, report: SourceReport) -> None:
    store.save_source_run(warehouse, run_id, report.as_row(), _utcnow())


def load_run(settings: Settings, run_id: int, window: Window, *, expected: Sequence[str] = (),
             warehouse: Warehouse | None = None) -> dict:
    """Once every source is in: link the copies parallel sources missed, close the run.

    A source in ``expected`` that left no outcome (its first task never ran) is recorded
    as failed, so the run's status and report say so.
    """
    own = warehouse is None
    warehouse = warehouse or Warehouse(settings.warehouse_url)
    try:
        now = _utcnow()
        relinked = warehouse.transaction(lambda conn: store.reconcile_near_duplicates(conn, window))
        with warehouse.read() as conn:
            rows = store.load_source_runs(conn, run_id)
        for name in sorted(set(expected) - {r["source"] for r in rows}):
            missing = SourceReport(name, status="failed", error="the source's tasks did not run")
            _record(warehouse, run_id, missing)
            rows.append({**missing.as_row(), "source": name})
        reports = [SourceReport.from_row(r) for r in rows]
        failed = [r.source for r in reports if r.status == "failed"]
        totals = totals_of(reports)
        summary = {"run_id": run_id, "window": {"start": window.start.isoformat(), "end": window.end.isoformat()},
                   "totals": totals, "copies_relinked": relinked, "failed_sources": failed,
                   "sources": [r.as_row() for r in reports]}
        store.finish_run(warehouse, run_id, status="partial" if failed else "succeeded", summary=summary, now=now)
        return {"run_id": run_id, "status": "partial" if failed else "succeeded", "failed_sources": failed,
                "copies_relinked": relinked, **{k: totals[k] for k in ("extracted", "tagged", "relevant")}}
    finally:
        if own:
            warehouse.dispose()


def run_outcomes(settings: Settings, run_id: int, *, warehouse: Warehouse | None = None) -> list[SourceReport]:
    """Each source's recorded outcome in a run."""
    own = warehouse is None
    warehouse = warehouse or Warehouse(settings.warehouse_url)
    try:
        with warehouse.read() as conn:
            return [SourceReport.from_row(r) for r in store.load_source_runs(conn, run_id)]
    finally:
        if own:
            warehouse.dispose()
