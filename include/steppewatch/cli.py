"""The ``steppewatch`` command.

Exit codes: 0 the command finished (a pass may still have failed sources: they are
recorded and printed); 2 bad usage or configuration; 3 the warehouse is unreachable.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa

from . import __version__
from .config import ConfigError, load_settings
from .sources import SourcesError, load_sources, validate_sources
from .warehouse import Warehouse, WarehouseError
from .windows import Window

LOGGER = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_WAREHOUSE = 3


def _print_report(report, out) -> None:
    columns = ("source", "feed", "seen", "new", "window", "fetched", "extracted", "copies", "tagged", "relevant",
               "failed")
    fields = ("items_seen", "items_new", "items_in_window", "fetched", "extracted", "duplicates", "tagged",
              "relevant", "failed")
    rows = [(s.source, s.feed_status or "-", *(getattr(s, f) for f in fields)) for s in report.sources]
    totals = report.totals()
    rows.append(("TOTAL", "", *(totals[f] for f in fields)))
    widths = [max(len(str(r[i])) for r in [columns, *rows]) for i in range(len(columns))]
    print(f"steppewatch run {report.run_id}: window {report.window}", file=out)
    for index, row in enumerate([columns, *rows]):
        if index == len(rows):
            print("  ".join("-" * w for w in widths), file=out)
        print("  ".join(str(v).ljust(w) if i < 2 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths))),
              file=out)
    problems = [s for s in report.sources if s.reasons]
    if problems:
        print("\nproblems (stage/kind: count, e.g. first reason):", file=out)
        for source in problems:
            flag = " [source failed]" if source.status == "failed" else ""
            print(f"  {source.source}{flag}", file=out)
            for key, entry in sorted(source.reasons.items()):
                print(f"    {key}: {entry['count']}, e.g. {entry['example']}", file=out)


def cmd_run(args: argparse.Namespace) -> int:
    from .pipeline import run_pass

    settings = load_settings()
    if args.sources:
        settings = settings.with_overrides(sources_path=Path(args.sources))
    try:
        window = Window.from_strings(args.start, args.end)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    sources = load_sources(settings.sources_path, only=args.only or None)
    report = run_pass(settings, sources, window, reprocess=args.reprocess, deep=True if args.deep else None)
    if args.json:
        json.dump(report.as_dict(), sys.stdout, indent=2, default=str)
        print()
    else:
        _print_report(report, sys.stdout)
    return EXIT_OK


def _read_tag_requests(stream, errors: list[str]):
    """Yield ``(id, text, title, language)`` per JSON line; collect a reason for each bad line."""
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except json.JSONDecodeError as err:
            request, problem = None, f"not JSON: {err.msg} at column {err.colno}"
        else:
            problem = None if isinstance(request, dict) else "expected an object with id and text"
        if problem:
            errors.append(f"line {number}: {problem}")
            yield None, f"line {number}: {problem}"
            continue
        text, title, language = request.get("text"), request.get("title"), request.get("language")
        if not isinstance(text, str):
            problem = "text is missing or not a string"
        elif title is not None and not isinstance(title, str):
            problem = "title is not a string"
        elif language is not None and not isinstance(language, str):
            problem = "language is not a string"
        if problem:
            errors.append(f"line {number}: {problem}")
            yield request.get("id"), f"line {number}: {problem}"
            continue
        yield request.get("id"), (text, title, language)


def cmd_tag(args: argparse.Namespace) -> int:
    """JSON lines in, one JSON line out per input (an ``error`` line for a bad one)."""
    from itertools import islice

    from .tagger import Tagger

    tagger = Tagger()
    errors: list[str] = []
    requests = _read_tag_requests(sys.stdin, errors)
    out = sys.stdout
    while True:
        batch = list(islice(requests, args.batch_size))
        if not batch:
            break
        good = [(rid, item) for rid, item in batch if isinstance(item, tuple)]
        results = iter(tagger.tag_many([item for _, item in good]))
        for rid, item in batch:
            if isinstance(item, tuple):
                line = next(results).as_json(rid)
            else:
                line = {"id": rid, "error": item}
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
        out.flush()
    for error in errors:
        print(f"steppewatch tag: {error}", file=sys.stderr)
    return EXIT_OK


def cmd_retag(args: argparse.Namespace) -> int:
    """Re-tag stored articles whose tagger version is not the current one (no network)."""
    from . import store
    from .pipeline import TaggingService, tag_articles

    settings = load_settings()
    window = None
    if args.start or args.end:
        try:
            window = Window.from_strings(args.start or "1970-01-01", args.end)
        except ValueError as err:
            raise ConfigError(str(err)) from err
    warehouse = Warehouse(settings.warehouse_url)
    try:
        warehouse.upgrade()
        tagging = TaggingService()
        version = tagging.version
        with warehouse.read() as conn:
            if args.all:
                ids = store.articles_to_tag(conn, window=window or Window.from_strings("1970-01-01", None),
                                            retag_window=True)
            else:
                ids = store.articles_to_tag(conn, window=window, version=version)
        problems: list[str] = []
        outcome = tag_articles(warehouse, tagging, ids, batch_size=settings.batch_size, run_id=None, source=None,
                               on_problem=lambda kind, reason: problems.append(reason))
    except sa.exc.OperationalError as err:
        raise WarehouseError(f"warehouse error at {warehouse.display_url()}: {str(err).splitlines()[0]}") from err
    finally:
        warehouse.dispose()
    summary = {"tagger_version": version, "articles": len(ids), "changed": outcome.written,
               "unchanged": outcome.unchanged, "relevant": outcome.relevant, "problems": problems}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"retag with {version}: {len(ids)} article(s), {outcome.written} changed, "
              f"{outcome.unchanged} unchanged, {outcome.relevant} relevant")
        for problem in problems:
            print(f"  problem: {problem}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """Articles or mentions of a filter as CSV or JSON lines, or an Atom feed of the articles."""
    from . import analysis

    try:
        flt = analysis.ArticleFilter.from_params({
            "start": args.start, "end": args.end, "country": args.country, "group": args.group,
            "person": args.person, "source": args.source, "language": args.language, "q": args.q,
            "relevant": "any" if args.all else None})
    except analysis.FilterError as err:
        raise ConfigError(str(err)) from err
    warehouse = Warehouse(load_settings().warehouse_url)
    out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout
    try:
        warehouse.ping()
        with warehouse.read() as conn:
            if args.what == "atom":
                out.write(analysis.atom_feed(conn, flt, feed_url=args.feed_url, site_url=args.site_url,
                                             limit=args.limit))
            else:
                records = (analysis.export_articles(conn, flt, limit=args.limit) if args.what == "articles"
                           else analysis.export_mentions(conn, flt, limit=args.limit))
                fields = analysis.ARTICLE_FIELDS if args.what == "articles" else analysis.MENTION_FIELDS
                for chunk in analysis.to_csv(records, fields) if args.format == "csv" else analysis.to_jsonl(records):
                    out.write(chunk)
    finally:
        if args.output:
            out.close()
        warehouse.dispose()
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    warehouse = Warehouse(load_settings().warehouse_url)
    try:
        warehouse.upgrade(args.revision)
        print(f"warehouse {warehouse.display_url()} at revision {warehouse.current_revision()}")
    finally:
        warehouse.dispose()
    return EXIT_OK


def cmd_db_current(_args: argparse.Namespace) -> int:
    warehouse = Warehouse(load_settings().warehouse_url)
    try:
        warehouse.ping()
        current, head = warehouse.current_revision(), warehouse.head_revision()
        print(f"warehouse {warehouse.display_url()}: revision {current or 'none'} (latest {head})")
        return EXIT_OK if current == head else EXIT_CONFIG
    finally:
        warehouse.dispose()


def cmd_sources_check(args: argparse.Namespace) -> int:
    path = Path(args.sources) if args.sources else load_settings().sources_path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        print(f"{path}: error: file: cannot read: {err.strerror or err}", file=sys.stderr)
        return EXIT_CONFIG
    sources, problems = validate_sources(text, str(path))
    for problem in problems:
        print(problem, file=sys.stderr)
    errors = sum(p.severity == "error" for p in problems)
    if errors:
        print(f"{path}: {errors} error(s); fix them before running", file=sys.stderr)
        return EXIT_CONFIG
    kinds = {}
    for source in sources:
        kinds[source.kind.value] = kinds.get(source.kind.value, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    print(f"{path}: {len(sources)} sources OK ({summary})")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="steppewatch",
        description="Monitor think-tank and news feeds for terrorism and violent extremism linked to Central Asia.",
    )
    parser.add_argument("--version", action="version", version=f"steppewatch {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="one pass of the pipeline for a window (default: the last 24 hours)")
    run.add_argument("--sources", metavar="FILE", help="sources YAML (default: $STEPPEWATCH_SOURCES or include/sources.yaml)")
    run.add_argument("--start", metavar="ISO", help="window start, e.g. 2026-03-10 or 2026-03-10T06:00Z (UTC)")
    run.add_argument("--end", metavar="ISO", help="window end, exclusive (default: now)")
    run.add_argument("--json", action="store_true", help="print the run summary as JSON")
    run.add_argument("--only", metavar="NAME", action="append", help="run only this source (repeatable)")
    run.add_argument("--reprocess", action="store_true", help="re-extract and re-tag the window's stored pages too")
    run.add_argument("--deep", action="store_true",
                     help="also read the sources' sitemaps and feed archives (automatic for windows that ended "
                          "more than a day ago)")
    run.set_defaults(handler=cmd_run)

    tag = commands.add_parser("tag", help="tag JSON lines {id, text, title?, language?} from stdin, one JSON line out each")
    tag.add_argument("--batch-size", type=int, default=32, metavar="N", help="texts tagged together (default 32)")
    tag.set_defaults(handler=cmd_tag)

    retag = commands.add_parser("retag", help="re-tag stored articles tagged by an older tagger version (no network)")
    retag.add_argument("--start", metavar="ISO", help="only articles published (or read from a feed) from this date")
    retag.add_argument("--end", metavar="ISO", help="... until this date, exclusive (default: now)")
    retag.add_argument("--all", action="store_true", help="re-tag every article in the range, whatever its version")
    retag.add_argument("--json", action="store_true", help="print the summary as JSON")
    retag.set_defaults(handler=cmd_retag)

    export = commands.add_parser("export", help="relevant articles or their mentions as CSV or JSON lines, or an "
                                                "Atom feed, for a filter")
    export.add_argument("what", choices=["articles", "mentions", "atom"])
    export.add_argument("--format", choices=["csv", "jsonl"], default="csv", help="for articles and mentions")
    export.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    for name, helptext in (("start", "published from this day (YYYY-MM-DD)"), ("end", "... until this day, inclusive"),
                           ("country", "tied to this state (canonical name, e.g. Tajikistan)"),
                           ("group", "tied to this group (e.g. ISKP)"), ("person", "naming this person"),
                           ("source", "from this source"), ("language", "in this language (en, ru)"),
                           ("q", "with these words in the title or text")):
        export.add_argument(f"--{name}", metavar=name.upper(), help=helptext)
    export.add_argument("--all", action="store_true", help="not only relevant articles")
    export.add_argument("--limit", type=int, default=50_000, help="at most this many rows (default 50,000)")
    export.add_argument("--site-url", default="http://localhost:8080/steppewatch",
                        help="for the Atom feed: where the plugin's pages are")
    export.add_argument("--feed-url", default="urn:steppewatch:export", help="for the Atom feed: its own id")
    export.set_defaults(handler=cmd_export)

    db = commands.add_parser("db", help="warehouse maintenance").add_subparsers(dest="db_command", required=True,
                                                                                metavar="ACTION")
    upgrade = db.add_parser("upgrade", help="apply schema migrations")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(handler=cmd_db_upgrade)
    db.add_parser("current", help="show the schema revision").set_defaults(handler=cmd_db_current)

    src = commands.add_parser("sources", help="the sources file").add_subparsers(dest="sources_command",
                                                                                 required=True, metavar="ACTION")
    check = src.add_parser("check", help="validate the sources YAML, naming the line and field of each problem")
    check.add_argument("--sources", metavar="FILE")
    check.set_defaults(handler=cmd_sources_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.verbose < 2:
        # trafilatura and htmldate are chatty about every odd page
        for noisy in ("trafilatura", "htmldate", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        return args.handler(args)
    except SourcesError as err:
        print(err, file=sys.stderr)
        return EXIT_CONFIG
    except ConfigError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except WarehouseError as err:
        print(f"warehouse error: {err}", file=sys.stderr)
        return EXIT_WAREHOUSE
    except BrokenPipeError:
        # the reader went away (`steppewatch export ... | head`): not an error of ours
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
