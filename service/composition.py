"""The composition root: settings in, the wired parts of the service out.

Nothing is built at import time; each process (``certd serve``, a role run
alone, or a test) builds what it runs from its own settings. The parts share
nothing but the database, so each can run in a process of its own.
"""

from dataclasses import dataclass

from fastapi import FastAPI

from api.app import PublisherStatus, create_app
from api.auth import TokenTable
from consumers.payments import (
    PaymentConsumer,
    PaymentObserver,
    create_payment_consumer,
)
from domain.clock import Clock, SystemClock
from projections.publisher import EventPublisher, tracking_name
from projections.runner import ProjectionRunner
from projections.tracking import PositionTracker
from projections.views import StatusViews
from scheduler.passes import SchedulerPass
from service.application import (
    CertificationService,
    CommandObserver,
    RenewalPolicy,
)
from service.metrics import Metrics
from service.settings import Settings
from service.store import persistence_env, store_setup_lock, view_database


def build_service(
    settings: Settings,
    clock: Clock | None = None,
    observer: CommandObserver | None = None,
) -> CertificationService:
    with store_setup_lock(settings.database_url):
        return CertificationService(
            env=persistence_env(settings.database_url, settings.postgres_pool_size),
            clock=clock or SystemClock(),
            policy=RenewalPolicy(
                reevaluation_lead_days=settings.reevaluation_lead_days,
                grace_days=settings.grace_days,
            ),
            observer=observer,
        )


@dataclass
class Runtime:
    """The service's parts over one database, and how to close them."""

    settings: Settings
    service: CertificationService
    views: StatusViews
    runner: ProjectionRunner
    scheduler_pass: SchedulerPass
    metrics: Metrics

    def published_topic(self) -> str | None:
        """The event topic, when a broker is configured to publish it to.

        Asked anew each time: ``certd serve --embedded-broker`` sets the
        broker after the runtime is built.
        """
        return self.settings.kafka_topic if self.settings.kafka_bootstrap else None

    def close(self) -> None:
        self.views.db.close()
        self.service.close()


def build_runtime(
    settings: Settings, clock: Clock | None = None, metrics: Metrics | None = None
) -> Runtime:
    """Wire the parts over the database; each counts into ``metrics`` (a
    registry of the runtime's own when not given)."""
    metrics = metrics or Metrics()
    service = build_service(settings, clock, metrics)
    views = StatusViews(view_database(settings.database_url))
    views.create()
    views.index_names_for_search()
    runner = ProjectionRunner(
        service, views, settings.reevaluation_lead_days, settings.projection_batch
    )
    scheduler_pass = SchedulerPass(service, views, runner)
    runtime = Runtime(settings, service, views, runner, scheduler_pass, metrics)
    metrics.watch_positions(service, views.db, runtime.published_topic)
    return runtime


def build_publisher(
    settings: Settings, service: CertificationService
) -> EventPublisher:
    """The event publisher of ``settings.kafka_topic``, tracked in the store's
    database under a name of its own, on connections of its own."""
    if not settings.kafka_bootstrap:
        msg = "CERTD_KAFKA_BOOTSTRAP is not set: there is no broker to publish to"
        raise ValueError(msg)
    tracker = PositionTracker(
        view_database(settings.database_url, pool_size=2),
        tracking_name(settings.kafka_topic),
    )
    tracker.create()
    return EventPublisher(
        service,
        tracker,
        settings.kafka_bootstrap,
        settings.kafka_topic,
        batch_size=settings.publisher_batch,
        ack_timeout=settings.publisher_ack_timeout,
    )


def build_payment_consumer(
    settings: Settings,
    service: CertificationService,
    observer: PaymentObserver | None = None,
) -> PaymentConsumer:
    """The consumer that turns ``settings.kafka_payments_topic`` into payments."""
    if not settings.kafka_bootstrap:
        msg = "CERTD_KAFKA_BOOTSTRAP is not set: there is no broker to consume from"
        raise ValueError(msg)
    return create_payment_consumer(settings, service, observer=observer)


def build_app(runtime: Runtime, publisher: PublisherStatus | None = None) -> FastAPI:
    tokens = TokenTable.parse(runtime.settings.api_tokens.get_secret_value())
    return create_app(
        runtime.service,
        tokens,
        runtime.views,
        runtime.runner,
        runtime.settings.read_wait_seconds,
        publisher=publisher,
        metrics=runtime.metrics,
        max_body_bytes=runtime.settings.max_body_bytes,
        max_json_depth=runtime.settings.max_json_depth,
    )
