"""Readers of the log (the views, the publisher) decode events in one pass of
orjson, and get the very events the library's own decoding gives."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    StoredEvent,
    UUIDAsHex,
)

from domain.certification import Certification
from domain.clock import FixedClock
from service.application import DateAsISO
from service.composition import Runtime
from service.ledger import SealingMapper, inner_state, is_sealed
from tests.projections.steps import BILLING, OPERATOR, Steps
from tests.projections.test_status_view import drive_every_situation

TOPIC = "domain.certification:Certification."
NOW = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


def library_event(mapper: SealingMapper, stored: StoredEvent) -> Any:
    """The event as the library's own mapper decodes it."""
    state = inner_state(stored.state) if is_sealed(stored.state) else stored.state
    bare = StoredEvent(
        stored.originator_id, stored.originator_version, stored.topic, state
    )
    return Mapper.to_domain_event(mapper, bare)


def decoded_by_library(
    mapper: SealingMapper, monkeypatch: pytest.MonkeyPatch
) -> list[bytes]:
    """Record every state the library's transcoder is asked to decode."""
    states: list[bytes] = []
    decode = mapper.transcoder.decode

    def recording(data: bytes) -> Any:
        states.append(data)
        return decode(data)

    monkeypatch.setattr(mapper.transcoder, "decode", recording)
    return states


def same_event(read: DomainEventProtocol[UUID], expected: Any) -> bool:
    return type(read) is type(expected) and vars(read) == vars(expected)


def test_every_stored_event_reads_as_the_library_decodes_it(
    runtime: Runtime,
    steps: Steps,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drive_every_situation(steps, clock)
    mapper = runtime.service.mapper
    assert isinstance(mapper, SealingMapper)
    notifications = runtime.service.recorder.select_notifications(1, 10_000)
    expected = [library_event(mapper, stored) for stored in notifications]
    by_library = decoded_by_library(mapper, monkeypatch)

    read = [mapper.read_event(stored) for stored in notifications]

    assert all(map(same_event, read, expected))
    kinds = {type(event).__name__ for event in read}
    assert len(kinds) == 15  # every event of the lifecycle
    assert by_library == []  # the service stores nothing the quick read leaves


def test_a_transcoded_value_below_the_top_level_is_read_by_the_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mapper = _mapper()
    fields = {
        "timestamp": NOW,
        "actor": OPERATOR.as_record(),
        "reason": "late",
        "evidence": [{"paid": Decimal("1.50"), "on": NOW.date()}],
    }
    stored = StoredEvent(
        uuid4(), 2, TOPIC + "Withdrawn", mapper.transcoder.encode(fields)
    )
    by_library = decoded_by_library(mapper, monkeypatch)

    read = mapper.read_event(stored)

    assert vars(read)["evidence"] == [{"paid": Decimal("1.50"), "on": NOW.date()}]
    assert by_library == [stored.state]
    assert same_event(read, library_event(mapper, stored))


def test_an_event_of_an_older_version_is_upcast() -> None:
    mapper = _mapper()
    state = mapper.transcoder.encode(
        {
            "timestamp": NOW,
            "actor": BILLING.as_record(),
            "amount_usd": Decimal(150),
            "reference": "OLD-1",
        }
    )
    old = StoredEvent(uuid4(), 3, TOPIC + "SubmissionFeePaid", state)

    read = mapper.read_event(old)

    assert isinstance(read, Certification.SubmissionFeePaid)
    assert read.currency == "USD"
    assert same_event(read, library_event(mapper, old))


@pytest.mark.parametrize(
    "odd_value",
    [2**70, -(2**64), 10**18, float("nan"), {"_type_": "unknown_kind"}],
    ids=["past 64 bits", "below -2**64", "19 digits", "NaN", "marker without data"],
)
def test_state_orjson_would_read_otherwise_is_read_by_the_library(
    odd_value: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    mapper = _mapper()
    fields = {"timestamp": NOW, "actor": OPERATOR.as_record(), "reason": odd_value}
    stored = StoredEvent(
        uuid4(), 2, TOPIC + "Withdrawn", mapper.transcoder.encode(fields)
    )

    by_library = decoded_by_library(mapper, monkeypatch)

    read = mapper.read_event(stored)

    assert by_library == [stored.state]
    expected = library_event(mapper, stored)
    assert type(read) is Certification.Withdrawn
    assert repr(vars(read)) == repr(vars(expected))


def test_a_transcoded_value_of_an_unknown_kind_fails_as_in_the_library() -> None:
    mapper = _mapper()
    state = (
        b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-03-01T09:30:15+00:00"},'
        b'"actor":{"role":"operator","name":"ops"},'
        b'"reason":{"_type_":"no_such_kind","_data_":"x"}}'
    )
    stored = StoredEvent(uuid4(), 2, TOPIC + "Withdrawn", state)

    with pytest.raises(Exception, match="no_such_kind") as raised:
        mapper.read_event(stored)
    with pytest.raises(type(raised.value)):
        library_event(mapper, stored)


def _mapper() -> SealingMapper:
    """The service's mapper: its transcoder knows what the service stores."""
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), DateAsISO()):
        transcoder.register(transcoding)
    return SealingMapper(transcoder=transcoder)
