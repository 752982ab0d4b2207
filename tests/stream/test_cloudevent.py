"""The envelope's bytes: the data's own types written as the contract says,
read back by ``read_message`` into the same event, and what the package's
own JSON format writes wherever the data needs nothing more."""

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Any

import pytest
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from domain.actor import Actor
from domain.certification import Certification
from domain.forms import ApplicationForm, DecisionForm, PaymentForm, SubmissionForm
from projections.cloudevent import (
    EventFormat,
    event_id,
    outgoing_message,
    read_message,
)
from tests.factories import application_body, submission_body

AT = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC)
APPLICANT = Actor(role="applicant", name="online-form")
BILLING = Actor(role="billing", name="payment-service")
OPERATOR = Actor(role="operator", name="reviewer-desk")


class Colour(Enum):
    RED = "red"


class Size(StrEnum):
    LARGE = "large"


def envelope(**data: Any) -> CloudEvent:
    return CloudEvent(
        {
            "id": "event-1",
            "source": "/certifications",
            "type": "certification.Test",
            "time": AT,
            "datacontenttype": "application/json",
        },
        data,
    )


def written_data(**data: Any) -> Any:
    return json.loads(EventFormat().write(envelope(**data)))["data"]


def certified_history() -> list[Certification.Event]:
    """The events of a certification from its start to its first annual fee."""
    form = ApplicationForm.model_validate(application_body(250_000))
    cert = Certification.start(form, id=uuid.uuid4(), actor=APPLICANT, at=AT)
    submission = SubmissionForm.model_validate(submission_body())
    cert.submit(submission, actor=APPLICANT, at=AT)
    cert.pay(payment("submission_fee", "150", "SUB-1"), actor=BILLING, at=AT)
    decision = DecisionForm(outcome="approved", reason="Meets each rule.")
    cert.decide(decision, actor=OPERATOR, at=AT)
    cert.pay(payment("annual_fee", "1000.00", "ANN-1"), actor=BILLING, at=AT)
    return list(cert.collect_events())


def payment(kind: str, amount: str, reference: str) -> PaymentForm:
    return PaymentForm(kind=kind, amount_usd=Decimal(amount), reference=reference)


def test_money_is_written_as_its_exact_decimal_string() -> None:
    data = written_data(amount_usd=Decimal("1234.50"), tiny=Decimal("0.1"))

    assert data == {"amount_usd": "1234.50", "tiny": "0.1"}


def test_days_and_instants_are_written_in_iso_8601_with_utc_as_z() -> None:
    plus_two = timezone(timedelta(hours=2))

    data = written_data(
        day=date(2027, 4, 1),
        at=AT,
        elsewhere=datetime(2026, 3, 2, 11, 0, tzinfo=plus_two),
    )

    assert data == {
        "day": "2027-04-01",
        "at": "2026-03-02T09:00:00.123456Z",
        "elsewhere": "2026-03-02T11:00:00+02:00",
    }


def test_ids_enums_tuples_and_mappings_are_written_as_json() -> None:
    some_id = uuid.uuid4()

    data = written_data(
        id=some_id,
        colour=Colour.RED,
        size=Size.LARGE,
        pair=(1, "two"),
        nested=MappingProxyType({"amount": Decimal("5")}),
    )

    assert data == {
        "id": str(some_id),
        "colour": "red",
        "size": "large",
        "pair": [1, "two"],
        "nested": {"amount": "5"},
    }


def test_a_value_of_no_json_type_is_refused() -> None:
    with pytest.raises(TypeError) as refused:
        written_data(tags={"a", "b"})

    assert "cannot publish a set" in str(refused.value.__cause__)


def test_data_of_json_types_reads_as_what_the_package_writes() -> None:
    event = envelope(
        reason="Meets each rule.", city="Zürich", cycle=1, paid=True, note=None
    )

    written = EventFormat().write(event)

    assert json.loads(written) == json.loads(JSONFormat().write(event))
    assert "Zürich".encode() in written


def test_binary_data_is_left_to_the_package() -> None:
    event = CloudEvent(
        {"id": "event-2", "source": "/certifications", "type": "certification.Test"},
        b"\x00\x01",
    )

    written = json.loads(EventFormat().write(event))

    assert written["data_base64"] == "AAE="
    assert "data" not in written


def test_each_published_event_reads_back_as_the_same_cloudevent() -> None:
    history = certified_history()

    for position, event in enumerate(history, start=41):
        sent = outgoing_message(event, position)
        read = read_message(sent.value, sent.key)

        subject = str(event.originator_id)
        assert sent.key == subject.encode()
        assert read.get_specversion() == "1.0"
        assert read.get_id() == event_id(subject, event.originator_version)
        assert read.get_source() == "/certifications"
        assert read.get_type() == f"certification.{type(event).__name__}"
        assert read.get_subject() == subject
        assert read.get_time() == event.timestamp
        assert read.get_datacontenttype() == "application/json"
        assert read.get_extension("sequence") == event.originator_version
        assert read.get_extension("position") == position
        assert read.get_data() == expected_data(event)
    fees = {type(event).__name__: event for event in history}
    assert read_data(fees["SubmissionFeePaid"])["amount_usd"] == "150"
    annual = read_data(fees["AnnualFeePaid"])
    assert annual["amount_usd"] == "1000.00"
    assert annual["valid_until"] == date(2027, 3, 2).isoformat()


def read_data(event: Certification.Event) -> Any:
    return read_message(outgoing_message(event, 1).value).get_data()


def expected_data(event: Certification.Event) -> dict[str, Any]:
    """The event's fields and actor, in the JSON types the contract names."""
    bookkeeping = {"originator_id", "originator_version", "timestamp", "actor"}
    fields = {
        name: value
        for name, value in vars(event).items()
        if name not in bookkeeping and name != "originator_topic"
    }
    return as_json({**fields, "actor": event.actor})


def as_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: as_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_json(item) for item in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value
