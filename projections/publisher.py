"""Relay the store's notification log to the event topic, at least once.

The transactional outbox, with the store's own notification log as the
outbox: an event reaches the topic only after it is stored, because the
publisher reads nothing else. It reads a batch after its tracked position,
sends it, waits until the broker has acknowledged every message
(``acks=all``), and only then moves the position, by compare-and-set in the
``view_tracking`` table of the store's database. A crash or a failed batch
leaves the position where it was, and the batch is sent again: subscribers
may see an event twice (with the same id) and drop the copy, but never miss
one.

Order: every event of a certification has the certification id as its key,
so all of them go to one partition. A batch goes out as one record batch per
partition (split only when it outgrows a record batch, and then each part
waits for the one before), so no event of a batch can land on the topic
before an earlier event of its certification that failed: per certification,
the first copies on the topic are in version order.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from uuid import UUID

import structlog
from eventsourcing.application import Application
from faststream.kafka import KafkaBroker, KafkaPublishMessage
from faststream.kafka.exceptions import BatchBufferOverflowException
from kafka.partitioner.default import murmur2

from domain.certification import Certification
from projections.cloudevent import CONTENT_TYPE, OutgoingMessage, outgoing_message
from projections.collector import collector_spared, spared_for
from projections.tracking import PositionMovedError, PositionTracker
from service.ledger import event_reader

log = structlog.get_logger(component="certd.publisher")

HEADERS = {"content-type": CONTENT_TYPE}
# A record batch of at most this many bytes; Kafka's default limit for one
# is 1 MiB, and a request carries one batch per partition.
MAX_BATCH_BYTES = 512 * 1024
# What a record adds to its key and value in a batch (headers, lengths).
RECORD_OVERHEAD_BYTES = 120


class TopicMissingError(RuntimeError):
    pass


class PublishError(RuntimeError):
    """The broker did not acknowledge a batch; its position did not move."""


def tracking_name(topic: str) -> str:
    """The name the publisher's position is tracked under, one per topic."""
    return f"publisher:{topic}"


@dataclass(frozen=True)
class Backoff:
    """Wait ``first`` seconds after a failure, twice as long after each
    further one, never more than ``most``."""

    first: float = 0.5
    most: float = 30.0

    def delay(self, failures: int) -> float:
        return float(min(self.most, self.first * 2 ** max(0, failures - 1)))


@dataclass(frozen=True)
class Batch:
    """Events read after position ``after``, up to ``last``, as messages."""

    after: int
    last: int
    read: int
    messages: list[OutgoingMessage]


class EventPublisher:
    """Publish every stored event to ``topic`` on the broker at ``bootstrap``."""

    # The partitions of this many keys (certification ids) are remembered:
    # the partitioner's hash is pure Python, about 25 µs a key, and the events
    # of one certification come close together in the log. The oldest key
    # remembered is forgotten first, so the memory stays bounded however many
    # certifications the store holds: about 1.1 MiB, 115 bytes a key.
    PARTITION_KEYS_KEPT = 10_000

    def __init__(
        self,
        store: Application[UUID],
        tracker: PositionTracker,
        bootstrap: str,
        topic: str,
        *,
        batch_size: int = 500,
        ack_timeout: float = 10.0,
        backoff: Backoff | None = None,
        report_every: float = 1.0,
    ) -> None:
        self.store = store
        self.tracker = tracker
        self.bootstrap = bootstrap
        self.topic = topic
        self.batch_size = batch_size
        self.ack_timeout = ack_timeout
        self.backoff = backoff or Backoff()
        self.report_every = report_every
        self._channel = str(getattr(store.recorder, "channel_name", ""))
        self._broker: KafkaBroker | None = None
        self._partitions: list[int] = []
        self._partition_of_key: dict[bytes, int] = {}
        self._unreported = 0
        self._next_report = 0.0
        self._prefetch: asyncio.Task[Batch | None] | None = None
        # Where this publisher last moved the position; None when it must be
        # read (at the start, and after a failure or another's move).
        self._moved_to: int | None = None

    # Where it stands.

    def position(self) -> int:
        """The last store position the broker has acknowledged."""
        return self.tracker.position()

    def lag(self) -> int:
        """How many store positions are not yet published."""
        last = self.store.recorder.max_notification_id() or 0
        return max(0, last - self.position())

    async def ping(self, timeout: float = 1.0) -> bool:
        """Whether the broker answers a metadata request within ``timeout``."""
        broker = self._broker
        if broker is None:
            return False
        try:
            return await broker.ping(timeout)
        except Exception:  # any failure to answer is "not reachable"
            return False

    # Running.

    async def run(self, stopping: asyncio.Event, idle_wait: float = 1.0) -> None:
        """Publish until ``stopping`` is set; retry failures with backoff.

        A batch in flight when ``stopping`` is set is finished (or fails)
        before the loop ends; the position never passes an event the broker
        has not acknowledged.
        """
        position = await self._first_position(stopping)
        log.info("publisher_started", topic=self.topic, position=position)
        failures = 0
        while not stopping.is_set():
            try:
                # Connected even when idle, so that /readyz can ask the broker.
                await self.connect()
                published = await self.publish_once()
                if published >= self.batch_size:
                    await self._publish_backlog(stopping)
            except Exception as error:
                failures += 1
                delay = self.backoff.delay(failures)
                log.warning(
                    "publish_failed",
                    topic=self.topic,
                    error=_describe(error),
                    failures=failures,
                    retry_in_s=delay,
                )
                await self._drop_prefetch()
                if isinstance(error, PublishError):
                    # Start afresh with the broker; a missing topic or a
                    # store that does not answer leaves the connection be,
                    # so that /readyz still sees the broker.
                    await self.disconnect()
                await _sleep_unless(stopping, delay)
                continue
            if failures:
                log.info("publisher_recovered", topic=self.topic, failures=failures)
                failures = 0
            await self._report()
            if not published:
                await asyncio.to_thread(
                    self.tracker.db.wait_for_news, self._channel, idle_wait
                )
        await self._drop_prefetch()
        await self.disconnect()
        await self._report(force=True)
        log.info("publisher_stopped", topic=self.topic, position=self.position())

    async def catch_up(self) -> int:
        """Publish up to the store's last event as of now; return how many.

        Raises on the first failure, without retrying.
        """
        target = await asyncio.to_thread(self.store.recorder.max_notification_id) or 0
        self._moved_to = None
        position = await self._current_position()
        total = 0
        try:
            with spared_for(target - position):
                while position < target:
                    total += await self.publish_once()
                    position = await self._current_position()
        finally:
            await self._drop_prefetch()
        return total

    async def _publish_backlog(self, stopping: asyncio.Event) -> None:
        """Publish batch after batch while they come full, or until
        ``stopping``; raise on the first failure, as ``publish_once`` does."""
        with collector_spared():
            while not stopping.is_set():
                published = await self.publish_once()
                await self._report()
                if published < self.batch_size:
                    return

    async def publish_once(self) -> int:
        """Publish the next batch after the tracked position; return its size.

        Raises when the broker did not acknowledge all of it: the position
        then stays, and the next call sends the whole batch again.

        After a full batch, the next one is read and encoded while this one
        is on its way: it is used only if this one moved the position.
        """
        batch = await self._next_batch()
        if batch is None:
            self._moved_to = None  # idle: read where it is next time
            return 0
        if batch.read == self.batch_size:
            self._prefetch = asyncio.create_task(
                asyncio.to_thread(self._read_batch, batch.last)
            )
        self._moved_to = None
        await self.connect()
        await self._send(batch.messages)
        try:
            await asyncio.to_thread(self.tracker.advance, batch.after, batch.last)
        except PositionMovedError:
            # Another publisher moved it: both sent these events, which at
            # least once allows. Carry on from wherever it is now.
            log.info("publisher_position_moved", topic=self.topic)
            return batch.read
        self._moved_to = batch.last
        self._unreported += len(batch.messages)
        return batch.read

    async def connect(self) -> None:
        """Connect to the broker, then learn the topic's partitions."""
        if self._broker is None:
            broker = KafkaBroker(
                self.bootstrap,
                acks="all",
                # tansu, the broker for local use, refuses idempotent
                # producers; duplicates are allowed anyway, and order is kept
                # per partition by sending one record batch at a time.
                enable_idempotence=False,
                request_timeout_ms=int(self.ack_timeout * 1000),
                max_batch_size=MAX_BATCH_BYTES,
                client_id="certd-publisher",
            )
            try:
                await broker.connect()
            except BaseException:
                await _stop_quietly(broker, self.ack_timeout)
                raise
            self._broker = broker
            self._partitions = []
        if not self._partitions:
            self._partitions = await self._topic_partitions(self._broker)
            self._partition_of_key = {}
            log.info(
                "publisher_connected",
                topic=self.topic,
                partitions=len(self._partitions),
            )

    async def disconnect(self) -> None:
        broker, self._broker = self._broker, None
        self._partitions = []
        if broker is not None:
            await _stop_quietly(broker, self.ack_timeout)

    def close(self) -> None:
        """Close the publisher's database connections (after ``run``)."""
        self.tracker.db.close()

    # Steps.

    async def _next_batch(self) -> Batch | None:
        after = await self._current_position()
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is not None:
            batch = await prefetch
            if batch is not None and batch.after == after:
                return batch
        return await asyncio.to_thread(self._read_batch, after)

    async def _current_position(self) -> int:
        """The tracked position: where this publisher moved it last, or as
        read from the store when it does not know. A position another moved
        meanwhile makes the next move fail, and is then read."""
        if self._moved_to is not None:
            return self._moved_to
        return await asyncio.to_thread(self.tracker.position)

    async def _drop_prefetch(self) -> None:
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is not None:
            with suppress(Exception):  # it is not needed any more
                await prefetch

    def _read_batch(self, after: int) -> Batch | None:
        """Read and encode the events after position ``after`` (in a thread:
        the store's client blocks)."""
        notifications = self.store.recorder.select_notifications(
            start=after + 1, limit=self.batch_size
        )
        if not notifications:
            return None
        read_event = event_reader(self.store.mapper)
        messages = []
        # Decoding and encoding here share the interpreter's one core with
        # the sending loop; a worker process with a mapper of its own would
        # take them off it where a second core is free (bench/README.md).
        for notification in notifications:
            event = read_event(notification)
            if isinstance(event, Certification.Event):
                messages.append(outgoing_message(event, notification.id))
        return Batch(after, notifications[-1].id, len(notifications), messages)

    async def _send(self, messages: Sequence[OutgoingMessage]) -> None:
        """Send the messages, a chain of record batches per partition, all
        partitions at once; return when the broker acknowledged every one."""
        by_partition: dict[int, list[OutgoingMessage]] = {}
        for message in messages:
            by_partition.setdefault(self._partition(message.key), []).append(message)
        results = await asyncio.gather(
            *(
                self._send_to_partition(partition, group)
                for partition, group in by_partition.items()
            ),
            return_exceptions=True,
        )
        failed = [result for result in results if isinstance(result, BaseException)]
        if failed:
            msg = (
                f"{len(failed)} of {len(by_partition)} partitions did not "
                "acknowledge their messages"
            )
            raise PublishError(msg) from failed[0]

    async def _send_to_partition(
        self, partition: int, messages: list[OutgoingMessage]
    ) -> None:
        for chunk in _chunks(messages, MAX_BATCH_BYTES):
            await self._send_chunk(partition, chunk)

    async def _send_chunk(self, partition: int, chunk: list[OutgoingMessage]) -> None:
        broker = self._broker
        if broker is None:
            msg = "the publisher is not connected"
            raise PublishError(msg)
        try:
            await broker.publish_batch(
                *(KafkaPublishMessage(m.value, key=m.key) for m in chunk),
                topic=self.topic,
                partition=partition,
                headers=HEADERS,
            )
        except BatchBufferOverflowException as full:
            # The size estimate was short: send the part that fitted, then
            # the rest, one after the other.
            cut = full.message_position
            if cut < 1:
                raise
            await self._send_chunk(partition, chunk[:cut])
            await self._send_chunk(partition, chunk[cut:])

    def _partition(self, key: bytes) -> int:
        """The partition of a key, as Kafka's default partitioner picks it."""
        known = self._partition_of_key
        partition = known.get(key)
        if partition is None:
            index = (int(murmur2(key)) & 0x7FFFFFFF) % len(self._partitions)
            partition = self._partitions[index]
            known[key] = partition
            if len(known) > self.PARTITION_KEYS_KEPT:
                del known[next(iter(known))]
        return partition

    async def _topic_partitions(self, broker: KafkaBroker) -> list[int]:
        # Asking for a missing topic's metadata would create it with the
        # broker's defaults, so look for it among the existing ones first.
        admin = broker.config.admin_client
        if self.topic not in await admin.list_topics():
            msg = (
                f"topic {self.topic} does not exist; create it with "
                "`certd topics ensure`"
            )
            raise TopicMissingError(msg)
        (described,) = await admin.describe_topics([self.topic])
        return sorted(int(found["partition"]) for found in described["partitions"])

    async def _first_position(self, stopping: asyncio.Event) -> int:
        """Read where to resume, waiting out a store that does not answer."""
        failures = 0
        while True:
            try:
                return await asyncio.to_thread(self.position)
            except Exception as error:
                if stopping.is_set():
                    raise
                failures += 1
                delay = self.backoff.delay(failures)
                log.warning(
                    "publisher_waiting_for_store",
                    topic=self.topic,
                    error=_describe(error),
                    retry_in_s=delay,
                )
                await _sleep_unless(stopping, delay)

    async def _report(self, *, force: bool = False) -> None:
        """Log what was published, at most once every ``report_every`` s.

        A store that does not answer skips a report; it never stops the
        publisher, which would then publish nothing more until a restart.
        """
        now = time.monotonic()
        if not self._unreported or (now < self._next_report and not force):
            return
        try:
            position, lag = await asyncio.to_thread(self._position_and_lag)
        except Exception as error:
            log.warning("publisher_report_failed", error=_describe(error))
            return
        log.info(
            "events_published",
            topic=self.topic,
            count=self._unreported,
            position=position,
            lag=lag,
        )
        self._unreported = 0
        self._next_report = now + self.report_every

    def _position_and_lag(self) -> tuple[int, int]:
        position = self.position()
        last = self.store.recorder.max_notification_id() or 0
        return position, max(0, last - position)


class PublisherThread:
    """Run a publisher in a thread with its own event loop, beside a server.

    The server's threads ask it about the broker through ``broker_reachable``
    and ``position``.
    """

    def __init__(self, publisher: EventPublisher) -> None:
        self.publisher = publisher
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="event-publisher", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        self._started.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop publishing (the batch in flight is finished first) and close."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with suppress(RuntimeError):  # the loop has just closed
                loop.call_soon_threadsafe(stopping.set)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.publisher.close()

    @property
    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def broker_reachable(self, timeout: float = 1.0) -> bool:
        loop = self._loop
        if loop is None or not self._thread.is_alive():
            return False
        future = asyncio.run_coroutine_threadsafe(self.publisher.ping(timeout), loop)
        try:
            return future.result(timeout + 1.0)
        except Exception:  # a timeout or a closed loop: not reachable now
            future.cancel()
            return False

    def position(self) -> int:
        return self.publisher.position()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._started.set()
        try:
            await self.publisher.run(self._stopping)
        except Exception:
            log.exception("publisher_crashed", topic=self.publisher.topic)


def _chunks(
    messages: list[OutgoingMessage], max_bytes: int
) -> Iterator[list[OutgoingMessage]]:
    """Split messages, in order, into runs that fit a record batch."""
    chunk: list[OutgoingMessage] = []
    size = 0
    for message in messages:
        room = len(message.key) + len(message.value) + RECORD_OVERHEAD_BYTES
        if chunk and size + room > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(message)
        size += room
    if chunk:
        yield chunk


async def _sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


async def _stop_quietly(broker: KafkaBroker, timeout: float) -> None:
    try:
        await asyncio.wait_for(broker.stop(), timeout)
    except Exception as error:  # it is being dropped either way
        log.info("publisher_disconnect_failed", error=_describe(error))


def _describe(error: BaseException) -> str:
    """The error and its causes, one line, for a log field."""
    parts: list[str] = []
    current: BaseException | None = error
    while current is not None and len(parts) < 3:
        name, text = type(current).__name__, str(current)
        parts.append(text if text.startswith(name) else f"{name}: {text}".rstrip(": "))
        current = current.__cause__ or current.__context__
    return " <- ".join(parts)
