"""The warehouse connection: PostgreSQL or the embedded SQLite file, migrations, transactions."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .config import PACKAGE_DIR

LOGGER = logging.getLogger(__name__)

T = TypeVar("T")
MIGRATIONS_DIR = PACKAGE_DIR / "migrations"
# SQLite under parallel task processes: wait for the lock, then retry the transaction.
SQLITE_BUSY_TIMEOUT_SECONDS = 30
LOCKED_RETRIES = 8


class WarehouseError(RuntimeError):
    """The warehouse cannot be reached or used: fatal for a run."""


def sqlalchemy_url(url: str) -> str:
    """Turn the contract's URL forms (and Airflow's ``postgres://``) into a SQLAlchemy URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        return url
    if scheme in {"postgres", "postgresql"}:
        scheme = "postgresql+psycopg2"
    elif scheme != "postgresql+psycopg2":
        raise WarehouseError(
            f"unsupported warehouse URL scheme {parts.scheme!r}: use postgresql://user:pw@host:5432/db "
            "or sqlite:////absolute/path.db"
        )
    # Airflow puts connection extras in the query string; only libpq options are meaningful here
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if not k.startswith("__")])
    return urlunsplit((scheme, parts.netloc, parts.path, query, ""))


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # the driver's own implicit BEGIN is off; _sqlite_begin below issues it (SQLAlchemy's recipe)
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # A writer takes the lock up front: a deferred transaction that reads then writes
    # fails at once with "database is locked" instead of waiting for the busy timeout.
    if connection.get_execution_options().get("sqlite_immediate"):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")


def _is_locked(error: BaseException) -> bool:
    return "database is locked" in str(error) or "database table is locked" in str(error)


def upsert(
    connection: Connection,
    table: sa.Table,
    rows: Sequence[dict],
    *,
    keys: Sequence[str],
    update: Sequence[str] = (),
    where: Callable[[sa.Table, object], sa.ColumnElement[bool]] | None = None,
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE/NOTHING, on PostgreSQL and SQLite alike.

    ``where(table, excluded)`` limits the update to rows that actually changed, so a
    rerun that finds everything right writes nothing.
    """
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(table)
    if update:
        statement = statement.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: statement.excluded[name] for name in update},
            where=where(table, statement.excluded) if where else None,
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(keys))
    connection.execute(statement, list(rows))


class Warehouse:
    """An engine plus the few transaction patterns the pipeline uses."""

    def __init__(self, url: str, *, engine: Engine | None = None):
        self.url = url
        self.engine = engine or self._create_engine(url)
        self.dialect = self.engine.dialect.name

    @staticmethod
    def _create_engine(url: str) -> Engine:
        target = sqlalchemy_url(url)
        if target.startswith("sqlite"):
            database = sa.engine.make_url(target).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(
                target,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            sa.event.listen(engine, "begin", _sqlite_begin)
            return engine
        return sa.create_engine(
            target,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=10,
            connect_args={"connect_timeout": 10, "application_name": "steppewatch"},
        )

    def display_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def ping(self) -> None:
        """Raise :class:`WarehouseError` with a clear message when the warehouse is unreachable."""
        try:
            with self.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as err:
            raise WarehouseError(f"warehouse unreachable at {self.display_url()}: {err.__cause__ or err}") from err

    # -- migrations -------------------------------------------------------------------

    def _alembic_config(self, connection: Connection):
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = connection
        return config

    def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to ``revision``."""
        from alembic import command

        self.ping()

        def migrate(connection: Connection) -> None:
            command.upgrade(self._alembic_config(connection), revision)

        self.transaction(migrate)

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def head_revision(self) -> str:
        from alembic.script import ScriptDirectory

        with self.engine.connect() as connection:
            return ScriptDirectory.from_config(self._alembic_config(connection)).get_current_head()

    # -- transactions -----------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for queries (a deferred transaction on SQLite: no write lock)."""
        with self.engine.connect() as connection:
            yield connection

    def transaction(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one write transaction; retry it when SQLite reports a lock."""
        for attempt in range(LOCKED_RETRIES + 1):
            try:
                with self.engine.connect() as connection:
                    connection = connection.execution_options(sqlite_immediate=True)
                    with connection.begin():
                        return work(connection)
            except sa.exc.OperationalError as err:
                if self.dialect != "sqlite" or not _is_locked(err) or attempt == LOCKED_RETRIES:
                    raise
                delay = min(5.0, 0.1 * 2**attempt) * random.uniform(0.5, 1.5)
                LOGGER.warning("warehouse locked, retrying the transaction in %.2fs", delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()
