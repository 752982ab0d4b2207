"""A publisher killed at any moment loses nothing and reorders nothing: the
restarted one resumes where the last acknowledged batch left it."""

import random
import threading
import time
from pathlib import Path
from uuid import UUID

import pytest

from projections.publisher import tracking_name
from projections.tracking import PositionTracker
from service.composition import Runtime
from tests.projections.steps import Steps, one_lifecycle
from tests.stream.topic import (
    PublisherProcess,
    first_copies,
    read_topic,
    settled_position,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)

KILLS = 4


class Traffic:
    """Commands issued in-process, a lifecycle every ``pause`` seconds, until
    stopped; a failure is kept for the test to report."""

    def __init__(self, steps: Steps, pause: float = 0.02) -> None:
        self.steps = steps
        self.pause = pause
        self.ids: list[UUID] = []
        self.failures: list[BaseException] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> "Traffic":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self.ids.append(one_lifecycle(self.steps, len(self.ids)))
                self._stopping.wait(self.pause)
        except BaseException as error:  # reported by the test, not lost
            self.failures.append(error)


def test_a_publisher_killed_mid_batch_again_and_again_loses_and_reorders_nothing(
    runtime: Runtime,
    steps: Steps,
    database_url: str,
    kafka_bootstrap: str,
    topic: str,
    tmp_path: Path,
) -> None:
    tracker = PositionTracker(runtime.views.db, tracking_name(topic))
    publisher = PublisherProcess(
        tmp_path / "publish.log",
        database_url=database_url,
        kafka_bootstrap=kafka_bootstrap,
        kafka_topic=topic,
        publisher_batch="3",
    )
    left_at: list[int] = []

    with Traffic(steps) as traffic:
        for _ in range(KILLS):
            started_at = tracker.position()
            publisher.start()
            wait_for(
                lambda at=started_at: (
                    bool(traffic.failures) or tracker.position() > at + 6
                ),
                20,
                "the publisher to publish a few batches",
            )
            time.sleep(random.uniform(0, 0.05))
            publisher.kill()
            left_at.append(settled_position(tracker))
    assert traffic.failures == []
    last = runtime.service.ping_store()
    publisher.start()
    wait_for(lambda: tracker.position() >= last, 30, "the last publisher to catch up")
    assert publisher.stop() == 0

    received = read_topic(kafka_bootstrap, topic)
    on_topic = {message.identity for message in received}
    for cert_id in traffic.ids:
        version = runtime.service.get(cert_id).version
        stored = {(str(cert_id), v) for v in range(1, version + 1)}
        assert stored <= on_topic, f"{cert_id} is missing events on the topic"
    for subject, versions in first_copies(received).items():
        assert versions == list(range(1, len(versions) + 1)), subject
    resumed_at = [line["position"] for line in publisher.events("publisher_started")]
    assert resumed_at == [0, *left_at]
