"""`make demo`: one pass over sample sources served from loopback, then what the tagger found.

    python scripts/demo.py [--warehouse URL]

Needs no internet: the tests' loopback server serves the sample pages of tests/fixtures/site (written
for the project: arrests in Dushanbe, a trial in Aktobe, a cotton harvest, water talks...)
through four feeds dated today. The pass runs into data/demo.db (or --warehouse), and the
relevant articles are printed with the states, groups and passages that made them so.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FEEDS = {
    "Steppe Times": ("news", "en", ["steppe-times/2026/03/10/dushanbe-arrests.html",
                                   "steppe-times/2026/03/11/cotton-harvest.html",
                                   "steppe-times/2026/03/18/kazakh-aktobe-trial.html"]),
    "Ferghana Wire": ("news", "en", ["ferghana-wire/news/2026-03-12-border-talks.html"]),
    "Analysis Desk": ("think_tank", "en", ["analysis-desk/reports/jihadist-networks-central-asia.html"]),
    "Azattyk RU": ("news", "ru", ["azattyk-ru/2026/03/14/zaderzhaniya.html",
                                 "azattyk-ru/2026/03/15/vodnye-resursy-cp1251.html"]),
}


def serve():
    """The sample site on the tests' loopback server, plus one RSS feed per source, every item
    dated within the last hours."""
    sys.path.insert(0, str(ROOT / "tests"))
    from httpserver import FixtureServer, Item, rss

    server = FixtureServer().start()
    now = datetime.now(timezone.utc)
    for number, (name, (_kind, _language, paths)) in enumerate(FEEDS.items()):
        items = [Item(path.rsplit("/", 1)[1], server.url(f"/{path}"), server.url(f"/{path}"),
                      now - timedelta(hours=1 + n)) for n, path in enumerate(paths)]
        server.add(f"/feed-{number}.xml", rss(items, title=name))
    return server


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", help="warehouse URL (default: sqlite data/demo.db)")
    args = parser.parse_args(argv)
    server = serve()
    base = server.base
    sources = Path(tempfile.mkdtemp(prefix="steppewatch-demo-")) / "sources.yaml"
    sources.write_text("sources:\n" + "".join(
        f"  - name: {name}\n    kind: {kind}\n    feed: {base}/feed-{n}.xml\n    homepage: {base}/\n"
        f"    language: {language}\n" for n, (name, (kind, language, _)) in enumerate(FEEDS.items())), encoding="utf-8")
    os.environ.setdefault("STEPPEWATCH_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32")
    os.environ["STEPPEWATCH_HOST_DELAY"] = "0"
    os.environ["AIRFLOW_CONN_NEWS_WAREHOUSE"] = args.warehouse or f"sqlite:///{ROOT / 'data' / 'demo.db'}"

    import sqlalchemy as sa

    from steppewatch.cli import main as steppewatch
    from steppewatch.config import load_settings
    from steppewatch.schema import articles, mentions
    from steppewatch.warehouse import Warehouse

    print(f"demo: {len(FEEDS)} sample sources on {base}, warehouse {os.environ['AIRFLOW_CONN_NEWS_WAREHOUSE']}\n")
    code = steppewatch(["run", "--sources", str(sources)])
    server.stop()
    if code:
        return code
    warehouse = Warehouse(load_settings().warehouse_url)
    try:
        with warehouse.read() as conn:
            found = conn.execute(sa.select(articles).where(articles.c.relevant.is_(True))
                                 .order_by(articles.c.relevance_score.desc())).mappings().all()
            print(f"\n{len(found)} relevant article(s):")
            for article in found:
                passage = conn.execute(sa.select(mentions.c.sentence, mentions.c.rule)
                                       .where(mentions.c.article_id == article["id"])
                                       .order_by(mentions.c.weight.desc())).first()
                print(f"\n  [{article['relevance_score']:.2f}] {article['title']}  ({article['source']})")
                if passage:
                    print(f"      {passage.rule}: \"{passage.sentence[:220]}\"")
    finally:
        warehouse.dispose()
    print("\nquery it: sqlite3 data/demo.db 'select title, relevant, relevance_score from articles'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
