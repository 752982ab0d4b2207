"""The payment handler on FastStream's in-memory broker: fast, no Kafka.

The store is the real SQLite one, except where a test needs a store that
fails: there a small fake stands in for the service.
"""

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from consumers.payments import (
    PaymentConsumer,
    PaymentDeferredError,
    RecordsPayments,
    RetryPolicy,
    create_payment_consumer,
)
from domain.actor import Actor
from domain.certification import Status
from domain.forms import PaymentForm
from service.application import (
    CertificationService,
    PaymentOutcome,
    StoreUnavailableError,
)
from service.settings import Settings
from tests.stream.payment_steps import payment, submitted_certification

START = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
NO_WAIT = RetryPolicy(attempts=3, first_delay=0.0)

Letter = tuple[bytes, dict[str, Any]]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'certd.sqlite'}")


def deliver(
    settings: Settings,
    service: RecordsPayments,
    *messages: bytes,
    retry: RetryPolicy = NO_WAIT,
) -> list[Letter]:
    """Deliver messages one by one; return what reached the dead-letter topic."""
    consumer = create_payment_consumer(settings, service, retry)
    letters = collect_dead_letters(consumer, settings)

    async def publish_all() -> None:
        async with TestKafkaBroker(consumer.broker) as broker:
            for message in messages:
                await broker.publish(message, settings.kafka_payments_topic)

    asyncio.run(publish_all())
    return letters


def collect_dead_letters(consumer: PaymentConsumer, settings: Settings) -> list[Letter]:
    letters: list[Letter] = []

    @consumer.broker.subscriber(settings.kafka_dlq_topic)
    async def dead_letter(message: KafkaMessage) -> None:
        letters.append((message.body, message.headers))

    return letters


def json_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def test_a_valid_payment_is_recorded_and_a_repeat_changes_nothing(
    settings: Settings, service: CertificationService
) -> None:
    certification_id = submitted_certification(service)
    body = json_bytes(payment(certification_id, "pay-1"))

    letters = deliver(settings, service, body, body)

    assert letters == []
    assert service.get(certification_id).status is Status.IN_REVIEW
    assert service.get(certification_id).version == 3


def test_a_message_that_is_not_a_payment_is_dead_lettered_with_its_source(
    settings: Settings, service: CertificationService
) -> None:
    letters = deliver(settings, service, b'{"kind": "submission_fee"}')

    [(body, headers)] = letters
    assert body == b'{"kind": "submission_fee"}'
    assert headers["x-dlq-reason"].startswith("not a valid payment: ")
    assert "certification_id: Field required" in headers["x-dlq-reason"]
    assert headers["x-dlq-source-topic"] == settings.kafka_payments_topic
    assert headers["x-dlq-source-partition"] == "0"
    assert headers["x-dlq-source-offset"] == "0"


class FlakyStore:
    """Fails with the store unreachable ``failures`` times, then records."""

    def __init__(self, service: CertificationService, failures: int) -> None:
        self.service = service
        self.failures = failures
        self.calls = 0

    def record_payment(
        self, certification_id: UUID, form: PaymentForm, actor: Actor
    ) -> PaymentOutcome:
        self.calls += 1
        if self.calls <= self.failures:
            msg = "the event store is unavailable (OperationalError)"
            raise StoreUnavailableError(msg)
        return self.service.record_payment(certification_id, form, actor)


def test_a_store_that_comes_back_within_the_retries_gets_the_payment(
    settings: Settings, service: CertificationService
) -> None:
    certification_id = submitted_certification(service)
    store = FlakyStore(service, failures=2)

    letters = deliver(settings, store, json_bytes(payment(certification_id, "p-1")))

    assert store.calls == 3
    assert letters == []
    assert service.get(certification_id).status is Status.IN_REVIEW


def test_a_store_that_stays_away_makes_the_handler_raise_not_dead_letter(
    settings: Settings, service: CertificationService
) -> None:
    certification_id = submitted_certification(service)
    store = FlakyStore(service, failures=3)
    body = json_bytes(payment(certification_id, "pay-1"))

    with pytest.raises(PaymentDeferredError, match="not committed"):
        deliver(settings, store, body)

    assert store.calls == 3
    assert service.get(certification_id).status is Status.SUBMITTED
