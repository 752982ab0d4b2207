"""Two ``certd serve`` share ``billing.payments`` in one consumer group, while
each payment arrives twice from billing on Kafka and once more over HTTP at
the same moment: every fee is recorded exactly once, nothing is dead-lettered,
and the views and the topic agree with the store."""

from collections import Counter
from pathlib import Path
from uuid import UUID

import pytest

from tests.reliability.agreement import (
    judge,
    topic_disagreements,
    wait_until_caught_up,
)
from tests.reliability.deployment import Deployment
from tests.reliability.load import Tally, Worker
from tests.stream.payment_steps import Billing, dead_letters, payment
from tests.stream.topic import wait_for

pytestmark = pytest.mark.timeout(150)

CERTIFICATIONS = 20
KAFKA_COPIES = 2


def test_each_payment_from_kafka_and_http_at_once_is_recorded_once(
    postgres_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    deployment = Deployment(postgres_url, kafka_bootstrap, tmp_path, count=2)
    settings = deployment.stream_settings()
    with deployment:
        deployment.wait_until_consuming()
        worker = Worker(deployment.targets(), Tally())
        billing = Billing(settings)
        try:
            ids = [worker.submitted_one() for _ in range(CERTIFICATIONS)]
            for cid in ids:
                reference = f"fee-{cid}"
                for _ in range(KAFKA_COPIES):
                    billing.send(payment(UUID(cid), reference))
                worker.pay(cid, "submission_fee", reference)
            wait_for(
                lambda: consumed(deployment) >= KAFKA_COPIES * CERTIFICATIONS,
                60,
                "both consumers to handle every message",
            )
        finally:
            billing.close()
            worker.close()
        for server in deployment.servers:
            wait_until_caught_up(server.base_url)

    verdict = judge(postgres_url, worker.tally)
    fees = Counter(
        event.cid
        for event in verdict.stored.values()
        if event.type == "SubmissionFeePaid"
    )
    payments = [answer for answer in worker.tally.answers if answer.command == "pay"]
    assert verdict.problems == []
    assert fees == Counter(dict.fromkeys(ids, 1))
    assert {answer.status for answer in payments} == {200}
    assert consumed(deployment) == KAFKA_COPIES * CERTIFICATIONS
    assert all(deployment.events(s, "payment_consumed") for s in deployment.servers)
    assert dead_letters(settings, expected=0) == []
    assert topic_disagreements(verdict.stored, kafka_bootstrap, deployment.topic) == []
    assert deployment.errors_logged() == []


def consumed(deployment: Deployment) -> int:
    """How many payment messages the servers have handled between them."""
    return sum(
        len(deployment.events(server, "payment_consumed"))
        for server in deployment.servers
    )
