"""``certd tail``: print the event topic as it goes, one readable line an event.

For subscribers and staff at a terminal. It joins no consumer group: it reads
every partition directly, from the start or from now, and commits nothing, so
running it changes nothing for anyone else.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from projections.cloudevent import TYPE_PREFIX, read_message

SUMMARY_WIDTH = 100
BOOTSTRAP_TIMEOUT_MS = 10_000
VALUE_WIDTH = 40


class TailError(RuntimeError):
    pass


@dataclass(frozen=True)
class TailOptions:
    from_beginning: bool = False
    event_type: str | None = None
    max_events: int | None = None
    idle_timeout: float | None = None

    @property
    def wanted_type(self) -> str | None:
        """The full CloudEvent type asked for; ``Approved`` means
        ``certification.Approved``."""
        if self.event_type is None or self.event_type.startswith(TYPE_PREFIX):
            return self.event_type
        return TYPE_PREFIX + self.event_type


def tail(bootstrap: str, topic: str, options: TailOptions, out: TextIO) -> int:
    """Print the topic's events until ``max_events`` were printed or nothing
    came for ``idle_timeout`` seconds (without them, until interrupted);
    return how many were printed."""
    began_ms = time.time() * 1000
    timeout_ms = (
        float("inf") if options.idle_timeout is None else options.idle_timeout * 1000
    )
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="certd-tail",
            group_id=None,
            enable_auto_commit=False,
            allow_auto_create_topics=False,
            consumer_timeout_ms=timeout_ms,
            fetch_max_wait_ms=100,
            bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
        )
    except KafkaError as error:
        msg = f"cannot reach the Kafka broker at {bootstrap} ({error})"
        raise TailError(msg) from error
    try:
        partitions = [
            TopicPartition(topic, partition)
            for partition in sorted(consumer.partitions_for_topic(topic))
        ]
        if not partitions:
            msg = f"topic {topic} does not exist on {bootstrap}"
            raise TailError(msg)
        consumer.assign(partitions)
        if options.from_beginning:
            consumer.seek_to_beginning(*partitions)
        else:
            consumer.seek_to_end(*partitions)
        # Some brokers (tansu, the embedded one) put the end of a partition
        # inside its last record batch: a record stamped before tail began
        # was on the topic before, so "from now" skips it.
        since_ms = None if options.from_beginning else began_ms
        return _print_records(consumer, options, out, since_ms)
    finally:
        consumer.close()


def _print_records(
    consumer: KafkaConsumer, options: TailOptions, out: TextIO, since_ms: float | None
) -> int:
    wanted = options.wanted_type
    printed = 0
    for record in consumer:
        if since_ms is not None and record.timestamp < since_ms:
            continue
        try:
            event = read_message(record.value, record.key, dict(record.headers or []))
        except Exception as error:  # a foreign message: say so, and go on
            print(
                f"partition {record.partition} offset {record.offset}: "
                f"not a CloudEvent ({type(error).__name__})",
                file=out,
                flush=True,
            )
            continue
        if wanted is not None and event.get_type() != wanted:
            continue
        print(describe(event.get_attributes(), event.get_data()), file=out, flush=True)
        printed += 1
        if options.max_events is not None and printed >= options.max_events:
            break
    return printed


def describe(attributes: Mapping[str, Any], data: object) -> str:
    """One line: time, type, subject, sequence, position, what the data says."""
    time = attributes.get("time")
    when = time.isoformat().replace("+00:00", "Z") if time is not None else "-"
    return "  ".join(
        [
            when,
            str(attributes.get("type", "-")),
            str(attributes.get("subject", "-")),
            f"seq {attributes.get('sequence', '-')}",
            f"pos {attributes.get('position', '-')}",
            summary(data),
        ]
    )


def summary(data: object) -> str:
    """Who caused the event, then the data's plain fields as ``name=value``;
    bigger parts (an organisation, a submission) only named, never shown."""
    if not isinstance(data, Mapping):
        return _shorten(str(data), SUMMARY_WIDTH)
    parts = []
    actor = data.get("actor")
    if isinstance(actor, Mapping):
        parts.append(f"by {actor.get('role')}/{actor.get('name')}:")
    for name, value in data.items():
        if name == "actor":
            continue
        if isinstance(value, Mapping):
            parts.append(f"{name}={{…}}")
        elif isinstance(value, list):
            parts.append(f"{name}=[{len(value)}]")
        else:
            parts.append(f"{name}={_shorten(str(value), VALUE_WIDTH)}")
    return _shorten(" ".join(parts), SUMMARY_WIDTH)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
