"""The composition root: settings in, the wired parts of the service out.

Nothing is built at import time; each process (``certd serve``, a role run
alone, or a test) builds what it runs from its own settings. The parts share
nothing but the database, so each can run in a process of its own.
"""

from dataclasses import dataclass

from fastapi import FastAPI

from api.app import create_app
from api.auth import TokenTable
from domain.clock import Clock, SystemClock
from projections.runner import ProjectionRunner
from projections.views import StatusViews
from scheduler.passes import SchedulerPass
from service.application import CertificationService, RenewalPolicy
from service.settings import Settings
from service.store import persistence_env, view_database


def build_service(
    settings: Settings, clock: Clock | None = None
) -> CertificationService:
    return CertificationService(
        env=persistence_env(settings.database_url, settings.postgres_pool_size),
        clock=clock or SystemClock(),
        policy=RenewalPolicy(
            reevaluation_lead_days=settings.reevaluation_lead_days,
            grace_days=settings.grace_days,
        ),
    )


@dataclass
class Runtime:
    """The service's parts over one database, and how to close them."""

    settings: Settings
    service: CertificationService
    views: StatusViews
    runner: ProjectionRunner
    scheduler_pass: SchedulerPass

    def close(self) -> None:
        self.views.db.close()
        self.service.close()


def build_runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    service = build_service(settings, clock)
    views = StatusViews(view_database(settings.database_url))
    views.create()
    runner = ProjectionRunner(
        service, views, settings.reevaluation_lead_days, settings.projection_batch
    )
    scheduler_pass = SchedulerPass(service, views, runner)
    return Runtime(settings, service, views, runner, scheduler_pass)


def build_app(runtime: Runtime) -> FastAPI:
    tokens = TokenTable.parse(runtime.settings.api_tokens.get_secret_value())
    return create_app(
        runtime.service,
        tokens,
        runtime.views,
        runtime.runner,
        runtime.settings.read_wait_seconds,
    )
