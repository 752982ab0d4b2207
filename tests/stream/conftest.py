"""Fixtures of the event stream tests: a store, its publisher, and a topic of
the test's own on the session's real broker."""

from collections.abc import Iterator

import pytest

from domain.clock import FixedClock
from projections.publisher import EventPublisher
from service.composition import Runtime, build_publisher, build_runtime
from service.settings import Settings
from tests.projections.steps import START, Steps
from tests.stream.topic import PARTITIONS, new_topic


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    return new_topic(kafka_bootstrap)


@pytest.fixture
def settings(database_url: str, kafka_bootstrap: str, topic: str) -> Settings:
    return Settings(
        database_url=database_url,
        kafka_bootstrap=kafka_bootstrap,
        kafka_topic=topic,
        kafka_partitions=PARTITIONS,
        publisher_batch=7,
    )


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def runtime(settings: Settings, clock: FixedClock) -> Iterator[Runtime]:
    runtime = build_runtime(settings, clock)
    yield runtime
    runtime.close()


@pytest.fixture
def steps(runtime: Runtime) -> Steps:
    return Steps(runtime.service)


@pytest.fixture
def publisher(settings: Settings, runtime: Runtime) -> Iterator[EventPublisher]:
    publisher = build_publisher(settings, runtime.service)
    yield publisher
    publisher.close()
