"""Read what a topic holds, as a subscriber would, and drive the publisher.

Topics are read with their partitions assigned directly: joining a consumer
group is slow on the test broker, and a test wants every message anyway.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from projections.publisher import EventPublisher
from projections.tracking import PositionTracker
from service.kafka_admin import TopicSpec, ensure_topics

CERTD = Path(sys.executable).with_name("certd")
PARTITIONS = 3


@dataclass(frozen=True)
class Received:
    """One message as read back: where it sits, its key, headers and value."""

    partition: int
    offset: int
    key: bytes | None
    headers: dict[str, bytes]
    envelope: dict[str, Any]

    @property
    def identity(self) -> tuple[str, int]:
        """The stored event it carries: certification and version."""
        return self.envelope["subject"], self.envelope["sequence"]


def new_topic(bootstrap: str, partitions: int = PARTITIONS) -> str:
    """Create a topic of the test's own, so it sees no other test's events."""
    name = f"certification.events.test.{uuid.uuid4().hex[:12]}"
    ensure_topics(bootstrap, [TopicSpec(name, partitions, 1, -1)])
    return name


def read_topic(
    bootstrap: str, topic: str, timeout: float = 20.0, settle: float = 0.5
) -> list[Received]:
    """Every message the topic holds now, in partition then offset order.

    It reads to the end each partition had when it began, then on until
    nothing more came for ``settle`` seconds: tansu, the test broker, reports
    the end of a partition inside its last record batch.
    """
    return asyncio.run(_read_to_end(bootstrap, topic, timeout, settle))


async def _read_to_end(
    bootstrap: str, topic: str, timeout: float, settle: float
) -> list[Received]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [
            TopicPartition(topic, partition)
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        assert partitions, f"topic {topic} has no partitions"
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        received: list[Received] = []
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while True:
            behind = [tp for tp in partitions if await consumer.position(tp) < ends[tp]]
            if not behind and time.monotonic() - quiet_since >= settle:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"read {len(received)} messages of {topic} in {timeout} s")
            batches = await consumer.getmany(timeout_ms=100)
            for records in batches.values():
                quiet_since = time.monotonic()
                received.extend(
                    Received(
                        record.partition,
                        record.offset,
                        record.key,
                        dict(record.headers),
                        json.loads(record.value),
                    )
                    for record in records
                )
        return sorted(received, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


def publish_all(publisher: EventPublisher) -> int:
    """Publish up to the store's last event, then let go of the broker."""

    async def run() -> int:
        try:
            return await publisher.catch_up()
        finally:
            await publisher.disconnect()

    return asyncio.run(run())


def first_copies(received: list[Received]) -> dict[str, list[int]]:
    """Per certification, the versions of the first copy of each event, in the
    order they stand on the topic."""
    seen: set[tuple[str, int]] = set()
    versions: dict[str, list[int]] = {}
    for message in received:
        if message.identity in seen:
            continue
        seen.add(message.identity)
        subject, sequence = message.identity
        versions.setdefault(subject, []).append(sequence)
    return versions


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout} s for {what}")
        time.sleep(0.05)


class PublisherProcess:
    """``certd publish`` as a subprocess on a store and a topic, logging JSON
    lines to a file that outlives each run."""

    def __init__(self, log_path: Path, **settings: str) -> None:
        self.log_path = log_path
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CERTD_")},
            "CERTD_LOG_FORMAT": "json",
            **{f"CERTD_{name.upper()}": value for name, value in settings.items()},
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(CERTD), "publish"], env=self.env, stderr=log, stdout=log
            )

    def kill(self) -> None:
        """Kill it at once (SIGKILL): no batch is finished, nothing is closed."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> int:
        """Ask it to stop (SIGTERM) and return its exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append({"event": "not_json", "line": line})
        return lines

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.log_lines() if line.get("event") == name]


def settled_position(tracker: PositionTracker, quiet: float = 0.3) -> int:
    """The tracked position once it stopped moving for ``quiet`` seconds: an
    acknowledgement that reached a publisher just before it was killed, or
    its broker stopped, may still move the position a while later."""
    position = tracker.position()
    while True:
        time.sleep(quiet)
        now = tracker.position()
        if now == position:
            return now
        position = now
