"""Every stored event reaches the topic once per publish, as the contract's
CloudEvent, keyed and ordered by certification; a re-publish is identical."""

import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from uuid import UUID, uuid5

import pytest

from domain.certification import Certification
from domain.clock import FixedClock
from projections.cloudevent import EVENT_ID_NAMESPACE
from projections.publisher import EventPublisher, PublisherThread
from service.application import CertificationService
from service.composition import Runtime
from tests.projections.steps import Steps, morning_of
from tests.stream.topic import Received, first_copies, publish_all, read_topic

pytestmark = pytest.mark.timeout(60)

EVERY_EVENT_TYPE = {
    "ApplicationStarted",
    "SubmissionReceived",
    "SubmissionFeePaid",
    "InfoRequested",
    "InfoProvided",
    "Approved",
    "Rejected",
    "AnnualFeePaid",
    "ReevaluationDue",
    "ReevaluationSubmitted",
    "CertificationLapsed",
    "Suspended",
    "Reinstated",
    "Revoked",
    "Withdrawn",
}


def every_kind_of_event(steps: Steps, clock: FixedClock) -> list[UUID]:
    """Certifications whose histories, together, hold every event type."""
    service = steps.service
    renewed = steps.in_review("Renewed Ltd")
    steps.request_info(renewed)
    steps.provide_info(renewed)
    steps.approve(renewed)
    steps.pay_due(renewed)
    rejected = steps.in_review("Rejected Ltd")
    steps.reject(rejected)
    withdrawn = steps.start("Withdrawn Ltd")
    steps.withdraw(withdrawn)
    lapsing = steps.certify("Lapsing Ltd")

    valid_until = service.get(renewed).valid_until
    assert valid_until is not None
    clock.set(morning_of(valid_until - timedelta(days=30)))
    service.raise_reevaluation_due(renewed)
    service.raise_reevaluation_due(lapsing)
    steps.submit(renewed)
    steps.approve(renewed)
    steps.pay_due(renewed)
    steps.suspend(renewed)
    steps.reinstate(renewed)
    steps.revoke(renewed)
    renew_by = service.get(lapsing).renew_by
    assert renew_by is not None
    clock.set(morning_of(renew_by + timedelta(days=1)))
    service.lapse(lapsing)
    return [renewed, rejected, withdrawn, lapsing]


def stored_events(
    service: CertificationService,
) -> dict[tuple[str, int], tuple[Certification.Event, int]]:
    """Each stored event, by certification and version, with its position."""
    last = service.recorder.max_notification_id() or 0
    notifications = service.recorder.select_notifications(start=1, limit=last)
    stored = {}
    for notification in notifications:
        event = service.mapper.to_domain_event(notification)
        assert isinstance(event, Certification.Event)
        key = (str(event.originator_id), event.originator_version)
        stored[key] = (event, notification.id)
    return stored


def test_every_stored_event_is_published_once_as_the_contracts_cloudevent(
    runtime: Runtime, steps: Steps, clock: FixedClock, publisher: EventPublisher
) -> None:
    every_kind_of_event(steps, clock)
    stored = stored_events(runtime.service)

    published = publish_all(publisher)

    received = read_topic(publisher.bootstrap, publisher.topic)
    assert published == len(stored)
    assert sorted(message.identity for message in received) == sorted(stored)
    assert {
        message.envelope["type"].removeprefix("certification.") for message in received
    } == EVERY_EVENT_TYPE
    for message in received:
        event, position = stored[message.identity]
        assert_the_contracts_envelope(message, event, position)


def assert_the_contracts_envelope(
    message: Received, event: Certification.Event, position: int
) -> None:
    envelope = message.envelope
    certification_id = str(event.originator_id)
    assert message.key == certification_id.encode()
    assert message.headers["content-type"] == b"application/cloudevents+json"
    assert envelope["specversion"] == "1.0"
    assert envelope["id"] == str(
        uuid5(EVENT_ID_NAMESPACE, f"{certification_id}/{event.originator_version}")
    )
    assert envelope["source"] == "/certifications"
    assert envelope["type"] == f"certification.{type(event).__name__}"
    assert envelope["subject"] == certification_id
    assert envelope["time"] == event.timestamp.isoformat().replace("+00:00", "Z")
    assert envelope["datacontenttype"] == "application/json"
    assert envelope["sequence"] == event.originator_version
    assert envelope["position"] == position
    assert envelope["data"]["actor"] == event.actor
    for name in ("reason", "reference", "request_id", "tier"):
        if hasattr(event, name):
            assert envelope["data"][name] == getattr(event, name)


def test_per_certification_the_topic_holds_the_events_in_version_order(
    runtime: Runtime, steps: Steps, clock: FixedClock, publisher: EventPublisher
) -> None:
    ids = every_kind_of_event(steps, clock)

    publish_all(publisher)

    received = read_topic(publisher.bootstrap, publisher.topic)
    versions = first_copies(received)
    assert versions.keys() == {str(cert_id) for cert_id in ids}
    for cert_id in ids:
        count = runtime.service.get(cert_id).version
        assert versions[str(cert_id)] == list(range(1, count + 1))
    partitions = {message.key: set() for message in received}
    for message in received:
        partitions[message.key].add(message.partition)
    assert all(len(found) == 1 for found in partitions.values())


def test_money_is_a_decimal_string_and_days_are_iso_dates_in_the_data(
    runtime: Runtime, steps: Steps, publisher: EventPublisher
) -> None:
    cert_id = steps.certify("Money Ltd", revenue=250_000)

    publish_all(publisher)

    received = read_topic(publisher.bootstrap, publisher.topic)
    annual = next(
        message.envelope["data"]
        for message in received
        if message.envelope["type"] == "certification.AnnualFeePaid"
    )
    valid_until = runtime.service.get(cert_id).valid_until
    assert valid_until is not None
    assert Decimal(annual["amount_usd"]) == Decimal(1_000)
    assert isinstance(annual["amount_usd"], str)
    assert annual["valid_until"] == valid_until.isoformat()


def test_a_publisher_run_again_publishes_nothing_it_has_published(
    runtime: Runtime, steps: Steps, clock: FixedClock, publisher: EventPublisher
) -> None:
    every_kind_of_event(steps, clock)
    first = publish_all(publisher)
    latecomer = steps.start("Latecomer Ltd")

    second = publish_all(publisher)

    received = read_topic(publisher.bootstrap, publisher.topic)
    identities = [message.identity for message in received]
    assert second == 1
    assert len(identities) == len(set(identities)) == first + 1
    assert (str(latecomer), 1) in identities
    assert publisher.position() == runtime.service.ping_store()
    assert publisher.lag() == 0


def test_a_republished_event_carries_the_same_id_and_envelope(
    steps: Steps, clock: FixedClock, publisher: EventPublisher
) -> None:
    every_kind_of_event(steps, clock)
    first = publish_all(publisher)
    publisher.tracker.rewind(0)

    again = publish_all(publisher)

    received = read_topic(publisher.bootstrap, publisher.topic)
    copies: dict[tuple[str, int], list[dict[str, object]]] = {}
    for message in received:
        copies.setdefault(message.identity, []).append(message.envelope)
    assert again == first
    assert len(copies) == first
    assert all(len(envelopes) == 2 for envelopes in copies.values())
    assert all(one == other for one, other in copies.values())
    ids = [envelopes[0]["id"] for envelopes in copies.values()]
    assert len(set(ids)) == len(ids)


def test_the_publishers_position_is_tracked_in_the_store_under_its_own_name(
    runtime: Runtime, steps: Steps, publisher: EventPublisher
) -> None:
    steps.certify("Tracked Ltd")

    publish_all(publisher)

    tracked = runtime.views.db.query("SELECT name, position FROM view_tracking")
    positions = {row["name"]: int(row["position"]) for row in tracked}
    assert positions[f"publisher:{publisher.topic}"] == runtime.service.ping_store()
    assert "certification_status" in positions


def test_a_running_publisher_rewound_by_an_operator_publishes_again_from_there(
    runtime: Runtime, steps: Steps, publisher: EventPublisher
) -> None:
    steps.certify("Rewound Ltd")
    last = runtime.service.ping_store()
    running = PublisherThread(publisher)
    running.start()
    try:
        wait_until(lambda: publisher.position() == last, "the first publish")
        publisher.tracker.rewind(0)
        wait_until(
            lambda: (
                publisher.position() == last
                and len(read_topic(publisher.bootstrap, publisher.topic)) == 2 * last
            ),
            "the publish after the rewind",
        )
    finally:
        running.stop()

    received = read_topic(publisher.bootstrap, publisher.topic)
    assert sorted(message.envelope["position"] for message in received) == sorted(
        [*range(1, last + 1)] * 2
    )


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.05)
