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
    columns = ("source", "feed", "seen", "new", "window", "fetched", "extracted", "copies", "failed")
    fields = ("items_seen", "items_new", "items_in_window", "fetched", "extracted", "duplicates", "failed")
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
    report = run_pass(settings, sources, window, reprocess=args.reprocess)
    if args.json:
        json.dump(report.as_dict(), sys.stdout, indent=2, default=str)
        print()
    else:
        _print_report(report, sys.stdout)
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
    run.add_argument("--reprocess", action="store_true", help="re-extract the window's stored pages too")
    run.set_defaults(handler=cmd_run)

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


if __name__ == "__main__":
    sys.exit(main())
