"""A command whose insert committed but whose reply was lost is still stored.

The library retries an insert whose connection died. When the first try had
committed, the retry meets the command's own events at their versions: the
service answers with their position instead of "changed by another command".
A different event at those versions is still a conflict.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import OperationalError

from domain.actor import Actor
from domain.certification import Certification
from domain.clock import FixedClock
from domain.forms import ApplicationForm, SubmissionForm
from service.application import CertificationService, ConcurrentWriteError
from service.composition import build_service
from service.settings import Settings
from tests.factories import application_body, submission_body

APPLICANT = Actor(role="applicant", name="applicant-0001")
START = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def started(service: CertificationService) -> UUID:
    form = ApplicationForm.model_validate(application_body())
    return service.start_application(form, APPLICANT).certification.id


def submitted(service: CertificationService, cid: UUID) -> Certification:
    """The certification loaded, with a submission pending, not yet stored."""
    certification = service.get(cid)
    form = SubmissionForm.model_validate(submission_body())
    certification.submit(form, actor=APPLICANT, at=service.clock.now())
    return certification


def kinds(service: CertificationService, cid: UUID) -> list[str]:
    return [type(event).__name__ for event in service.history(cid)]


def test_events_already_stored_as_ours_answer_their_position(
    service: CertificationService,
) -> None:
    cid = started(service)
    certification = submitted(service, cid)
    first_try = service.events.put(list(certification.pending_events))

    position = service.store_changes(certification)

    assert position == first_try[-1].notification.id
    assert kinds(service, cid) == ["ApplicationStarted", "SubmissionReceived"]


def test_a_start_already_stored_as_ours_answers_its_position(
    service: CertificationService, clock: FixedClock
) -> None:
    form = ApplicationForm.model_validate(application_body())
    certification = Certification.start(
        form, id=uuid4(), actor=APPLICANT, at=clock.now()
    )
    first_try = service.events.put(list(certification.pending_events))

    position = service.store_changes(certification)

    assert position == first_try[-1].notification.id
    assert kinds(service, certification.id) == ["ApplicationStarted"]


def test_another_commands_event_at_that_version_is_still_a_conflict(
    service: CertificationService,
) -> None:
    cid = started(service)
    ours = submitted(service, cid)
    theirs = service.get(cid)
    theirs.withdraw("changed our mind", actor=APPLICANT, at=service.clock.now())
    service.store_changes(theirs)

    with pytest.raises(ConcurrentWriteError, match="changed by another command"):
        service.store_changes(ours)

    assert kinds(service, cid) == ["ApplicationStarted", "Withdrawn"]


def test_the_same_command_a_moment_apart_is_still_a_conflict(
    service: CertificationService, clock: FixedClock
) -> None:
    cid = started(service)
    first = submitted(service, cid)
    clock.advance(timedelta(microseconds=1))
    second = submitted(service, cid)
    service.store_changes(first)

    with pytest.raises(ConcurrentWriteError, match="changed by another command"):
        service.store_changes(second)

    stored = service.history(cid)[-1]
    assert stored.timestamp == START
    assert kinds(service, cid) == ["ApplicationStarted", "SubmissionReceived"]


@contextmanager
def first_reply_lost(service: CertificationService) -> Iterator[None]:
    """The next connection the store uses does its work, commits, and then
    dies before the reply: the library sees an OperationalError."""
    datastore: Any = service.recorder.datastore  # type: ignore[attr-defined]
    real = datastore.get_connection
    lost: list[bool] = []

    @contextmanager
    def get_connection(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with real(*args, **kwargs) as connection:
            yield connection
        if not lost:
            lost.append(True)
            msg = "server closed the connection unexpectedly"
            raise OperationalError(msg)

    datastore.get_connection = get_connection
    try:
        yield
    finally:
        del datastore.get_connection
    assert lost, "no connection was used"


def test_a_retried_insert_that_had_committed_answers_success_on_postgres(
    postgres_url: str, clock: FixedClock
) -> None:
    service = build_service(Settings(database_url=postgres_url), clock)
    try:
        cid = started(service)
        certification = submitted(service, cid)
        with first_reply_lost(service):
            position = service.store_changes(certification)
        assert position == service.ping_store()
        assert kinds(service, cid) == ["ApplicationStarted", "SubmissionReceived"]
    finally:
        service.close()
