"""The application service: loads a certification, runs one command, stores its events.

Writes are optimistic: a command decided on a certification that someone else
changed meanwhile fails to store (the store refuses a second event at the same
version) and is reported as :class:`ConcurrentWriteError`, never retried into
a second effect. Each command is logged once with its outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple, Protocol, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import structlog
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    EventStore,
    IntegrityError,
    InterfaceError,
    JSONTranscoder,
    Mapper,
    OperationalError,
    PersistenceError,
    Recorder,
    StoredEvent,
    Transcoding,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import Environment, EnvType
from psycopg.sql import SQL, Identifier

from domain.actor import Actor
from domain.certification import Certification, PaymentRecord
from domain.clock import Clock
from domain.errors import CertificationError, InvalidCommandError, RefusedError
from domain.forms import (
    ApplicationForm,
    DecisionForm,
    InfoRequestForm,
    InfoResponseForm,
    PaymentForm,
    SubmissionForm,
)
from service.ledger import (
    SealingEventStore,
    SealingMapper,
    is_sealed,
    seal,
    stated_previous,
)

log = structlog.get_logger(component="certd.commands")

T = TypeVar("T")

# Ids made from an Idempotency-Key live in their own namespace.
IDEMPOTENT_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:certd:idempotency-key")


class CertificationNotFoundError(CertificationError):
    def __init__(self, certification_id: UUID | str) -> None:
        super().__init__(f"no certification has the id '{certification_id}'")


class ConcurrentWriteError(RefusedError):
    """Another command changed the certification first; this one stored nothing."""


class IdempotencyKeyReusedError(InvalidCommandError):
    pass


class StoreUnavailableError(CertificationError):
    """The event store could not be reached; nothing was stored."""


@dataclass(frozen=True)
class Outcome:
    """A certification after a command, and the store position of its event.

    ``position`` is None when the command stored nothing (a repeat).
    """

    certification: Certification
    position: int | None


@dataclass(frozen=True)
class PaymentOutcome:
    certification: Certification
    payment: PaymentRecord
    position: int | None


class CommandObserver(Protocol):
    """Told of each command handled, beside its log line (the metrics)."""

    def command_handled(self, command: str, outcome: str) -> None: ...


@dataclass(frozen=True)
class RenewalPolicy:
    reevaluation_lead_days: int = 60
    grace_days: int = 30


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class CertificationService(Application[UUID]):
    name = "certifications"

    def __init__(
        self,
        env: EnvType,
        clock: Clock,
        policy: RenewalPolicy | None = None,
        observer: CommandObserver | None = None,
    ) -> None:
        super().__init__(env)
        self.clock = clock
        self.policy = policy or RenewalPolicy()
        self.observer = observer

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """Configure the store from the given settings alone, not os.environ."""
        return Environment(name, {**type(self).env, **(env or {})})

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    def construct_mapper(self) -> Mapper[UUID]:
        """Read sealed events (and older, bare ones); see ``service.ledger``.

        The store is neither compressed nor encrypted (``persistence_env``
        sets neither), so the mapper needs only the transcoder.
        """
        return SealingMapper(transcoder=self.construct_transcoder())

    def construct_event_store(self) -> EventStore[UUID]:
        """Seal every stored event in its certification's hash chain."""
        mapper = self.mapper
        if not isinstance(mapper, SealingMapper):
            msg = "the event store seals events only through a SealingMapper"
            raise TypeError(msg)
        return SealingEventStore(mapper=mapper, recorder=self.recorder)

    # Commands.

    def start_application(
        self,
        form: ApplicationForm,
        actor: Actor,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Start an application; the same Idempotency-Key never starts a second.

        The key, scoped to the credential that sent it, fixes the new id, so a
        repeat collides with the first in the store and gets it back.
        """
        certification_id = (
            uuid5(IDEMPOTENT_ID_NAMESPACE, f"{actor.name}\n{idempotency_key}")
            if idempotency_key
            else uuid4()
        )
        certification = Certification.start(
            form, id=certification_id, actor=actor, at=self.clock.now()
        )
        started = certification.pending_events[0]
        try:
            position = self.store_changes(certification)
        except ConcurrentWriteError:
            first_stored = self.history(certification_id)[0]
            if event_data(first_stored) != event_data(started):
                self._log_command(certification_id, "start", "refused")
                raise IdempotencyKeyReusedError(
                    "Idempotency-Key",
                    "this key already started an application with another body",
                ) from None
            self._log_command(certification_id, "start", "repeat")
            return Outcome(self.get(certification_id), None)
        self._log_command(certification_id, "start", "accepted", position=position)
        return Outcome(certification, position)

    def submit(
        self, certification_id: UUID, form: SubmissionForm, actor: Actor
    ) -> Outcome:
        return self._execute(
            certification_id,
            "submit",
            lambda cert: cert.submit(form, actor=actor, at=self.clock.now()),
        )

    def record_payment(
        self, certification_id: UUID, form: PaymentForm, actor: Actor
    ) -> PaymentOutcome:
        """Record a payment; a reference seen before changes nothing.

        A payment that loses a race is looked up again, so two deliveries of
        the same payment at once give one event and two identical answers.
        """
        try:
            return self._pay(certification_id, form, actor)
        except ConcurrentWriteError:
            return self._pay(certification_id, form, actor)

    def request_info(
        self, certification_id: UUID, form: InfoRequestForm, actor: Actor
    ) -> tuple[Outcome, str]:
        request_id = str(uuid4())
        outcome = self._execute(
            certification_id,
            "request_info",
            lambda cert: cert.request_info(
                request_id, form, actor=actor, at=self.clock.now()
            ),
        )
        return outcome, request_id

    def provide_info(
        self, certification_id: UUID, form: InfoResponseForm, actor: Actor
    ) -> Outcome:
        return self._execute(
            certification_id,
            "provide_info",
            lambda cert: cert.provide_info(form, actor=actor, at=self.clock.now()),
        )

    def decide(
        self, certification_id: UUID, form: DecisionForm, actor: Actor
    ) -> Outcome:
        return self._execute(
            certification_id,
            "decide",
            lambda cert: cert.decide(form, actor=actor, at=self.clock.now()),
        )

    def suspend(self, certification_id: UUID, reason: str, actor: Actor) -> Outcome:
        return self._execute(
            certification_id,
            "suspend",
            lambda cert: cert.suspend(reason, actor=actor, at=self.clock.now()),
        )

    def reinstate(self, certification_id: UUID, reason: str, actor: Actor) -> Outcome:
        return self._execute(
            certification_id,
            "reinstate",
            lambda cert: cert.reinstate(reason, actor=actor, at=self.clock.now()),
        )

    def revoke(self, certification_id: UUID, reason: str, actor: Actor) -> Outcome:
        return self._execute(
            certification_id,
            "revoke",
            lambda cert: cert.revoke(reason, actor=actor, at=self.clock.now()),
        )

    def withdraw(self, certification_id: UUID, reason: str, actor: Actor) -> Outcome:
        return self._execute(
            certification_id,
            "withdraw",
            lambda cert: cert.withdraw(reason, actor=actor, at=self.clock.now()),
        )

    def raise_reevaluation_due(self, certification_id: UUID) -> Outcome:
        policy = self.policy
        return self._execute(
            certification_id,
            "raise_reevaluation_due",
            lambda cert: cert.raise_reevaluation_due(
                lead_days=policy.reevaluation_lead_days,
                grace_days=policy.grace_days,
                at=self.clock.now(),
            ),
        )

    def lapse(self, certification_id: UUID) -> Outcome:
        return self._execute(
            certification_id,
            "lapse",
            lambda cert: cert.lapse(at=self.clock.now()),
        )

    # Queries.

    def get(self, certification_id: UUID) -> Certification:
        with _translated_store_errors():
            try:
                certification: object = self.repository.get(certification_id)
            except AggregateNotFoundError:
                raise CertificationNotFoundError(certification_id) from None
        if not isinstance(certification, Certification):
            raise CertificationNotFoundError(certification_id)
        return certification

    def history(self, certification_id: UUID) -> list[Certification.Event]:
        """Return every stored event of a certification, oldest first."""
        with _translated_store_errors():
            events = list(self.repository.event_store.get(certification_id))
        if not events:
            raise CertificationNotFoundError(certification_id)
        return [event for event in events if isinstance(event, Certification.Event)]

    def ping_store(self) -> int:
        """Return the store's last position, or raise if it cannot be read."""
        with _translated_store_errors():
            return self.recorder.max_notification_id() or 0

    # Steps.

    def _execute(
        self,
        certification_id: UUID,
        command: str,
        decide: Callable[[Certification], Any],
    ) -> Outcome:
        certification = self.get(certification_id)
        try:
            decide(certification)
            position = self.store_changes(certification)
        except CertificationError as error:
            self._log_command(certification_id, command, _outcome_of(error))
            raise
        self._log_command(
            certification_id,
            command,
            "accepted",
            version=certification.version,
            position=position,
        )
        return Outcome(certification, position)

    def _pay(
        self, certification_id: UUID, form: PaymentForm, actor: Actor
    ) -> PaymentOutcome:
        certification = self.get(certification_id)
        is_repeat = form.reference in certification.payments
        try:
            record = certification.pay(form, actor=actor, at=self.clock.now())
            position = None if is_repeat else self.store_changes(certification)
        except CertificationError as error:
            self._log_command(
                certification_id, "pay", _outcome_of(error), kind=form.kind
            )
            raise
        self._log_command(
            certification_id,
            "pay",
            "repeat" if is_repeat else "accepted",
            kind=form.kind,
            position=position,
        )
        return PaymentOutcome(certification, record, position)

    def _log_command(
        self, certification_id: UUID, command: str, outcome: str, **fields: object
    ) -> None:
        log.info(
            "command_handled",
            certification_id=str(certification_id),
            command=command,
            outcome=outcome,
            **fields,
        )
        if self.observer is not None:
            self.observer.command_handled(command, outcome)

    def store_changes(self, certification: Certification) -> int | None:
        """Store the pending events; return the position of the last one.

        The store refuses an event at a version it holds already. When what
        it holds there are these very events, the command was stored: the
        library retries an insert whose connection died, and a first try
        that had committed meets the retry. That answers with their position.
        """
        pending = list(certification.pending_events)
        with _translated_store_errors():
            try:
                recordings = self.save(certification)
            except IntegrityError:
                position = self._position_if_stored_already(pending)
                if position is None:
                    msg = (
                        f"certification {certification.id} was changed by another "
                        "command at the same moment; nothing was stored, reload and "
                        "try again"
                    )
                    raise ConcurrentWriteError(msg) from None
                return position
        if not recordings:
            return None
        return recordings[-1].notification.id

    def _position_if_stored_already(
        self, pending: Sequence[DomainEventProtocol[UUID]]
    ) -> int | None:
        """The position of the last pending event if the store holds every
        one of them, sealed, byte for byte as ours; else None."""
        if not pending:
            return None
        versions = [event.originator_version for event in pending]
        stored = _stored_rows(
            self.recorder, pending[0].originator_id, min(versions), max(versions)
        )
        for event in pending:
            row = stored.get(event.originator_version)
            ours = self.mapper.to_stored_event(event)
            if row is None or not _is_stored_as(ours, row):
                return None
        return stored[pending[-1].originator_version].position


class _StoredRow(NamedTuple):
    position: int
    topic: str
    state: bytes


# A lost connection is tried again on another, as the library's own reads do
# (every pooled connection may have died at once).
_READ_ATTEMPTS = 10


def _stored_rows(
    recorder: Recorder, originator_id: UUID, first: int, last: int
) -> dict[int, _StoredRow]:
    """The stored events of a certification from ``first`` to ``last``, by
    version, with their store positions."""
    for _ in range(_READ_ATTEMPTS - 1):
        with suppress(InterfaceError, OperationalError):
            return _read_stored_rows(recorder, originator_id, first, last)
    return _read_stored_rows(recorder, originator_id, first, last)


def _read_stored_rows(
    recorder: Recorder, originator_id: UUID, first: int, last: int
) -> dict[int, _StoredRow]:
    # The library's reads leave positions out, so its table is asked directly.
    rows: list[Any]
    if isinstance(recorder, PostgresApplicationRecorder):
        statement = SQL(
            "SELECT notification_id AS position, originator_version, topic, state "
            "FROM {}.{} WHERE originator_id = %s "
            "AND originator_version BETWEEN %s AND %s"
        ).format(
            Identifier(recorder.datastore.schema),
            Identifier(recorder.events_table_name),
        )
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(statement, (originator_id, first, last))
            rows = cursor.fetchall()
    elif isinstance(recorder, SQLiteApplicationRecorder):
        # The table's name is the library's own, never a caller's.
        sqlite_statement = (
            "SELECT rowid AS position, originator_version, topic, state "  # noqa: S608
            f"FROM {recorder.events_table_name} WHERE originator_id = ? "
            "AND originator_version BETWEEN ? AND ?"
        )
        with recorder.datastore.transaction(commit=False) as sqlite_cursor:
            sqlite_cursor.execute(sqlite_statement, (originator_id.hex, first, last))
            rows = sqlite_cursor.fetchall()
    else:
        msg = f"no way to read store positions from a {type(recorder).__name__}"
        raise TypeError(msg)
    return {
        row["originator_version"]: _StoredRow(
            int(row["position"]), row["topic"], bytes(row["state"])
        )
        for row in rows
    }


def _is_stored_as(ours: StoredEvent, stored: _StoredRow) -> bool:
    """Whether ``stored`` is our bare event sealed: same topic, same bytes,
    and the hash of those bytes in its chain."""
    return (
        stored.topic == ours.topic
        and is_sealed(stored.state)
        and seal(ours, stated_previous(stored.state)).state == stored.state
    )


def event_data(event: DomainEventProtocol[Any]) -> dict[str, Any]:
    """Return an event's own fields, without the store's bookkeeping."""
    bookkeeping = {"originator_id", "originator_version", "timestamp", "actor"}
    return {
        key: value
        for key, value in vars(event).items()
        if key not in bookkeeping and key != "originator_topic"
    }


def _outcome_of(error: CertificationError) -> str:
    if isinstance(error, ConcurrentWriteError):
        return "conflict"
    if isinstance(error, StoreUnavailableError):
        return "store_unavailable"
    return "refused"


@contextmanager
def _translated_store_errors() -> Iterator[None]:
    try:
        yield
    except IntegrityError:
        raise
    except PersistenceError as error:
        msg = f"the event store is unavailable ({type(error).__name__})"
        raise StoreUnavailableError(msg) from error
