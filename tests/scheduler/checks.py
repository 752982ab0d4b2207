"""What the scheduler tests look at: the stored facts of a certification, and
whether its status view says what its aggregate says."""

from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar
from uuid import UUID

from domain.certification import Certification, Status
from service.application import CertificationService
from service.composition import Runtime
from tests.projections.steps import disagreements

Fact = TypeVar("Fact", bound=Certification.Event)
Differences = dict[str, tuple[object, object]]


def at(day: date, hour: int) -> datetime:
    """The instant ``hour`` o'clock UTC of ``day``."""
    return datetime.combine(day, time(hour), tzinfo=UTC)


def stored_facts(
    service: CertificationService, cert_id: UUID, kind: type[Fact]
) -> list[Fact]:
    """The stored events of one kind (not its subkinds) of a certification,
    oldest first."""
    return [
        event
        for event in service.history(cert_id)
        if isinstance(event, kind) and type(event) is kind
    ]


def view_against_aggregates(
    runtime: Runtime, ids: list[UUID]
) -> dict[UUID, tuple[Certification, Differences]]:
    """Each certification's aggregate, and each field where its view row says
    something else, as (row, aggregate), on the runtime clock's day.

    The view is first brought up to the store: a pass leaves the facts of its
    last step to the runner, which under ``certd serve`` runs beside it.
    """
    runtime.runner.catch_up()
    rows = runtime.views.load(ids)
    now = runtime.service.clock.now()
    lead = timedelta(days=runtime.settings.reevaluation_lead_days)
    compared: dict[UUID, tuple[Certification, Differences]] = {}
    for cert_id in ids:
        certification = runtime.service.get(cert_id)
        row = rows.get(cert_id)
        if row is None:
            compared[cert_id] = (certification, {"row": (None, "a row")})
            continue
        # The row's position is the view's own bookkeeping; its version stands
        # for it here, without reading the whole notification log each time.
        found = disagreements(row, certification, row.position, now)
        due_on = (
            certification.valid_until - lead
            if certification.valid_until and certification.status is Status.CERTIFIED
            else None
        )
        if row.reevaluation_due_on != due_on:
            found["reevaluation_due_on"] = (row.reevaluation_due_on, due_on)
        compared[cert_id] = (certification, found)
    return compared
