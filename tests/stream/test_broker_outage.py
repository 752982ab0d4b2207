"""While the broker does not answer, commands go on and are stored; the
publisher retries with growing waits, and when the broker is back everything
stored arrives, in order per certification, and nothing before it is stored."""

import time
from pathlib import Path

import pytest

from projections.publisher import tracking_name
from projections.tracking import PositionTracker
from service.composition import build_runtime
from service.embedded_broker import TansuBroker
from service.settings import Settings
from tests.projections.steps import Steps, one_lifecycle
from tests.stream.topic import (
    PublisherProcess,
    first_copies,
    new_topic,
    read_topic,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)

FROZEN_SECONDS = 8.0


def test_a_frozen_broker_delays_events_but_loses_and_reorders_none(
    broker: TansuBroker, database_url: str, tmp_path: Path
) -> None:
    topic = new_topic(broker.bootstrap)
    runtime = build_runtime(Settings(database_url=database_url))
    steps = Steps(runtime.service)
    tracker = PositionTracker(runtime.views.db, tracking_name(topic))
    publisher = PublisherProcess(
        tmp_path / "publish.log",
        database_url=database_url,
        kafka_bootstrap=broker.bootstrap,
        kafka_topic=topic,
        publisher_batch="5",
        publisher_ack_timeout="2",
    )
    try:
        ids = [one_lifecycle(steps, index) for index in range(3)]
        publisher.start()
        wait_for(
            lambda: tracker.position() >= runtime.service.ping_store(),
            20,
            "the publisher to publish the first lifecycles",
        )

        broker.pause()
        frozen_at = tracker.position()
        for index in range(3, 13):
            ids.append(one_lifecycle(steps, index))
            time.sleep(FROZEN_SECONDS / 10)
        position_while_frozen = tracker.position()
        failures_while_frozen = publisher.events("publish_failed")
        broker.resume()
        last = runtime.service.ping_store()
        wait_for(lambda: tracker.position() >= last, 40, "the publisher to catch up")
        exit_code = publisher.stop()
    finally:
        if publisher.process is not None:
            publisher.stop()
        runtime.close()

    assert exit_code == 0
    assert position_while_frozen == frozen_at
    assert len(failures_while_frozen) >= 2
    delays = [line["retry_in_s"] for line in failures_while_frozen]
    assert delays == sorted(delays)
    assert delays[-1] > delays[0]
    assert all(line["error"] for line in failures_while_frozen)
    assert publisher.events("publisher_recovered")
    received = read_topic(broker.bootstrap, topic)
    versions = first_copies(received)
    assert versions.keys() == {str(cert_id) for cert_id in ids}
    for subject, found in versions.items():
        assert found == list(range(1, len(found) + 1)), subject
    assert len({message.identity for message in received}) == last
