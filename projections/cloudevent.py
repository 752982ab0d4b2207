"""The CloudEvent of a stored event, as the event topic carries it.

Structured JSON mode (CloudEvents 1.0): the whole envelope is the message
value, the Kafka ``content-type`` header says ``application/cloudevents+json``
and the key is the certification id. The envelope is built and encoded by the
``cloudevents`` package; this module only decides what goes in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from hashlib import sha1
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from cloudevents.core.bindings import kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from domain.certification import Certification
from service.application import event_data

SOURCE = "/certifications"
TYPE_PREFIX = "certification."
CONTENT_TYPE = JSONFormat.CONTENT_TYPE  # application/cloudevents+json
DATA_CONTENT_TYPE = "application/json"
# Event ids live in a namespace of their own (see ``event_id``).
EVENT_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:certd:certification-event")

_FORMAT = JSONFormat()
_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes


def event_id(certification_id: UUID | str, version: int) -> str:
    """Return the id of the certification's event at ``version``.

    The store keys an event by its certification and version and never
    stores a second one there, so an id made from the two is the event's own:
    the same on every publish, and no other event's. It is the name-based
    UUID (version 5) of ``"<certification id>/<version>"`` in
    ``EVENT_ID_NAMESPACE``, computed here without ``uuid5``'s checks: it runs
    for every event published.
    """
    name = f"{certification_id}/{version}".encode()
    digest = bytearray(sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    hexa = digest[:16].hex()
    return f"{hexa[:8]}-{hexa[8:12]}-{hexa[12:16]}-{hexa[16:20]}-{hexa[20:]}"


def event_type(event: Certification.Event) -> str:
    return TYPE_PREFIX + type(event).__name__


def cloud_event(event: Certification.Event, position: int) -> CloudEvent:
    """Wrap a stored event, found at ``position`` in the store, in its envelope.

    ``sequence`` is the certification's version after the event and
    ``position`` the event's place in the store; both are JSON integers.
    """
    subject = str(event.originator_id)
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id(subject, event.originator_version),
        "source": SOURCE,
        "type": event_type(event),
        "subject": subject,
        "time": event.timestamp,
        "datacontenttype": DATA_CONTENT_TYPE,
        "sequence": event.originator_version,
        "position": position,
    }
    data = json_safe({**event_data(event), "actor": event.actor})
    return CloudEvent(attributes, data)


@dataclass(frozen=True)
class OutgoingMessage:
    """One Kafka message of the event topic, ready to send."""

    key: bytes
    value: bytes
    position: int


def outgoing_message(event: Certification.Event, position: int) -> OutgoingMessage:
    message = kafka.to_structured(
        cloud_event(event, position), _FORMAT, key_mapper=_subject
    )
    key = message.key.encode() if isinstance(message.key, str) else message.key
    if key is None:
        msg = "a certification event has a subject, so its message has a key"
        raise ValueError(msg)
    return OutgoingMessage(key, message.value, position)


def read_message(
    value: bytes, key: bytes | None = None, headers: Mapping[str, bytes] | None = None
) -> CloudEvent:
    """Parse a message of the event topic back into its CloudEvent."""
    message = kafka.KafkaMessage(headers=dict(headers or {}), key=key, value=value)
    event = kafka.from_structured(message, _FORMAT, CloudEvent)
    if not isinstance(event, CloudEvent):
        msg = f"not a CloudEvents 1.0 event: {type(event).__name__}"
        raise TypeError(msg)
    return event


def json_safe(value: Any) -> Any:
    """Return ``value`` with only JSON types: money as a decimal string
    (exact, as in every HTTP answer), days and instants in ISO 8601."""
    kind = type(value)
    if kind in _JSON_SCALARS:
        return value
    if kind is dict:
        return {str(key): json_safe(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [json_safe(item) for item in value]
    if isinstance(value, Enum):
        return json_safe(value.value)
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return json_safe(dict(value))
    msg = f"cannot publish a {type(value).__name__} in an event's data"
    raise TypeError(msg)


# The types most values have, tested first by identity: publishing is hot.
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _subject(event: Any) -> str | None:
    subject = event.get_subject()
    return None if subject is None else str(subject)
