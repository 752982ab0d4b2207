"""Fuzzed messages on the payments topic, against the real broker.

Hypothesis makes messages that are no payment at all (any bytes, any JSON)
and payments spoilt in one way each (a field missing, one more, a wrong type,
a wrong amount, an unknown certification, a time without a zone). Whatever
comes, the consumer carries on, dead-letters each bad message exactly once,
stores nothing for it, and applies the valid payment sent after them.
"""

import json
import random
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID

import aiokafka.client
import aiokafka.consumer.fetcher
import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from consumers.payments import PaymentConsumerThread, create_payment_consumer
from domain.certification import Status
from service.application import CertificationService
from service.settings import Settings
from tests.stream.payment_steps import (
    SUBMISSION_FEE,
    Billing,
    create_topics,
    dead_letters,
    fees_paid,
    payment,
    status_of,
    stream_settings,
    submitted_certification,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)

EXAMPLES = 6
BAD_MESSAGES_EACH = 25
FIELDS = ("certification_id", "kind", "amount_usd", "reference", "paid_at")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
wrong_amounts = st.decimals(
    min_value=-(10**6), max_value=10**6, places=2, allow_nan=False
).filter(lambda amount: amount != Decimal(SUBMISSION_FEE))


@st.composite
def spoilt_payment(draw: st.DrawFn, payer: UUID) -> dict[str, Any]:
    """A payment for ``payer`` with exactly one thing wrong."""
    body = payment(payer, draw(st.text(min_size=1, max_size=30)))
    how = draw(st.sampled_from(["drop", "extra", "retype", "amount", "who", "naive"]))
    if how == "drop":
        del body[draw(st.sampled_from(FIELDS))]
    elif how == "extra":
        body[draw(st.text(min_size=1).filter(lambda k: k not in FIELDS))] = draw(
            json_values
        )
    elif how == "retype":
        field = draw(st.sampled_from(FIELDS))
        # Not a number or a string: those may still read as an amount or a time.
        body[field] = draw(json_values.filter(lambda v: isinstance(v, list | dict)))
    elif how == "amount":
        body["amount_usd"] = str(draw(wrong_amounts))
    elif how == "who":
        body["certification_id"] = str(draw(st.uuids()))
    else:
        body["paid_at"] = "2026-03-01T10:15:00"
    return body


def bad_messages(payer: UUID) -> st.SearchStrategy[bytes]:
    not_json = st.binary(max_size=200).filter(lambda raw: not _is_json(raw))
    any_json = json_values.map(lambda value: json.dumps(value).encode())
    spoilt = spoilt_payment(payer).map(lambda body: json.dumps(body).encode())
    return st.one_of(not_json, any_json, spoilt, spoilt)


def _is_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


@pytest.fixture
def settings(sqlite_url: str, kafka_bootstrap: str) -> Settings:
    settings = stream_settings(sqlite_url, kafka_bootstrap)
    # One partition: the valid payment is read after every bad one.
    create_topics(settings, payment_partitions=1)
    return settings


@pytest.fixture
def consumer(
    settings: Settings, service: CertificationService, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PaymentConsumerThread]:
    # The consumer's thread fetches while Hypothesis draws the next example,
    # and aiokafka shuffles partitions and picks nodes with the global random,
    # which Hypothesis watches during a draw: give aiokafka a random of its own.
    for module in (aiokafka.client, aiokafka.consumer.fetcher):
        monkeypatch.setattr(module, "random", random.Random(0))
    thread = PaymentConsumerThread(create_payment_consumer(settings, service))
    thread.start()
    yield thread
    thread.stop()
    assert not thread.is_alive, "the consumer did not stop"


@pytest.fixture
def billing(settings: Settings) -> Iterator[Billing]:
    billing = Billing(settings)
    yield billing
    billing.close()


class Sent:
    """The offsets of every bad message sent so far, across examples."""

    def __init__(self) -> None:
        self.bad_offsets: list[int] = []


@pytest.fixture
def sent() -> Sent:
    return Sent()


@hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_bad_message_stops_the_consumer_or_escapes_the_dlq(
    data: st.DataObject,
    settings: Settings,
    service: CertificationService,
    consumer: PaymentConsumerThread,
    billing: Billing,
    sent: Sent,
) -> None:
    payer = submitted_certification(service)
    messages = data.draw(
        st.lists(
            bad_messages(payer), min_size=BAD_MESSAGES_EACH, max_size=BAD_MESSAGES_EACH
        )
    )

    sent.bad_offsets += [billing.send(message, key=payer) for message in messages]
    billing.send(payment(payer, "the-valid-one"))

    wait_until(
        lambda: status_of(service, payer) is Status.IN_REVIEW,
        "the valid payment after the bad ones was applied",
    )
    assert consumer.is_alive
    assert fees_paid(service, payer) == ["the-valid-one"]
    letters = dead_letters(settings, expected=len(sent.bad_offsets), settle=0.5)
    lettered = Counter(int(letter.headers["x-dlq-source-offset"]) for letter in letters)
    assert lettered == Counter(sent.bad_offsets), "each bad message, exactly once"
    by_offset = {
        int(letter.headers["x-dlq-source-offset"]): letter for letter in letters
    }
    for offset, message in zip(
        sent.bad_offsets[-len(messages) :], messages, strict=True
    ):
        assert by_offset[offset].value == message
        assert by_offset[offset].reason
