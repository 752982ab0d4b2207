"""A certification's status view as it stood at a past instant.

The events recorded up to the instant, inclusive, are replayed through the
status view's own ``evolve``: the answer is what the live view would have
held then, with no second projection to keep in step.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from domain.certification import Certification
from projections.database import ViewDatabase
from projections.status_view import StatusRow, evolve
from service.application import CertificationNotFoundError, CertificationService


class NotYetAppliedError(CertificationNotFoundError):
    """The certification had no event yet at the instant asked about."""

    def __init__(self, certification_id: UUID, as_of: datetime) -> None:
        super().__init__(certification_id)
        self.args = (
            f"certification {certification_id} had not been applied for at "
            f"{as_of.isoformat()}",
        )


def state_as_of(
    service: CertificationService,
    db: ViewDatabase,
    certification_id: UUID,
    as_of: datetime,
    lead_days: int,
) -> StatusRow:
    """Return the status row built from the events up to ``as_of``, inclusive."""
    row: StatusRow | None = None
    found = False
    for position, event in stored_events(service, db, certification_id):
        found = True
        if event.timestamp > as_of:
            break
        row = evolve(row, event, position, lead_days)
    if not found:
        raise CertificationNotFoundError(certification_id)
    if row is None:
        raise NotYetAppliedError(certification_id, as_of)
    return row


def stored_events(
    service: CertificationService, db: ViewDatabase, certification_id: UUID
) -> list[tuple[int, Certification.Event]]:
    """Every event of a certification, oldest first, with its store position.

    The store's own reads leave positions out, so this asks its table
    directly (one query), and reads each event through the service's mapper,
    with its upcasting.
    """
    table = service.recorder.events_table_name  # type: ignore[attr-defined]
    sqlite = db.dialect == "sqlite"
    position = "rowid" if sqlite else "notification_id"
    key: str | UUID = certification_id.hex if sqlite else certification_id
    # The table's name is the library's own, never a caller's.
    sql = (
        f"SELECT {position} AS position, originator_version, topic, state "  # noqa: S608
        f"FROM {table} WHERE originator_id = :id ORDER BY originator_version"
    )
    events = []
    for row in db.query(sql, {"id": key}):
        event = service.mapper.to_domain_event(
            StoredEvent(
                originator_id=certification_id,
                originator_version=row["originator_version"],
                topic=row["topic"],
                state=bytes(row["state"]),
            )
        )
        if isinstance(event, Certification.Event):
            events.append((int(row["position"]), event))
    return events
