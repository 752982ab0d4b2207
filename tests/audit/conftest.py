"""Fixtures of the auditor tests: a real store with a clock the test moves,
the store's own tables to tamper with, and ``certd`` run in-process."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.clock import FixedClock
from service.composition import Runtime, build_runtime
from service.settings import Settings
from tests.audit.tables import StoredEvents
from tests.projections.steps import START, Steps


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def runtime(database_url: str, clock: FixedClock) -> Iterator[Runtime]:
    runtime = build_runtime(Settings(database_url=database_url), clock)
    yield runtime
    runtime.close()


@pytest.fixture
def steps(runtime: Runtime) -> Steps:
    return Steps(runtime.service)


@pytest.fixture
def tables(database_url: str) -> Iterator[StoredEvents]:
    events = StoredEvents(database_url)
    yield events
    events.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    folder = tmp_path / "audit"
    folder.mkdir()
    return folder
