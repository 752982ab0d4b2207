"""The composition root: settings in, a wired service and HTTP app out.

Nothing is built at import time; each process (``certd serve`` or a test)
builds what it runs from its own settings.
"""

from fastapi import FastAPI

from api.app import create_app
from api.auth import TokenTable
from domain.clock import Clock, SystemClock
from service.application import CertificationService, RenewalPolicy
from service.settings import Settings
from service.store import persistence_env


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


def build_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    tokens = TokenTable.parse(settings.api_tokens.get_secret_value())
    return create_app(build_service(settings, clock), tokens)
