"""Steps of the payment consumer tests: billing's side of the topic, and waiting.

Everything talks to the real broker with kafka-python, as another service
would; the dead-letter topic is read with its partitions assigned directly
(no consumer group), so reading it costs no group join.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from domain.actor import Actor
from domain.certification import Status
from domain.forms import ApplicationForm, SubmissionForm
from service.application import CertificationService
from service.settings import Settings
from tests.factories import application_body, submission_body

APPLICANT = Actor(role="applicant", name="applicant-0001")
SUBMISSION_FEE = "150"  # the fee of application_body()'s revenue tier


def stream_settings(database_url: str, bootstrap: str) -> Settings:
    """Settings with topics and a consumer group no other test uses."""
    suffix = uuid4().hex[:10]
    return Settings(
        database_url=database_url,
        kafka_bootstrap=bootstrap,
        kafka_topic=f"certification.events.{suffix}",
        kafka_payments_topic=f"billing.payments.{suffix}",
        kafka_dlq_topic=f"billing.payments.dlq.{suffix}",
        kafka_consumer_group=f"certd-payments-{suffix}",
    )


def create_topics(settings: Settings, payment_partitions: int = 3) -> None:
    """Create the payments topic (a few partitions) and its dead-letter topic."""
    assert settings.kafka_bootstrap
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(settings.kafka_payments_topic, payment_partitions, 1),
                NewTopic(settings.kafka_dlq_topic, 1, 1),
            ]
        )
    finally:
        admin.close()


def started_certification(service: CertificationService) -> UUID:
    """A certification applied for, with no submission yet."""
    outcome = service.start_application(
        ApplicationForm.model_validate(application_body()), APPLICANT
    )
    return outcome.certification.id


def submitted_certification(service: CertificationService) -> UUID:
    """A certification waiting for its submission fee of 150 USD."""
    certification_id = started_certification(service)
    service.submit(
        certification_id, SubmissionForm.model_validate(submission_body()), APPLICANT
    )
    return certification_id


def payment(
    certification_id: UUID,
    reference: str,
    amount_usd: str = SUBMISSION_FEE,
    kind: str = "submission_fee",
) -> dict[str, Any]:
    return {
        "certification_id": str(certification_id),
        "kind": kind,
        "amount_usd": amount_usd,
        "reference": reference,
        "paid_at": "2026-03-01T10:15:00+00:00",
    }


class Billing:
    """Billing's producer: sends payments to the payments topic."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.kafka_payments_topic
        self.producer = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            acks="all",
            enable_idempotence=False,
        )

    def send(self, body: dict[str, Any] | bytes, key: UUID | None = None) -> int:
        """Send one message keyed by its certification, wait for the broker, and
        return the message's offset."""
        value = encoded(body)
        if key is None and isinstance(body, dict):
            key = UUID(body["certification_id"])
        sent = self.producer.send(
            self.topic, value, key=str(key).encode() if key else None
        ).get(timeout=10)
        offset: int = sent.offset
        return offset

    def close(self) -> None:
        self.producer.close(timeout=5)


def encoded(body: dict[str, Any] | bytes) -> bytes:
    """The bytes billing sends: JSON for a payment, bytes as they are."""
    return body if isinstance(body, bytes) else json.dumps(body).encode()


@dataclass(frozen=True)
class DeadLetter:
    value: bytes
    headers: dict[str, str]

    @property
    def reason(self) -> str:
        return self.headers["x-dlq-reason"]


def dead_letters(
    settings: Settings, expected: int, timeout: float = 20.0, settle: float = 1.0
) -> list[DeadLetter]:
    """Read the dead-letter topic from the start: wait for ``expected`` messages,
    then ``settle`` seconds more, so a message too many is seen too."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    try:
        partitions = [
            TopicPartition(settings.kafka_dlq_topic, number)
            for number in sorted(
                consumer.partitions_for_topic(settings.kafka_dlq_topic) or {0}
            )
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        found: list[DeadLetter] = []
        deadline = time.monotonic() + timeout
        settled_at: float | None = None
        while time.monotonic() < (settled_at or deadline):
            for records in consumer.poll(timeout_ms=200).values():
                found.extend(
                    DeadLetter(
                        record.value,
                        {key: value.decode() for key, value in record.headers},
                    )
                    for record in records
                )
            if settled_at is None and len(found) >= expected:
                settled_at = time.monotonic() + settle
        return found
    finally:
        consumer.close()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            msg = f"not within {timeout:.0f} s: {what}"
            raise AssertionError(msg)
        time.sleep(0.1)


def status_of(service: CertificationService, certification_id: UUID) -> Status:
    return service.get(certification_id).status


def fees_paid(service: CertificationService, certification_id: UUID) -> list[str]:
    """The references of the fee events in a certification's history."""
    return [
        event.reference
        for event in service.history(certification_id)
        if type(event).__name__ in {"SubmissionFeePaid", "AnnualFeePaid"}
    ]


CERTD = Path(sys.executable).with_name("certd")


class ConsumeProcess:
    """``certd consume`` as a subprocess, logging JSON lines to a file."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        self.log_path = workdir / "consume.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until it has joined its group and been assigned."""
        starts = len(self.events("payment_consumer_started"))
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("CERTD_")
        }
        settings = self.settings
        env |= {
            "CERTD_DATABASE_URL": settings.database_url,
            "CERTD_KAFKA_BOOTSTRAP": str(settings.kafka_bootstrap),
            "CERTD_KAFKA_PAYMENTS_TOPIC": settings.kafka_payments_topic,
            "CERTD_KAFKA_DLQ_TOPIC": settings.kafka_dlq_topic,
            "CERTD_KAFKA_CONSUMER_GROUP": settings.kafka_consumer_group,
            "CERTD_LOG_FORMAT": "json",
        }
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(CERTD), "consume"],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(
            lambda: len(self.events("payment_consumer_started")) > starts,
            "certd consume joined its group",
            timeout=40,
        )

    def terminate(self) -> None:
        """Send SIGTERM, as a deployment stops it; do not wait."""
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for it to exit (kill it after ``timeout``); return its exit code."""
        process = self._process
        assert process is not None
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return process.returncode

    def log(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def events(self, name: str) -> list[dict[str, Any]]:
        """The JSON lines of the log whose event is ``name``."""
        lines = (line for line in self.log().splitlines() if line.startswith("{"))
        return [entry for entry in map(json.loads, lines) if entry.get("event") == name]
