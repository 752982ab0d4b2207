"""Tamper evidence: every stored event is sealed in a hash chain.

A sealed event's stored bytes are a fixed-width JSON envelope around the
bytes the transcoder made::

    {"h":"<64 hex>","p":"<64 hex>","e":<the event's own state>}

``p`` is the ``h`` of the certification's previous event (64 zeros for its
first) and ``h`` is SHA-256 over ``p``, the certification id, the version,
the topic and the event's own bytes (see :func:`event_hash`). So each event
vouches for its content, its place in its certification's sequence and,
through ``p``, for every event of the certification before it.

The envelope has a fixed width before ``"e"``, so a verifier slices the
hashes and the event's bytes out of the stored bytes without parsing JSON.
This module is pure: the offline check of an export uses it with no
settings and no store.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any, cast
from uuid import UUID

import orjson
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    AggregateRecorder,
    EventStore,
    JSONTranscoder,
    Mapper,
    Notification,
    Recording,
    StoredEvent,
    Transcoding,
    find_id_convertor,
)
from eventsourcing.utils import resolve_topic

HASH_HEX = 64
ZERO_HASH = b"0" * HASH_HEX
_H_START = len(b'{"h":"')
_P_START = _H_START + HASH_HEX + len(b'","p":"')
EVENT_START = _P_START + HASH_HEX + len(b'","e":')
# An event class, its class version and the converter of its originator ids.
_EventClass = tuple[type, int, Callable[[Any], Any]]
# Every ASCII digit as "9" and every other byte as a space: a run of 19
# nines in a state so translated is a number too long for orjson to read
# exactly (or digits in a string, which the library then reads instead).
_DIGITS = bytes(
    b"9"[0] if b"0"[0] <= byte <= b"9"[0] else b" "[0] for byte in range(256)
)
_LONG_NUMBER = b"9" * 19
# How the library's JSON transcoder marks a value one of its transcodings wrote.
_TRANSCODED_MARK = b'"_type_":'


def envelope(h: bytes, p: bytes, state: bytes) -> bytes:
    """Return the stored bytes of a sealed event."""
    return b'{"h":"' + h + b'","p":"' + p + b'","e":' + state + b"}"


def is_sealed(stored: bytes) -> bool:
    """Whether stored bytes are an envelope rather than a bare (older) state."""
    return (
        stored[:_H_START] == b'{"h":"'
        and stored[_H_START + HASH_HEX : _P_START] == b'","p":"'
        and stored[_P_START + HASH_HEX : EVENT_START] == b'","e":'
        and stored[-1:] == b"}"
    )


def stated_hash(stored: bytes) -> bytes:
    """The ``h`` a sealed event states (64 hex digits, ASCII)."""
    return stored[_H_START : _H_START + HASH_HEX]


def stated_previous(stored: bytes) -> bytes:
    """The ``p`` a sealed event states: the hash of the event before it."""
    return stored[_P_START : _P_START + HASH_HEX]


def inner_state(stored: bytes) -> bytes:
    """The event's own bytes inside an envelope."""
    return stored[EVENT_START:-1]


TOPIC_FRAMES: dict[str, bytes] = {}


def topic_frame(topic: str) -> bytes:
    """The topic as hashed: its UTF-8 length in two bytes, then its bytes.

    The length keeps the topic and the state that follows apart, so no
    other split of the same bytes gives the same hash.
    """
    frame = TOPIC_FRAMES.get(topic)
    if frame is None:
        encoded = topic.encode()
        frame = len(encoded).to_bytes(2, "big") + encoded
        TOPIC_FRAMES[topic] = frame
    return frame


def event_hash(
    previous: bytes, originator_id: UUID, version: int, topic: str, state: bytes
) -> bytes:
    """Return ``h``: SHA-256 (hex, ASCII) of p ‖ id ‖ version ‖ topic ‖ state.

    ``previous`` is 64 hex digits, the id its 16 bytes, the version 8 bytes
    big-endian; every part has a fixed width or a length, so the input
    cannot be read two ways.
    """
    digest = hashlib.sha256(
        previous
        + originator_id.bytes
        + version.to_bytes(8, "big")
        + topic_frame(topic)
        + state
    )
    return digest.hexdigest().encode("ascii")


def seal(stored: StoredEvent, previous: bytes) -> StoredEvent:
    """Return the stored event wrapped in its envelope, chained to ``previous``."""
    originator_id = stored.originator_id
    if not isinstance(originator_id, UUID):
        msg = f"certification ids are UUIDs, got {originator_id!r}"
        raise TypeError(msg)
    h = event_hash(
        previous, originator_id, stored.originator_version, stored.topic, stored.state
    )
    return StoredEvent(
        originator_id=originator_id,
        originator_version=stored.originator_version,
        topic=stored.topic,
        state=envelope(h, previous, stored.state),
    )


class SealingMapper(Mapper[UUID]):
    """Reads sealed and older, bare events alike; remembers the latest hashes.

    ``to_stored_event`` still gives the bare event: sealing needs the hash of
    the previous event, which :class:`SealingEventStore` supplies. Reading an
    event remembers its hash, so the command that loaded a certification can
    chain its new event to the last one without another query.
    """

    HEADS_KEPT = 10_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._heads: dict[UUID, tuple[int, bytes]] = {}
        self._heads_lock = threading.Lock()
        transcoder = self.transcoder
        self._transcodings: dict[str, Transcoding] = (
            transcoder.names if isinstance(transcoder, JSONTranscoder) else {}
        )
        self._event_classes: dict[tuple[str, type], _EventClass | None] = {}

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        state = stored_event.state
        originator_id = stored_event.originator_id
        if is_sealed(state) and isinstance(originator_id, UUID):
            self._remember(originator_id, stored_event.originator_version, state)
        return self.read_event(stored_event)

    def read_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        """Decode a stored event, sealed or bare, for a reader of the log.

        For readers that never write events (the views, the publisher): the
        hash is not remembered, since the hashes kept are the ones commands
        chain to and a long read of the log would only push theirs out. The
        event is the one ``to_domain_event`` gives, decoded by ``_quick_read``
        where it can, and by the library otherwise.
        """
        state = stored_event.state
        if is_sealed(state):
            state = inner_state(state)
        quick = self._quick_read(stored_event, state)
        if quick is not None:
            return quick
        bare = StoredEvent(
            originator_id=stored_event.originator_id,
            originator_version=stored_event.originator_version,
            topic=stored_event.topic,
            state=state,
        )
        return super().to_domain_event(bare)

    def _quick_read(
        self, stored: StoredEvent, state: bytes
    ) -> DomainEventProtocol[UUID] | None:
        """Decode an event's ``state`` in one pass of orjson, or return None
        when only the library's own decoding gives the right event.

        The library's decoder calls a Python hook for every JSON object, to
        find the values its transcodings wrote (``{"_type_": …, "_data_":
        …}``); in events with a long submission that is most of the time it
        takes to read one. Here orjson parses the whole state and only the
        top-level fields are looked at, each transcoded one decoded by the
        library's own transcoding of that name. None when any transcoded
        value is nested deeper (the count of markers in the bytes says so),
        when the event must be upcast from an older class version, when the
        state is not JSON that orjson reads exactly as the library would
        (NaN, or a number of 19 digits or more, which may be past orjson's 64
        bits), or when the mapper ciphers or compresses.
        """
        kind = self._event_class(stored)
        if kind is None:
            return None
        cls, class_version, convert_id = kind
        if _LONG_NUMBER in state.translate(_DIGITS):
            return None  # orjson reads an integer past 64 bits as a float
        try:
            fields = orjson.loads(state)
        except orjson.JSONDecodeError:
            return None
        if type(fields) is not dict or fields.pop("class_version", 1) != class_version:
            return None
        names = self._transcodings
        nested = state.count(_TRANSCODED_MARK)
        for name, value in fields.items():
            if type(value) is dict and len(value) == 2 and "_type_" in value:
                transcoding = names.get(value["_type_"])
                if transcoding is None or "_data_" not in value:
                    return None
                fields[name] = transcoding.decode(value["_data_"])
                nested -= 1
        if nested:
            return None
        fields["originator_id"] = convert_id(stored.originator_id)
        fields["originator_version"] = stored.originator_version
        event: Any = object.__new__(cls)
        object.__setattr__(event, "__dict__", fields)
        return cast("DomainEventProtocol[UUID]", event)

    def _event_class(self, stored: StoredEvent) -> _EventClass | None:
        """The class of a stored event, its class version and how its
        originator id is converted; None where the quick read cannot serve."""
        key = (stored.topic, type(stored.originator_id))
        kind = self._event_classes.get(key)
        if kind is None and key not in self._event_classes:
            if self.cipher or self.compressor or not self._transcodings:
                return None
            cls = resolve_topic(stored.topic)
            convert_id = find_id_convertor(cls, cast("Hashable", key[1]))
            kind = (cls, getattr(cls, "class_version", 1), convert_id)
            self._event_classes[key] = kind
        return kind

    def known_hash(self, originator_id: UUID, version: int) -> bytes | None:
        """The hash of that event, if this process read it lately."""
        head = self._heads.get(originator_id)
        if head is None or head[0] != version:
            return None
        return head[1]

    def _remember(self, originator_id: UUID, version: int, state: bytes) -> None:
        # Only hashes read from the store are kept: a hash computed for an
        # event whose insert then failed must never chain a later one.
        with self._heads_lock:
            self._heads.pop(originator_id, None)
            self._heads[originator_id] = (version, stated_hash(state))
            if len(self._heads) > self.HEADS_KEPT:
                del self._heads[next(iter(self._heads))]


class SealingEventStore(EventStore[UUID]):
    """Seals each event with the hash of its certification's previous event.

    The previous hash comes from the events stored in the same call, else
    from the events the certification was loaded from (the mapper remembers
    them), else from one query of the store.
    """

    mapper: SealingMapper

    def __init__(self, mapper: SealingMapper, recorder: AggregateRecorder) -> None:
        super().__init__(mapper, recorder)

    def put(
        self, domain_events: Sequence[DomainEventProtocol[UUID]], **kwargs: Any
    ) -> list[Recording[UUID]]:
        stored_events = self._sealed(domain_events)
        notification_ids = self.recorder.insert_events(stored_events, **kwargs)
        if not notification_ids:
            return []
        return [
            Recording(
                domain_event,
                Notification(
                    originator_id=stored.originator_id,
                    originator_version=stored.originator_version,
                    topic=stored.topic,
                    state=stored.state,
                    id=notification_id,
                ),
            )
            for domain_event, stored, notification_id in zip(
                domain_events, stored_events, notification_ids, strict=True
            )
        ]

    def _sealed(
        self, domain_events: Sequence[DomainEventProtocol[UUID]]
    ) -> list[StoredEvent]:
        sealed: list[StoredEvent] = []
        heads: dict[UUID, tuple[int, bytes]] = {}
        for domain_event in domain_events:
            bare = self.mapper.to_stored_event(domain_event)
            originator_id = domain_event.originator_id
            version = bare.originator_version
            head = heads.get(originator_id)
            previous = (
                head[1]
                if head is not None and head[0] == version - 1
                else self._previous_hash(originator_id, version)
            )
            stored = seal(bare, previous)
            heads[originator_id] = (version, stated_hash(stored.state))
            sealed.append(stored)
        return sealed

    def _previous_hash(self, originator_id: UUID, version: int) -> bytes:
        """The hash to chain to; zeros after nothing or after an older, bare event."""
        if version <= 1:
            return ZERO_HASH
        known = self.mapper.known_hash(originator_id, version - 1)
        if known is not None:
            return known
        stored = self.recorder.select_events(
            originator_id, gt=version - 2, lte=version - 1
        )
        if not stored or not is_sealed(stored[0].state):
            return ZERO_HASH
        return stated_hash(stored[0].state)


def event_reader(
    mapper: Mapper[UUID],
) -> Callable[[StoredEvent], DomainEventProtocol[UUID]]:
    """How a reader that never writes events should decode them with
    ``mapper``: without remembering hashes where the mapper keeps them."""
    if isinstance(mapper, SealingMapper):
        return mapper.read_event
    return mapper.to_domain_event
