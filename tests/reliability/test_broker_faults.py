"""The Kafka broker frozen, then stopped and started again, under a command load
on ``certd serve``.

Commands go on being stored while the broker is away. Frozen and thawed, the
broker ends up with every stored event, in order per certification. Stopped,
it loses what it held (the test broker keeps everything in memory); started
again, it receives every event stored after the last batch it acknowledged,
again in order, and the payment consumer records a payment sent to it, all
without anyone restarting the service.
"""

import time
from contextlib import closing
from pathlib import Path
from uuid import UUID

import pytest

from projections.publisher import tracking_name
from projections.tracking import PositionTracker
from service.embedded_broker import TansuBroker
from service.store import view_database
from tests.reliability.agreement import (
    Stored,
    judge,
    topic_disagreements,
    wait_until_caught_up,
)
from tests.reliability.deployment import Deployment
from tests.reliability.load import Load, Tally, Worker
from tests.stream.payment_steps import Billing, payment
from tests.stream.topic import first_copies, read_topic, settled_position, wait_for

pytestmark = pytest.mark.timeout(180)

OUTAGE_SECONDS = 4.0


def published_position(database_url: str, topic: str) -> int:
    """The last store position the stopped broker acknowledged to the
    publisher, once it stops moving (on a busy machine an acknowledgement
    that landed before the stop moves it a while later)."""
    db = view_database(database_url, pool_size=1)
    try:
        return settled_position(PositionTracker(db, tracking_name(topic)), quiet=1.0)
    finally:
        db.close()


def pay_over_kafka(deployment: Deployment, worker: Worker, cid: str) -> None:
    """Send a submission fee on the payments topic and wait until the servers'
    consumer has recorded it. The same payment then goes over HTTP too, an
    idempotent repeat by then, so that the load's answers explain the event."""
    billing = Billing(deployment.stream_settings())
    try:
        billing.send(payment(UUID(cid), f"fee-{cid}"))
    finally:
        billing.close()
    try:
        wait_for(
            lambda: worker.status_of(cid) == "in_review",
            60,
            "the consumer to record a payment sent after the restart",
        )
    finally:
        worker.pay(cid, "submission_fee", f"fee-{cid}")


def check_against_store(database_url: str, tally: Tally) -> dict[int, Stored]:
    """Check the answers and views; return what the store holds."""
    verdict = judge(database_url, tally)
    assert tally.failures == []
    assert set(tally.statuses()) <= {200, 201}, tally.statuses()
    assert verdict.problems == []
    return verdict.stored


def test_a_frozen_broker_costs_no_event_and_no_order(
    broker: TansuBroker, postgres_url: str, tmp_path: Path
) -> None:
    deployment = Deployment(postgres_url, broker.bootstrap, tmp_path)
    with deployment:
        with Load(deployment.targets(), workers=3) as load:
            time.sleep(2)
            broker.pause()
            time.sleep(OUTAGE_SECONDS)
            broker.resume()
            time.sleep(2)
        wait_until_caught_up(deployment.servers[0].base_url)

    stored = check_against_store(postgres_url, load.tally)
    assert topic_disagreements(stored, broker.bootstrap, deployment.topic) == []
    print(f"frozen broker: {len(load.tally.answers)} commands, nothing lost")


def test_a_restarted_broker_receives_everything_stored_after_its_last_ack(
    broker: TansuBroker, postgres_url: str, tmp_path: Path
) -> None:
    deployment = Deployment(postgres_url, broker.bootstrap, tmp_path)
    with deployment:
        deployment.wait_until_consuming()
        with (
            Load(deployment.targets(), workers=3) as load,
            closing(Worker(deployment.targets(), load.tally)) as worker,
        ):
            waiting = worker.submitted_one()
            time.sleep(2)
            broker.stop()
            acknowledged = published_position(postgres_url, deployment.topic)
            time.sleep(OUTAGE_SECONDS)
            restarted = TansuBroker.start(port=broker.port, log_dir=tmp_path)
            broker.process = restarted.process
            deployment.create_topics()
            pay_over_kafka(deployment, worker, waiting)
        wait_until_caught_up(deployment.servers[0].base_url)

    stored = check_against_store(postgres_url, load.tally)
    after = {
        (event.cid, event.version)
        for position, event in stored.items()
        if position > acknowledged
    }
    received = read_topic(broker.bootstrap, deployment.topic, timeout=60)
    on_topic = {message.identity for message in received}
    assert acknowledged > 0
    assert after
    assert sorted(after - on_topic) == []
    assert on_topic <= {(event.cid, event.version) for event in stored.values()}
    for cid, versions in first_copies(received).items():
        assert versions == list(range(versions[0], versions[0] + len(versions))), cid
    print(
        f"restarted broker: {len(load.tally.answers)} commands, "
        f"{len(after)} events stored after the last acknowledgement all arrived"
    )
