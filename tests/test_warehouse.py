"""Warehouse: URL forms, migrations on both backends, and SQLite under concurrent writers."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from steppewatch.schema import FULLTEXT_INDEX, metadata, sources
from steppewatch.warehouse import Warehouse, WarehouseError, sqlalchemy_url, upsert


@pytest.mark.parametrize("given, expected", [
    ("postgresql://u:pw@db:5432/news", "postgresql+psycopg2://u:pw@db:5432/news"),
    ("postgres://u:pw@db:5432/news", "postgresql+psycopg2://u:pw@db:5432/news"),
    ("postgresql://u@db/news?sslmode=require&__extra__=%7B%7D", "postgresql+psycopg2://u@db/news?sslmode=require"),
    ("sqlite:////var/lib/steppewatch/w.db", "sqlite:////var/lib/steppewatch/w.db"),
])
def test_contract_url_forms(given, expected):
    assert sqlalchemy_url(given) == expected


def test_unsupported_scheme_is_a_clear_error():
    with pytest.raises(WarehouseError, match="unsupported warehouse URL scheme 'mysql'"):
        sqlalchemy_url("mysql://u@h/db")


def test_migrated_schema_matches_the_code(warehouse):
    with warehouse.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        indexes = {index["name"] for index in sa.inspect(conn).get_indexes("articles")}
    # the full-text index is an expression index, which the table definitions cannot carry
    differences = [d for d in differences if not (d[0] == "remove_index" and d[1].name == FULLTEXT_INDEX)]
    assert differences == []
    assert (FULLTEXT_INDEX in indexes) == (warehouse.dialect == "postgresql")
    assert warehouse.current_revision() == warehouse.head_revision()


def test_upgrade_is_idempotent(warehouse):
    warehouse.upgrade()
    warehouse.upgrade()
    assert warehouse.current_revision() == warehouse.head_revision()


def test_fresh_postgres_database_upgrades_from_nothing(postgres):
    wh = Warehouse(postgres.new(migrated=False))
    assert wh.current_revision() is None
    wh.upgrade()
    with wh.read() as conn:
        assert {"articles", "mentions", "pages", "feed_items"} <= set(sa.inspect(conn).get_table_names())
    wh.dispose()


def test_unreachable_warehouse_is_a_warehouse_error():
    wh = Warehouse("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(WarehouseError, match="warehouse unreachable"):
        wh.ping()


def test_upsert_updates_only_what_changed(warehouse):
    from datetime import datetime, timezone

    now = datetime(2026, 3, 10, tzinfo=timezone.utc)
    row = {"name": "X", "kind": "news", "feed_url": "https://x.org/rss", "homepage": "https://x.org",
           "language": "en", "enabled": True, "updated_at": now}
    changed = lambda table, excluded: table.c.feed_url.is_distinct_from(excluded.feed_url)  # noqa: E731
    later = datetime(2026, 3, 11, tzinfo=timezone.utc)
    warehouse.transaction(lambda c: upsert(c, sources, [row], keys=["name"], update=["feed_url", "updated_at"], where=changed))
    warehouse.transaction(lambda c: upsert(c, sources, [{**row, "updated_at": later}], keys=["name"],
                                           update=["feed_url", "updated_at"], where=changed))
    with warehouse.read() as conn:
        assert conn.execute(sa.select(sources.c.updated_at)).scalar() == now, "an identical row is not rewritten"
    warehouse.transaction(lambda c: upsert(c, sources, [{**row, "feed_url": "https://x.org/feed", "updated_at": later}],
                                           keys=["name"], update=["feed_url", "updated_at"], where=changed))
    with warehouse.read() as conn:
        assert conn.execute(sa.select(sources.c.feed_url, sources.c.updated_at)).one() == ("https://x.org/feed", later)


def test_sqlite_uses_wal_and_a_busy_timeout(tmp_path):
    wh = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    with wh.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
    wh.dispose()


def test_sqlite_concurrent_writers_all_succeed(tmp_path):
    """Parallel task processes write the embedded warehouse: transactions wait, none fails."""
    url = f"sqlite:///{tmp_path / 'w.db'}"
    Warehouse(url).upgrade()
    from datetime import datetime, timezone

    errors = []

    def writer(number: int) -> None:
        wh = Warehouse(url)  # one engine per writer, as separate processes would have
        try:
            for i in range(25):
                def work(conn, i=i):
                    # read, then write: the pattern that deadlocks deferred SQLite transactions
                    conn.execute(sa.select(sa.func.count()).select_from(sources)).scalar()
                    conn.execute(sources.insert().values(
                        name=f"w{number}-{i}", kind="news", feed_url="https://x.org/rss", homepage="https://x.org",
                        language="en", enabled=True, updated_at=datetime.now(timezone.utc)))
                wh.transaction(work)
        except Exception as err:  # noqa: BLE001 - collected for the assertion
            errors.append(err)
        finally:
            wh.dispose()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    wh = Warehouse(url)
    with wh.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sources)).scalar() == 150
    wh.dispose()
