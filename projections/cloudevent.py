"""The CloudEvent of a stored event, as the event topic carries it.

Structured JSON mode (CloudEvents 1.0): the whole envelope is the message
value, the Kafka ``content-type`` header says ``application/cloudevents+json``
and the key is the certification id. The envelope is built and encoded by the
``cloudevents`` package, through ``EventFormat``, its JSON format writing
with orjson and taught the types of an event's data; this module only
decides what goes in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from hashlib import sha1
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import orjson
from cloudevents.core.base import BaseCloudEvent
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
    return _type_of(type(event))


@cache
def _type_of(kind: type[Certification.Event]) -> str:
    # Made once per event class: it is asked for every event published.
    return TYPE_PREFIX + kind.__name__


def cloud_event(event: Certification.Event, position: int) -> CloudEvent:
    """Wrap a stored event, found at ``position`` in the store, in its envelope.

    ``sequence`` is the certification's version after the event and
    ``position`` the event's place in the store; both are JSON integers. The
    data is the event's own fields as they are (money a ``Decimal``, days a
    ``date``): ``EventFormat`` writes them.
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
    data = event_data(event)
    data["actor"] = event.actor
    return CloudEvent(attributes, data)


def json_value(value: Any) -> Any:
    """Return the JSON value of what ``EventFormat`` cannot write itself:
    money as a decimal string (exact, as in every HTTP answer), and any other
    mapping as an object."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    msg = f"cannot publish a {type(value).__name__} in an event's data"
    raise TypeError(msg)


class EventFormat(JSONFormat):
    """The package's JSON format, writing an event's data as it stands, with
    orjson.

    ``JSONFormat.write`` makes a new encoder of the standard library for
    every event and knows no type but JSON's and ``datetime``: the data had
    to be copied into JSON types first, and encoding took a third of the
    time it takes to publish an event. This format writes the envelope and
    its data in one pass of orjson, several times faster: days and instants
    in ISO 8601 (UTC as ``Z``, as the package writes ``time``), ids as
    strings, enums as their values, money and other mappings through
    ``json_value``. The JSON is compact UTF-8, without escapes for non-ASCII
    text; reading is the package's own. Data that is not a JSON object
    (bytes, text, another content type) is written by the package.

    Raises ``TypeError`` (orjson's ``JSONEncodeError``) on a value of no JSON
    type, and on an integer beyond 64 bits.
    """

    def write(self, event: BaseCloudEvent) -> bytes:
        data = event.get_data()
        content_type = event.get_datacontenttype() or self.DEFAULT_CONTENT_TYPE
        if not isinstance(data, dict) or not self.JSON_CONTENT_TYPE_PATTERN.match(
            content_type
        ):
            return super().write(event)
        envelope = dict(event.get_attributes())
        envelope["data"] = data
        return orjson.dumps(envelope, default=json_value, option=orjson.OPT_UTC_Z)


_FORMAT = EventFormat()


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


def _subject(event: Any) -> str | None:
    subject = event.get_subject()
    return None if subject is None else str(subject)
