"""The service's Prometheus metrics, one registry per process.

Counters count what this process did (commands, payments, scheduler passes);
Prometheus adds up the replicas. Positions and lags are read from the store's
database when scraped, so every process that can reach the database reports
the same, current figures, whether or not it runs the reader they concern:
take ``max`` of them across replicas, not the sum.

Labels are only command names, outcomes, facts, reasons and topic names:
never an id, a token or anything a person typed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from projections.database import ViewDatabase
from projections.publisher import tracking_name
from projections.tracking import PositionTracker
from projections.views import LIVE_TABLE
from scheduler.passes import PassReport
from service.application import CertificationService

log = structlog.get_logger(component="certd.metrics")

# The commands and outcomes CertificationService reports (its _log_command).
COMMANDS = (
    "start",
    "submit",
    "pay",
    "request_info",
    "provide_info",
    "decide",
    "suspend",
    "reinstate",
    "revoke",
    "withdraw",
    "raise_reevaluation_due",
    "lapse",
)
COMMAND_OUTCOMES = ("accepted", "repeat", "refused", "conflict", "store_unavailable")
SCHEDULER_FACTS = ("ReevaluationDue", "CertificationLapsed")
SCHEDULER_PASS_OUTCOMES = ("done", "failed")
PAYMENT_OUTCOMES = ("recorded", "repeat", "dead_lettered", "deferred")
DEAD_LETTER_REASONS = ("invalid", "unknown_certification", "refused")


class Metrics:
    """Every metric of one ``certd`` process, in a registry of its own.

    A registry per process rather than prometheus-client's global one, so
    that nothing is created at import time and tests can build several.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter(
            "certd_commands",
            "Commands handled, by command and outcome (accepted, repeat, "
            "refused, conflict, store_unavailable).",
            ["command", "outcome"],
            registry=self.registry,
        )
        self.payments = Counter(
            "certd_payments",
            "Payment messages handled by the consumer, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "certd_dead_letters",
            "Payment messages sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.scheduler_raised = Counter(
            "certd_scheduler_raised",
            "Facts the scheduler raised, by fact.",
            ["fact"],
            registry=self.registry,
        )
        self.scheduler_skipped = Counter(
            "certd_scheduler_skipped",
            "Candidates a pass found already raised by another pass.",
            registry=self.registry,
        )
        self.scheduler_passes = Counter(
            "certd_scheduler_passes",
            "Scheduler passes, by outcome (done, failed).",
            ["outcome"],
            registry=self.registry,
        )
        self.scheduler_last_pass = Gauge(
            "certd_scheduler_last_pass_timestamp_seconds",
            "When the last pass that finished finished (Unix time).",
            registry=self.registry,
        )
        self._show_zeros()

    def _show_zeros(self) -> None:
        """Expose every label of every counter at 0 from the start, so that
        ``increase()`` and ``rate()`` see their first rise."""
        for command in COMMANDS:
            for outcome in COMMAND_OUTCOMES:
                self.commands.labels(command, outcome)
        for outcome in PAYMENT_OUTCOMES:
            self.payments.labels(outcome)
        for reason in DEAD_LETTER_REASONS:
            self.dead_letters.labels(reason)
        for fact in SCHEDULER_FACTS:
            self.scheduler_raised.labels(fact)
        for outcome in SCHEDULER_PASS_OUTCOMES:
            self.scheduler_passes.labels(outcome)

    # The observers the service's parts are handed.

    def command_handled(self, command: str, outcome: str) -> None:
        self.commands.labels(command, outcome).inc()

    def payment_handled(self, outcome: str) -> None:
        self.payments.labels(outcome).inc()

    def payment_dead_lettered(self, reason: str) -> None:
        self.payments.labels("dead_lettered").inc()
        self.dead_letters.labels(reason).inc()

    def pass_done(self, report: PassReport) -> None:
        for _, fact in report.raised:
            self.scheduler_raised.labels(fact).inc()
        self.scheduler_skipped.inc(report.skipped)
        self.scheduler_passes.labels("done").inc()
        self.scheduler_last_pass.set_to_current_time()

    def pass_failed(self) -> None:
        self.scheduler_passes.labels("failed").inc()

    # Positions, read when scraped.

    def watch_positions(
        self,
        service: CertificationService,
        db: ViewDatabase,
        publisher_topic: Callable[[], str | None],
    ) -> None:
        """Report the store's, the views' and the publisher's positions and
        lags, read from ``db`` at each scrape; the publisher's only while
        ``publisher_topic`` names a topic (a broker is configured)."""
        self.registry.register(PositionsCollector(service, db, publisher_topic))

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)


@dataclass(eq=False)  # the registry keys its collectors by identity
class PositionsCollector(Collector):
    """Store position, and how far the views and the publisher are behind it."""

    service: CertificationService
    db: ViewDatabase
    publisher_topic: Callable[[], str | None]

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "certd_store_up", "1 when the store answered this scrape, else 0."
        )
        topic = self.publisher_topic()
        try:
            store, readers = self._read(topic)
        except Exception as error:  # a scrape must not fail with the store
            log.warning("metrics_store_unreachable", error=type(error).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            "certd_store_position", "The store's last event position.", value=store
        )
        yield from _reader_gauges(
            "certd_view", "the status views", readers["view"], store
        )
        if topic is not None:
            yield from _reader_gauges(
                "certd_publisher",
                f"the publisher of {topic}",
                readers["publisher"],
                store,
            )

    def _read(self, topic: str | None) -> tuple[int, dict[str, int]]:
        # The readers first: a position read before the store's can only
        # make a lag look larger, never negative.
        readers = {"view": PositionTracker(self.db, LIVE_TABLE).position()}
        if topic is not None:
            tracker = PositionTracker(self.db, tracking_name(topic))
            readers["publisher"] = tracker.position()
        return self.service.ping_store(), readers


def _reader_gauges(
    prefix: str, reader: str, position: int, store: int
) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        f"{prefix}_position",
        f"The last store position that {reader} took in.",
        value=position,
    )
    yield GaugeMetricFamily(
        f"{prefix}_lag_positions",
        f"How many store positions {reader} lag behind the store.",
        value=max(0, store - position),
    )
