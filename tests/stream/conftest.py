"""Fixtures of the event stream tests: a store, its publisher, and a topic of
the test's own on the session's real broker."""

from collections.abc import Iterator

import pytest

from projections.publisher import EventPublisher
from service.composition import Runtime, build_publisher
from service.settings import Settings
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
def publisher(settings: Settings, runtime: Runtime) -> Iterator[EventPublisher]:
    publisher = build_publisher(settings, runtime.service)
    yield publisher
    publisher.close()
