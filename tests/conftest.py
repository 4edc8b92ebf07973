"""Shared fixtures: a loopback HTTP server, throwaway warehouses on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import secrets
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from httpserver import FixtureServer
from world import build_world
from steppewatch.config import load_settings
from steppewatch.warehouse import Warehouse

# The admin connection used to create throwaway databases (trust auth on these machines).
PG_ADMIN_URL = os.environ.get("STEPPEWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
# The real-world corpus is read in place, never copied: ../shared/corpus next to the checkout,
# or wherever STEPPEWATCH_CORPUS points (CI sets it for clones made elsewhere).
SHARED_CORPUS = Path(os.environ.get("STEPPEWATCH_CORPUS") or Path(__file__).resolve().parents[2] / "shared" / "corpus")

# Fast, permissive settings for loopback tests; the private-network guard stays on for
# everything except 127.0.0.1 itself, so redirects to other private addresses are refused.
TEST_ENV = {
    "STEPPEWATCH_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32",
    "STEPPEWATCH_HOST_DELAY": "0",
    "STEPPEWATCH_HOST_CONCURRENCY": "4",
    "STEPPEWATCH_BACKOFF_BASE": "0.01",
    "STEPPEWATCH_RETRIES": "2",
    "STEPPEWATCH_CONNECT_TIMEOUT": "2",
    "STEPPEWATCH_READ_TIMEOUT": "1",
    "STEPPEWATCH_MAX_RETRY_AFTER": "5",
    "STEPPEWATCH_EXTRACT_WORKERS": "1",
}


@pytest.fixture(autouse=True)
def test_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("STEPPEWATCH_") or name == "AIRFLOW_CONN_NEWS_WAREHOUSE":
            monkeypatch.delenv(name)
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("STEPPEWATCH_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture(scope="session")
def server() -> Iterator[FixtureServer]:
    httpd = FixtureServer().start()
    yield httpd
    httpd.stop()


@pytest.fixture
def site(server: FixtureServer) -> Iterator[FixtureServer]:
    """The loopback server with the routes of this test only."""
    server.reset()
    yield server
    server.reset()


class PostgresDatabases:
    """Creates and drops throwaway databases cloned from one migrated template."""

    def __init__(self, admin_url: str):
        self.admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.prefix = f"steppewatch_test_{secrets.token_hex(4)}"
        self.created: list[str] = []
        try:
            with self.admin.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.OperationalError as err:
            raise RuntimeError(
                f"PostgreSQL is needed for the tests at {admin_url} (start it: see README, 'Tests'): {err}"
            ) from err
        self.template = self._create(f"{self.prefix}_template")
        template = Warehouse(self.url(self.template))
        template.upgrade()
        template.dispose()

    def url(self, name: str) -> str:
        return self.admin.url.set(database=name).render_as_string(hide_password=False)

    def _create(self, name: str, template: str | None = None) -> str:
        with self.admin.connect() as conn:
            clause = f' TEMPLATE "{template}"' if template else ""
            conn.execute(sa.text(f'CREATE DATABASE "{name}"{clause}'))
        self.created.append(name)
        return name

    def new(self, *, migrated: bool = True) -> str:
        name = f"{self.prefix}_{uuid.uuid4().hex[:10]}"
        self._create(name, self.template if migrated else None)
        return self.url(name)

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in reversed(self.created):
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases(PG_ADMIN_URL)
    yield databases
    databases.drop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated warehouse on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'warehouse.db'}"
        Warehouse(url).upgrade()
        return url
    return request.getfixturevalue("postgres").new()


@pytest.fixture
def warehouse(warehouse_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Warehouse]:
    monkeypatch.setenv("AIRFLOW_CONN_NEWS_WAREHOUSE", warehouse_url)
    wh = Warehouse(warehouse_url)
    yield wh
    wh.dispose()


@pytest.fixture
def settings(warehouse: Warehouse):
    return load_settings()


@pytest.fixture
def refused_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def world(site, tmp_path, refused_port, monkeypatch):
    """The loopback world of good and bad feeds (tests/world.py)."""
    monkeypatch.setenv("STEPPEWATCH_RETRIES", "1")
    return build_world(site, tmp_path, refused_port=refused_port)
