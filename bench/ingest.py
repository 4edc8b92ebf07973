"""Ingestion benchmark: throughput of a full pass, and extraction quality, on ../shared/corpus.

    python -m bench.ingest [--copies N] [--skip-postgres]

Serves the corpus pages (copied under distinct URLs until there are at least 1,000)
from a loopback server in a separate process through ten RSS feeds, runs one full
pass into the embedded SQLite warehouse and into a throwaway PostgreSQL database,
and compares the pass with bare ``trafilatura.extract`` of the same pages in this
process. Then scores extraction against the corpus' ground truth.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("STEPPEWATCH_CORPUS") or ROOT.parent / "shared" / "corpus") / "html"
FEEDS = 10
PG_ADMIN_URL = os.environ.get("STEPPEWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
_TOKEN = re.compile(r"\w+", re.UNICODE)


# -- the corpus -----------------------------------------------------------------------


def load_corpus() -> list[tuple[str, bytes, dict]]:
    """(name, html bytes, ground truth) for every page of the corpus."""
    if not CORPUS.is_dir():
        sys.exit(f"the corpus is not at {CORPUS}: the benchmark needs ../shared/corpus")
    pages = []
    for path in sorted((CORPUS / "scrapinghub-aeb").glob("*.html.gz")):
        truth = json.loads(path.with_name(path.name.replace(".html.gz", ".json")).read_text(encoding="utf-8"))
        pages.append((f"aeb-{path.name[:16]}", gzip.decompress(path.read_bytes()), {"kind": "aeb", **truth}))
    for path in sorted((CORPUS / "trafilatura").glob("*.html")):
        truth = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        pages.append((f"traf-{path.stem}", path.read_bytes(), {"kind": "snippets", **truth}))
    return pages


def build_site(corpus, copies: int, published: datetime) -> tuple[dict[str, bytes], list[list[tuple[str, str]]]]:
    pages: dict[str, bytes] = {}
    items: list[tuple[str, str]] = []
    for copy in range(copies):
        for name, html, _truth in corpus:
            path = f"/c{copy}/{name}.html"
            pages[path] = html
            items.append((path, f"{name} (copy {copy})"))
    per_feed = math.ceil(len(items) / FEEDS)
    return pages, [items[i:i + per_feed] for i in range(0, len(items), per_feed)]


def rss(base: str, items: list[tuple[str, str]], published: datetime) -> bytes:
    entries = "".join(
        f"<item><title>{escape(title)}</title><link>{base}{path}</link><guid>{base}{path}</guid>"
        f"<pubDate>{format_datetime(published)}</pubDate></item>"
        for path, title in items
    )
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>bench</title>'
            f"<link>{base}/</link><description>bench</description>{entries}</channel></rss>").encode()


# -- measurements ---------------------------------------------------------------------


def bare_extraction_seconds(htmls: list[bytes], favor_precision: bool) -> float:
    import trafilatura

    trafilatura.extract(htmls[0], favor_precision=favor_precision)  # imports and caches, not timed
    started = time.perf_counter()
    for html in htmls:
        trafilatura.extract(html, favor_precision=favor_precision)
    return time.perf_counter() - started


def full_pass(warehouse_url: str, sources_file: Path, window, workers: int) -> tuple[float, dict]:
    from steppewatch.config import load_settings
    from steppewatch.pipeline import run_pass
    from steppewatch.sources import load_sources
    from steppewatch.warehouse import Warehouse

    os.environ["AIRFLOW_CONN_NEWS_WAREHOUSE"] = warehouse_url
    settings = load_settings().with_overrides(
        sources_path=sources_file, max_items_per_source=10_000, extract_workers=workers, source_workers=4,
    )
    warehouse = Warehouse(warehouse_url)
    warehouse.upgrade()
    started = time.perf_counter()
    report = run_pass(settings, load_sources(sources_file), window, warehouse=warehouse, upgrade=False)
    elapsed = time.perf_counter() - started
    warehouse.dispose()
    return elapsed, report.totals()


def tokens(text: str | None) -> Counter:
    return Counter(_TOKEN.findall((text or "").lower()))


def token_f1(predicted: str | None, truth: str) -> tuple[float, float, float]:
    got, want = tokens(predicted), tokens(truth)
    common = sum((got & want).values())
    if not got or not want or not common:
        return 0.0, 0.0, 0.0
    precision, recall = common / sum(got.values()), common / sum(want.values())
    return precision, recall, 2 * precision * recall / (precision + recall)


def quality(corpus) -> list[dict]:
    """Extraction quality of bare trafilatura (default and favor_precision) and of the pipeline's own function."""
    import trafilatura

    from steppewatch.extraction import extract_page

    variants = {
        "trafilatura default": lambda html, url: trafilatura.extract(html, url=url),
        "trafilatura favor_precision": lambda html, url: trafilatura.extract(html, url=url, favor_precision=True),
        "steppewatch extract_page (favor_precision)": lambda html, url: extract_page(
            html, url=url, content_type="text/html", favor_precision=True).text,
        "steppewatch extract_page (default)": lambda html, url: extract_page(
            html, url=url, content_type="text/html", favor_precision=False).text,
    }
    results = []
    for label, run in variants.items():
        f1s, precisions, recalls = [], [], []
        found = wanted = absent = unwanted = 0
        for _name, html, truth in corpus:
            text = run(html, truth.get("url"))
            if truth["kind"] == "aeb":
                p, r, f = token_f1(text, truth["articleBody"])
                f1s.append(f), precisions.append(p), recalls.append(r)
            else:
                for snippet in truth.get("with", []):
                    wanted += 1
                    found += bool(text) and snippet in text
                for snippet in truth.get("without", []):
                    unwanted += 1
                    absent += not text or snippet not in text
        results.append({
            "variant": label,
            "aeb_pages": len(f1s),
            "median_f1": statistics.median(f1s), "mean_f1": statistics.mean(f1s),
            "mean_precision": statistics.mean(precisions), "mean_recall": statistics.mean(recalls),
            "with_found": found, "with_total": wanted, "without_absent": absent, "without_total": unwanted,
        })
    return results


# -- the run --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=0, help="copies of the corpus (default: enough for 1,000 pages)")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args(argv)

    corpus = load_corpus()
    copies = args.copies or math.ceil(1000 / len(corpus))
    now = datetime.now(timezone.utc)
    published = now - timedelta(hours=2)
    pages, feed_items = build_site(corpus, copies, published)
    page_count = len(pages)

    # the loopback server runs in its own process, so that it does not compete for our GIL
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    feeds = {f"/feed/{n}.xml": rss(base, items, published) for n, items in enumerate(feed_items)}
    server = _start_server(pages, feeds, port)

    os.environ.update({
        "STEPPEWATCH_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32",
        "STEPPEWATCH_HOST_DELAY": "0",
        "STEPPEWATCH_HOST_CONCURRENCY": "8",
    })
    workers = max(1, min(4, os.cpu_count() or 1))
    from steppewatch.config import load_settings
    from steppewatch.windows import Window

    precision = load_settings().favor_precision
    window = Window(now - timedelta(days=1), now + timedelta(hours=1))
    results: dict = {"pages": page_count, "copies": copies, "extract_workers": workers, "cores": os.cpu_count(),
                     "favor_precision": precision}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            sources_file = Path(tmp) / "sources.yaml"
            sources_file.write_text("sources:\n" + "".join(
                f"  - name: Bench {n}\n    kind: news\n    feed: {base}/feed/{n}.xml\n    homepage: {base}/\n"
                f"    language: en\n" for n in range(len(feeds))), encoding="utf-8")
            htmls = [pages[path] for items in feed_items for path, _title in items]
            print(f"corpus: {len(corpus)} pages x {copies} copies = {page_count} pages, {len(feeds)} feeds, "
                  f"{os.cpu_count()} cores, favor_precision={precision}", flush=True)
            bare = bare_extraction_seconds(htmls, precision)
            results["bare_extraction_seconds"] = bare
            print(f"bare trafilatura.extract, sequential: {bare:.1f} s ({page_count / bare:.1f} pages/s)", flush=True)

            # the same pass on one core shows the pipeline's own cost per page
            targets = [("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", workers),
                       ("sqlite, 1 worker", f"sqlite:///{Path(tmp) / 'bench1.db'}", 1)]
            pg_name = None
            if not args.skip_postgres:
                import sqlalchemy as sa

                admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
                pg_name = f"steppewatch_bench_{uuid.uuid4().hex[:8]}"
                with admin.connect() as conn:
                    conn.execute(sa.text(f'CREATE DATABASE "{pg_name}"'))
                targets.append(("postgresql", admin.url.set(database=pg_name).render_as_string(hide_password=False),
                                workers))
            try:
                for label, url, pass_workers in targets:
                    elapsed, totals = full_pass(url, sources_file, window, pass_workers)
                    ratio = elapsed / bare
                    results[label] = {"seconds": elapsed, "pages_per_second": page_count / elapsed,
                                      "ratio_to_bare": ratio, "totals": totals}
                    print(f"full pass into {label:16s}: {elapsed:6.1f} s  {page_count / elapsed:6.1f} pages/s  "
                          f"ratio to bare extraction {ratio:.2f}x (target <= 1.5x)  "
                          f"fetched {totals['fetched']} extracted {totals['extracted']} "
                          f"linked as copies {totals['duplicates']} tagged {totals['tagged']} "
                          f"failed {totals['failed']}",
                          flush=True)
            finally:
                if pg_name:
                    with admin.connect() as conn:
                        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
                    admin.dispose()
    finally:
        server.terminate()
        server.join()

    print("\nextraction quality (scrapinghub-aeb token F1; trafilatura snippets):")
    results["quality"] = quality(corpus)
    for row in results["quality"]:
        print(f"  {row['variant']:44s} median F1 {row['median_f1']:.3f}  mean F1 {row['mean_f1']:.3f}  "
              f"P {row['mean_precision']:.3f}  R {row['mean_recall']:.3f}  "
              f"with found {row['with_found']}/{row['with_total']}  "
              f"without absent {row['without_absent']}/{row['without_total']}")
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "ingest.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    print(f"\nwritten to {out / 'ingest.json'}")
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_server(pages: dict[str, bytes], feeds: dict[str, bytes], port: int):
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    process = context.Process(target=_serve, args=(pages, feeds, port, ready), daemon=True)
    process.start()
    ready.get(timeout=60)
    return process


def _serve(pages: dict[str, bytes], feeds: dict[str, bytes], port: int, ready) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            path = self.path.split("?", 1)[0]
            body = feeds.get(path) or pages.get(path)
            kind = "application/rss+xml" if path in feeds else "text/html"
            self.send_response(200 if body is not None else 404)
            body = body if body is not None else b"not found"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    httpd.daemon_threads = True
    ready.put(port)
    httpd.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
