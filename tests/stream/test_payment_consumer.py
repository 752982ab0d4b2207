"""The payment consumer against a real broker, on SQLite and on PostgreSQL.

Each test has topics and a consumer group of its own. Billing's messages are
sent with kafka-python, as another service would send them; nothing of the
broker or the store is mocked.
"""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql
from structlog.testing import capture_logs

from consumers.payments import (
    PaymentConsumerThread,
    RetryPolicy,
    create_payment_consumer,
)
from domain.certification import Certification, Status
from domain.clock import FixedClock
from service.application import (
    CertificationService,
    RenewalPolicy,
    StoreUnavailableError,
)
from service.settings import Settings
from service.store import persistence_env
from tests.databases import ADMIN_URL
from tests.stream.payment_steps import (
    Billing,
    ConsumeProcess,
    create_topics,
    dead_letters,
    encoded,
    fees_paid,
    payment,
    started_certification,
    status_of,
    stream_settings,
    submitted_certification,
    wait_until,
)

START = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def settings(database_url: str, kafka_bootstrap: str) -> Settings:
    settings = stream_settings(database_url, kafka_bootstrap)
    create_topics(settings)
    return settings


@pytest.fixture
def billing(settings: Settings) -> Iterator[Billing]:
    billing = Billing(settings)
    yield billing
    billing.close()


@contextmanager
def running_consumer(
    settings: Settings,
    service: CertificationService,
    retry: RetryPolicy | None = None,
) -> Iterator[None]:
    thread = PaymentConsumerThread(create_payment_consumer(settings, service, retry))
    thread.start()
    try:
        yield
    finally:
        thread.stop()
        assert not thread.is_alive, "the consumer did not stop"


@pytest.fixture
def consumer(settings: Settings, service: CertificationService) -> Iterator[None]:
    with running_consumer(settings, service):
        yield


@pytest.mark.usefixtures("consumer")
def test_a_payment_from_billing_moves_the_certification_into_review(
    settings: Settings, service: CertificationService, billing: Billing
) -> None:
    certification_id = submitted_certification(service)

    billing.send(payment(certification_id, "pay-1"))

    wait_until(
        lambda: status_of(service, certification_id) is Status.IN_REVIEW,
        "the payment moved the certification into review",
    )
    [fee] = [
        event
        for event in service.history(certification_id)
        if isinstance(event, Certification.SubmissionFeePaid)
    ]
    assert fee.reference == "pay-1"
    assert fee.amount_usd == Decimal("150")
    assert fee.actor == {"role": "billing", "name": "kafka:billing.payments"}
    assert dead_letters(settings, expected=0) == []


@pytest.mark.usefixtures("consumer")
def test_bad_and_refused_payments_go_to_the_dlq_and_the_consumer_carries_on(
    settings: Settings, service: CertificationService, billing: Billing
) -> None:
    payer = submitted_certification(service)
    not_submitted = started_certification(service)
    missing_paid_at = payment(payer, "pay-x")
    del missing_paid_at["paid_at"]
    # Keyed alike, they share a partition: the consumer meets them in this order.
    sent: list[tuple[bytes | dict[str, object], list[str]]] = [
        (b"this is not JSON", ["not a valid payment", "body: is not JSON"]),
        (missing_paid_at, ["not a valid payment", "paid_at: Field required"]),
        (
            payment(payer, "pay-x", amount_usd="lots"),
            ["not a valid payment", "amount_usd"],
        ),
        (
            {**payment(payer, "pay-x"), "paid_at": "2026-03-01T10:15:00"},
            ["not a valid payment", "paid_at", "timezone"],
        ),
        (
            payment(payer, "pay-short", amount_usd="100"),
            ["refused", "amount_usd", "is 150 USD", "100 USD was refused"],
        ),
        (
            payment(not_submitted, "pay-early"),
            ["refused", "cannot pay_submission_fee", "'applied'"],
        ),
        (
            payment(uuid4(), "pay-nobody"),
            ["unknown certification", "no certification has the id"],
        ),
    ]
    for body, _ in sent:
        billing.send(body, key=payer)

    billing.send(payment(payer, "pay-ok"), key=payer)

    wait_until(
        lambda: status_of(service, payer) is Status.IN_REVIEW,
        "the valid payment after the bad ones was applied",
    )
    letters = dead_letters(settings, expected=len(sent))
    assert len(letters) == len(sent), [letter.reason for letter in letters]
    for letter, (body, words) in zip(letters, sent, strict=True):
        for word in words:
            assert word in letter.reason, (word, letter.reason)
        assert letter.value == encoded(body), "the bytes are those billing sent"
        assert letter.headers["x-dlq-source-topic"] == settings.kafka_payments_topic
        assert letter.headers["x-dlq-source-partition"].isdigit()
        assert letter.headers["x-dlq-source-offset"].isdigit()
    offsets = [int(letter.headers["x-dlq-source-offset"]) for letter in letters]
    assert offsets == sorted(set(offsets)), "each bad message is dead-lettered once"
    assert fees_paid(service, payer) == ["pay-ok"]
    assert status_of(service, not_submitted) is Status.APPLIED


@pytest.mark.usefixtures("consumer")
def test_a_payment_delivered_twice_is_recorded_once(
    settings: Settings, service: CertificationService, billing: Billing
) -> None:
    payer = submitted_certification(service)
    marker = submitted_certification(service)

    billing.send(payment(payer, "pay-1"))
    billing.send(payment(payer, "pay-1"))
    billing.send(payment(payer, "pay-1", amount_usd="250"))
    # After them on their partition: once it is applied, they were handled.
    billing.send(payment(marker, "pay-marker"), key=payer)

    wait_until(
        lambda: status_of(service, marker) is Status.IN_REVIEW,
        "the messages before the marker were handled",
    )
    assert fees_paid(service, payer) == ["pay-1"]
    assert service.get(payer).version == 3
    [letter] = dead_letters(settings, expected=1)
    assert "refused: payment reference 'pay-1' was already used" in letter.reason


def test_a_payment_waits_out_an_unreachable_store_and_is_never_dead_lettered(
    settings: Settings, billing: Billing
) -> None:
    service = impatient_service(settings)
    try:
        first = submitted_certification(service)
        second = submitted_certification(service)
        retry = RetryPolicy(attempts=2, first_delay=0.1)
        with running_consumer(settings, service, retry), capture_logs() as logs:
            billing.send(payment(first, "pay-1"))
            wait_until(lambda: in_review(service, first), "the consumer runs")

            with store_unreachable(settings.database_url):
                billing.send(payment(second, "pay-2"))
                wait_until(
                    lambda: any(log["event"] == "payment_deferred" for log in logs),
                    "the consumer gave the payment back, uncommitted",
                    timeout=45,
                )

            wait_until(
                lambda: in_review(service, second),
                "the payment was applied once the store was back",
            )
        handled = [log["event"] for log in logs if log.get("reference") == "pay-2"]
        assert "payment_retry" in handled
        assert "payment_deferred" in handled
        assert handled[-1] == "payment_consumed"
        assert fees_paid(service, second) == ["pay-2"]
        assert dead_letters(settings, expected=0) == []
    finally:
        service.close()


def test_a_restarted_consumer_redoes_no_payment_and_skips_none(
    settings: Settings, service: CertificationService, billing: Billing, tmp_path: Path
) -> None:
    payers = [submitted_certification(service) for _ in range(24)]
    consume = ConsumeProcess(settings, tmp_path)
    consume.start()
    for number, payer in enumerate(payers[:8]):
        billing.send(payment(payer, f"pay-{number}"))
    wait_until(
        lambda: any(in_review(service, payer) for payer in payers),
        "the first payments were applied",
    )

    consume.terminate()  # SIGTERM: it finishes the message in hand and stops
    for number, payer in enumerate(payers[8:], start=8):
        billing.send(payment(payer, f"pay-{number}"))  # while it stops, or after
    assert consume.wait() == 0
    assert consume.events("payment_consumed"), "nothing was handled before the stop"
    consume.start()
    wait_until(
        lambda: all(in_review(service, payer) for payer in payers),
        "every payment was applied after the restart",
    )
    consume.terminate()
    assert consume.wait() == 0

    consumed = consume.events("payment_consumed")  # both runs
    assert sorted(line["reference"] for line in consumed) == sorted(
        f"pay-{number}" for number in range(24)
    ), "a payment handled before the stop was redone, or one was skipped"
    assert {line["outcome"] for line in consumed} == {"recorded"}
    assert len(consume.events("payment_consumer_stopped")) == 2
    assert dead_letters(settings, expected=0) == []


def impatient_service(settings: Settings) -> CertificationService:
    """The service on the test's store, giving up on it after about a second."""
    env = persistence_env(settings.database_url, pool_size=2)
    env |= {"SQLITE_LOCK_TIMEOUT": "1", "POSTGRES_CONNECT_TIMEOUT": "1"}
    return CertificationService(env, FixedClock(START), RenewalPolicy())


def in_review(service: CertificationService, certification_id: UUID) -> bool:
    try:
        return status_of(service, certification_id) is Status.IN_REVIEW
    except StoreUnavailableError:
        return False


@contextmanager
def store_unreachable(database_url: str) -> Iterator[None]:
    """Make the store refuse the service for as long as the block runs.

    SQLite: another connection holds the database's write lock. PostgreSQL:
    the database refuses new connections and its open ones are ended.
    """
    if database_url.startswith("sqlite"):
        lock = sqlite3.connect(
            persistence_env(database_url)["SQLITE_DBNAME"], isolation_level=None
        )
        lock.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            lock.execute("COMMIT")
            lock.close()
        return
    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        database = sql.Identifier(name)
        admin.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(database)
        )
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        try:
            yield
        finally:
            admin.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(database)
            )
