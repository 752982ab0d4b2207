"""Fixtures of the scheduler tests: the whole runtime on a real store, with
one clock that the test moves and that every part reads."""

from collections.abc import Iterator

import pytest

from domain.clock import FixedClock
from service.composition import Runtime, build_runtime
from service.settings import Settings
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
